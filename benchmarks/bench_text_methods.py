"""Round-0 sharing across text-level methods: generations made with one shared cache vs each alone.

Every text method that starts with "every model answers the task prompt" asks for the same
request (prompt, system prompt, settings, seed, sample 0), so run in sequence on one pool and
dataset they should generate round 0 once. This runs each method alone with an empty cache,
then all of them in sequence on one cache, counting the generations that reached the backend
and, among them, round-0 ones (a test item's task prompt at sample 0), and prints the ratio of
round-0 generations in sequence to the sum alone (target: round 0 generated once for the
whole sequence, about 1/k of the sum for k methods).

    python benchmarks/bench_text_methods.py                     # tiny random models, CPU
    python benchmarks/bench_text_methods.py --test 32 --max-new-tokens 16
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from moco_core.config import parse_config
from moco_core.hookspecs import hookimpl
from moco_core.plugins import get_registry
from moco_core.runner import run
from moco_core.testing import build_tiny_pool, registered_plugin, write_choice_dataset
from moco_core.validation import plan_run

METHODS = {
    "majority_vote": {},
    "multiagent_debate": {"rounds": 2},
    "multiagent_refine": {"rounds": 2},
    "multiagent_feedback": {"rounds": 2, "feedback_count": 1},
    "llm_blender": {"top_k": 2},
    "mixture_of_agents": {"layers": 1},
    "slm_mux": {"samples_per_model": 2},
    "self_consistency": {"samples": 2},
}


class CountGenerations:
    """Sees every request that reaches a backend (cache misses) and passes it on."""

    def __init__(self, round_zero: set[str]) -> None:
        self.round_zero = round_zero
        self.counts: Counter = Counter()

    @hookimpl(tryfirst=True)
    def moco_generate(self, model: Any, requests: list, settings: Any) -> None:
        self.counts["made"] += len(requests)
        self.counts["round0"] += sum(r.sample == 0 and r.prompt in self.round_zero for r in requests)


def data_file(folder: Path, n_dev: int, n_test: int) -> Path:
    return write_choice_dataset(folder / "data.json", n_dev, n_test, name="bench_mc")


def run_method(method: str, models: list[dict], data: Path, out: Path, args: argparse.Namespace, counter) -> dict:
    config = parse_config(
        {
            "method": method,
            "params": METHODS[method],
            "models": models,
            "dataset": {"path": str(data)},
            "generation": {"max_new_tokens": args.max_new_tokens, "seed": 0, "batch_size": args.batch_size},
            "hardware": {"device": args.device},
            "output_dir": str(out),
        },
        "bench",
    )
    counter.counts.clear()
    started = time.perf_counter()
    run(config)
    return {
        "made": counter.counts["made"],
        "round0": counter.counts["round0"],
        "seconds": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", type=int, default=4)
    parser.add_argument("--test", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if "multiple_choice" not in get_registry().scorers:
        raise SystemExit("moco-evals is not installed")
    root = Path(tempfile.mkdtemp(prefix="bench-text-"))
    models = [{"name": f"m{i}", "path": str(p)} for i, p in enumerate(build_tiny_pool(root / "models", 3))]
    data = data_file(root, args.dev, args.test)
    first = parse_config(
        {"method": "majority_vote", "models": models, "dataset": {"path": str(data)}, "output_dir": str(root)}, "bench"
    )
    round_zero = {e.prompt for e in plan_run(first, get_registry()).dataset.test}
    counter = CountGenerations(round_zero)
    alone, shared = {}, {}
    with registered_plugin(counter, "bench-counter"):
        for method in METHODS:
            os.environ["MOCO_CACHE_DIR"] = str(root / "cache-alone" / method)
            alone[method] = run_method(method, models, data, root / "alone" / method, args, counter)
        os.environ["MOCO_CACHE_DIR"] = str(root / "cache-shared")
        for method in METHODS:
            shared[method] = run_method(method, models, data, root / "shared" / method, args, counter)
    print(f"pool 3 tiny models, {args.test} test + {args.dev} dev items, {args.max_new_tokens} new tokens")
    print(f"{'method':22} {'alone made':>10} {'round0':>7} {'seq made':>9} {'round0':>7} {'alone s':>8} {'seq s':>7}")
    for method in METHODS:
        a, s = alone[method], shared[method]
        print(
            f"{method:22} {a['made']:>10} {a['round0']:>7} {s['made']:>9} {s['round0']:>7} "
            f"{a['seconds']:>8.2f} {s['seconds']:>7.2f}"
        )
    made_alone, made_shared = sum(a["made"] for a in alone.values()), sum(s["made"] for s in shared.values())
    zero_alone, zero_shared = sum(a["round0"] for a in alone.values()), sum(s["round0"] for s in shared.values())
    print(f"{'total':22} {made_alone:>10} {zero_alone:>7} {made_shared:>9} {zero_shared:>7}")
    k, one_round = len(METHODS), len(models) * args.test
    ratio = zero_shared / zero_alone if zero_alone else 0.0
    print(
        f"round-0 generations in sequence / alone: {zero_shared}/{zero_alone} = {ratio:.3f} "
        f"(1/k = {1 / k:.3f} for k = {k} methods; self_consistency's round 0 is one model's)"
    )
    verdict = "yes" if zero_shared == one_round else "no"
    print(f"round 0 generated once in sequence ({len(models)} models x {args.test} items = {one_round}): {verdict}")
    print(f"all generations in sequence / alone: {made_shared}/{made_alone} = {made_shared / made_alone:.3f}")


if __name__ == "__main__":
    main()
