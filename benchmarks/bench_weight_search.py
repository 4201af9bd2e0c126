"""What in-memory weight search saves: one model-swarms PSO iteration, in memory vs write-and-reload.

Five models (a base perturbed five ways) are the particles of one PSO iteration (population 5);
each of the five candidates answers a few dev prompts through the pool.  In memory (moco's path)
a candidate is one matrix-vector product over the inputs' weights, written straight into the one
resident model's flat weights.  The naive path does the same product, writes the candidate's
folder (safetensors + config + tokenizer, moco's own writer) and loads it with from_pretrained,
as the original did; unloading the previous candidate is timed apart ("unload s", counted in
s/candidate).  Generation is identical in both, and kept short.  Each (size, path) runs in its
own process, so its peak RSS is its own; "search mem" is that peak minus the process's memory
before the search, in state dicts of the model (the in-memory bound is n + 2).  Each worker
makes ``--repeats`` passes over the candidates and the fastest counts (the machine may be shared).

    python benchmarks/bench_weight_search.py                    # ~10M-param and SmolLM2-135M-sized
    python benchmarks/bench_weight_search.py --sizes 10m --device cuda --threads 4
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

MODELS = 5
PROMPTS = ["What is 2 + 3?", "Name a prime number.", "Which is larger, 7 or 9?", "Say hello."]


def build_family(size: str, root: Path) -> list[Path]:
    """``MODELS`` perturbations of one base: a random ~10M-param Llama, or SmolLM2-135M-Instruct."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    from moco_core.models import resolve_model_path
    from moco_core.testing import build_tiny_tokenizer, tiny_llama_config

    if size == "135m":
        source = resolve_model_path("smollm2-135m-instruct")
        base = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(source)
    else:
        tokenizer = build_tiny_tokenizer(root / "tokenizer")
        config = tiny_llama_config(tokenizer, tie_word_embeddings=False)
        config.hidden_size, config.intermediate_size, config.num_hidden_layers = 384, 1024, 6
        config.num_attention_heads, config.num_key_value_heads = 6, 2
        torch.manual_seed(0)
        base = LlamaForCausalLM(config)
    paths = []
    original = {k: v.clone() for k, v in base.state_dict().items()}
    for i in range(MODELS):
        generator = torch.Generator().manual_seed(i)
        with torch.no_grad():
            for name, parameter in base.named_parameters():
                parameter.copy_(original[name] + 0.01 * torch.randn(parameter.shape, generator=generator))
        folder = root / f"model{i}"
        base.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        paths.append(folder)
    return paths


def one_iteration(paths: list[str]) -> list[list[float]]:
    """The five coefficient vectors of the first PSO iteration of model swarms over ``paths``."""
    import numpy as np

    from moco_core.engines.pso import PSOParams, particle_swarm

    result = particle_swarm(
        list(np.eye(len(paths))),
        lambda xs: [float(-i) for i, _ in enumerate(xs)],
        PSOParams(max_iterations=1),
        initial_velocity="toward_other",
    )
    return [[float(c) for c in m.new_position] for m in result.moves]


def rss_mb() -> float:
    """The process's current resident memory (Linux), to tell the search's own memory from the imports'."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def worker(size: str, mode: str, folder: Path, device: str, repeats: int) -> dict:
    """Score the iteration's candidates ``repeats`` times; the fastest pass counts (the machine is shared)."""
    import shutil

    from moco_core.cache import GenerationCache
    from moco_core.config import HardwareConfig, ModelConfig
    from moco_core.plugins import get_plugin_manager, get_registry
    from moco_core.pool import ModelPool
    from moco_core.types import GenerationSettings
    from moco_core.weight_space import CandidateSlot, LinearSpace, candidate_recipe, write_candidate

    paths = [str(p) for p in sorted(folder.glob("model*"))]
    candidates = one_iteration(paths)
    pool = ModelPool(
        [ModelConfig(name="m0", path=paths[0])],
        hardware=HardwareConfig(device=device, dtype="float32"),
        batch_size=len(PROMPTS),
        cache=GenerationCache(enabled=False),
        backends=get_registry().backends,
        hook=get_plugin_manager().hook,
    )
    settings = GenerationSettings(max_new_tokens=4, temperature=0.0)
    like = pool.config("m0")
    pool.generate("m0", PROMPTS, settings)  # imports and first-call costs, outside both the timing and the baseline
    pool.remove("m0")
    baseline = rss_mb()
    space = LinearSpace(paths, "float32")
    search = {"method": "bench", "mode": mode}
    slot = CandidateSlot(pool, "candidate", space, search, like)
    if mode == "memory":  # the one resident model a search loads once, whatever its number of candidates
        pool.load(slot.point(candidates[0]))
    passes = []
    for repeat in range(repeats):
        texts = []
        weights_time = unload_time = 0.0
        start = time.perf_counter()
        for i, vector in enumerate(candidates):
            begin = time.perf_counter()
            if mode == "memory":
                name = slot.point(vector)
                slot._swap(pool.load(name))  # what generate does first; timed on its own here
            else:  # the same arithmetic, written as a model folder and loaded with from_pretrained
                name = f"c{i}"
                recipe = candidate_recipe(space, vector, {**search, "candidate": i, "repeat": repeat})
                written = write_candidate(space, space.materialize(vector), recipe, "float32")
                pool.add(ModelConfig(name=name, path=written))
                pool.load(name)
            weights_time += time.perf_counter() - begin
            texts.append([g.text for g in pool.generate(name, PROMPTS, settings)])
            if mode != "memory":  # unloading a candidate counts (timed apart); deleting its folder does not
                begin = time.perf_counter()
                pool.remove(name)
                unload_time += time.perf_counter() - begin
                pause = time.perf_counter()
                shutil.rmtree(written)
                start += time.perf_counter() - pause
        seconds = time.perf_counter() - start
        count = len(candidates)
        passes.append((seconds / count, weights_time / count, unload_time / count, texts))
    best = min(passes, key=lambda p: p[0])
    state_dict_mb = space.numel * 4 / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "size": size,
        "mode": mode,
        "params": space.numel,
        "s_per_candidate": best[0],
        "weights_s_per_candidate": min(p[1] for p in passes),
        "unload_s_per_candidate": min(p[2] for p in passes),
        "peak_rss_mb": peak,
        "search_state_dicts": (peak - baseline) / state_dict_mb,
        "texts": best[3],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["10m", "135m"], choices=["10m", "135m"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is stable on a shared machine)")
    parser.add_argument("--repeats", type=int, default=3, help="passes over the candidates; the fastest counts")
    parser.add_argument("--worker", nargs=3, metavar=("SIZE", "MODE", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        import torch

        torch.set_num_threads(args.threads)
        size, mode, folder = args.worker
        print(json.dumps(worker(size, mode, Path(folder), args.device, args.repeats)))
        return
    with tempfile.TemporaryDirectory(prefix="moco-bench-weights-") as tmp:
        os.environ.setdefault("MOCO_CACHE_DIR", str(Path(tmp) / "cache"))
        print(
            f"{'size':>6} {'params':>8} {'path':>13} {'s/candidate':>12} {'weights s':>10} {'unload s':>9} "
            f"{'peak RSS MB':>12} {'search mem':>11}"
        )
        for size in args.sizes:
            folder = Path(tmp) / size
            build_family(size, folder)
            rows = {}
            for mode in ("memory", "write_reload"):
                command = [sys.executable, __file__, "--device", args.device, "--threads", str(args.threads)]
                command += ["--repeats", str(args.repeats), "--worker", size, mode, str(folder)]
                out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
                rows[mode] = json.loads(out.strip().splitlines()[-1])
                row = rows[mode]
                print(
                    f"{size:>6} {row['params'] / 1e6:>7.1f}M {mode:>13} {row['s_per_candidate']:>12.3f} "
                    f"{row['weights_s_per_candidate']:>10.4f} {row['unload_s_per_candidate']:>9.4f} "
                    f"{row['peak_rss_mb']:>12.0f} {row['search_state_dicts']:>8.1f} sd"
                )
            memory, naive = rows["memory"], rows["write_reload"]
            ratio = naive["s_per_candidate"] / memory["s_per_candidate"]
            swap = memory["weights_s_per_candidate"]
            reload = naive["weights_s_per_candidate"]
            print(
                f"{size:>6} per candidate with dev answers: {ratio:.1f}x faster in memory; weights only: "
                f"{(reload + naive['unload_s_per_candidate']) / swap:.1f}x ({reload / swap:.1f}x not counting "
                f"the unload); same texts: {memory['texts'] == naive['texts']}; in-memory search held "
                f"{memory['search_state_dicts']:.1f} state dicts of RSS at peak (bound n + 2 = {MODELS + 2})"
            )


if __name__ == "__main__":
    main()
