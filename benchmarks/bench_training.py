"""What a LoRA SFT job costs through moco's training engine, and what reusing a finished job costs.

For each model (a tiny random Llama and SmolLM2-135M-Instruct) one SFT LoRA job runs in a fresh
subprocess, so peak memory belongs to that job alone: optimizer steps per second (timed around
``trainer.train`` by the engine's summary), the job's wall time including loading and saving,
peak memory (CUDA: max allocated; CPU: peak resident set size, and its growth over the process
before the job), and the wall time of the same job asked for again (a reuse: no trainer call).

    python benchmarks/bench_training.py                        # both models, CUDA when present
    python benchmarks/bench_training.py --models tiny --device cpu --steps 20
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
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SENTENCE = "the answer is a number between one and ten so think step by step and then write it down"


def make_rows(count: int) -> list[dict[str, str]]:
    words = SENTENCE.split()
    return [
        {
            "prompt": f"Question {i}: " + " ".join(words[: 4 + (i * 5) % len(words)]) + "?",
            "completion": " ".join(words[(i * 3) % 7 :]) + f" The answer is {i % 10}.",
        }
        for i in range(count)
    ]


def model_path(key: str, workdir: Path) -> str:
    if key == "tiny":
        from moco_core.testing import build_tiny_model

        return str(build_tiny_model(workdir / "tiny"))
    from moco_core.models import SMOLLM2_ALIAS, resolve_model_path

    return resolve_model_path(SMOLLM2_ALIAS)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one(key: str, device: str, steps: int, batch: int, workdir: Path) -> dict[str, Any]:
    """One job in this process (called in a subprocess by ``main``)."""
    import torch

    from moco_core.training import train, training_summary
    from moco_core.types import TrainingJob

    path = model_path(key, workdir)
    job = TrainingJob(
        kind="sft",
        base_model=path,
        data=make_rows(64),
        output_dir=str(workdir / f"out-{key}-{device}"),
        hyperparameters={"max_steps": steps, "batch_size": batch, "lr": 1e-4},
        device=device,
    )
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    rss_before = peak_rss_mib()
    started = time.perf_counter()
    folder = train(job)
    job_seconds = time.perf_counter() - started
    started = time.perf_counter()
    assert train(job) == folder
    reuse_seconds = time.perf_counter() - started
    summary = training_summary(folder)
    result = {
        "model": key,
        "device": device,
        "steps": summary["steps"],
        "batch": batch,
        "steps_per_s": summary["steps"] / summary["seconds"],
        "job_s": job_seconds,
        "reuse_ms": reuse_seconds * 1000,
        "first_loss": summary["first_loss"],
        "final_loss": summary["final_loss"],
    }
    if device.startswith("cuda"):
        result["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        result["peak_mib"] = peak_rss_mib()
        result["growth_mib"] = result["peak_mib"] - rss_before
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny", "smollm2"], choices=["tiny", "smollm2"])
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (CUDA when present)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.device, args.steps, args.batch, Path(args.workdir))))
        return
    import torch

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    results = []
    with tempfile.TemporaryDirectory(prefix="moco-bench-training-") as workdir:
        for key in args.models:
            command = [sys.executable, __file__, "--one", key, "--device", device, "--workdir", workdir]
            command += ["--steps", str(args.steps), "--batch", str(args.batch)]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(f"{key}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
                continue
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"SFT LoRA (r 64, q/k/v/o), 64 rows, batch {args.batch}, {args.steps} steps")
    header = ("model", "device", "steps/s", "job s", "peak MiB", "growth", "loss", "reuse ms")
    print("{:<8} {:<6} {:>8} {:>7} {:>9} {:>7} {:>13} {:>9}".format(*header))
    for r in results:
        growth = f"{r['growth_mib']:.0f}" if "growth_mib" in r else "-"
        loss = f"{r['first_loss']:.2f}->{r['final_loss']:.2f}"
        print(
            f"{r['model']:<8} {r['device']:<6} {r['steps_per_s']:>8.2f} {r['job_s']:>7.1f} {r['peak_mib']:>9.0f} "
            f"{growth:>7} {loss:>13} {r['reuse_ms']:>9.1f}"
        )


if __name__ == "__main__":
    main()
