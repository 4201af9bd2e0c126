"""End-to-end smoke run on whatever device is present (meant for a GPU machine).

Builds three tiny models, runs single_model, majority_vote, prompt_routing and logit_fusion
through the real ``moco`` CLI with ``device: auto``, then reruns each into a new folder and
prints, per method: device, dtype, score, generations made on the first and second run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from moco_core.testing import build_tiny_pool

METHODS = {
    "single_model": {},
    "majority_vote": {"samples_per_model": 2},
    "prompt_routing": {},
    "logit_fusion": {"space": "prob"},
}


def write_data(folder: Path, n: int) -> Path:
    items = [
        {
            "id": i,
            "question": f"Item {i}: which number is {i % 4 + 1}?",
            "choices": dict(zip("ABCD", "1234", strict=True)),
            "answer": "ABCD"[i % 4],
        }
        for i in range(n)
    ]
    path = folder / "data.json"
    path.write_text(json.dumps({"name": "smoke", "task_type": "multiple_choice", "dev": items[:8], "test": items}))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=64)
    args = parser.parse_args()
    moco = shutil.which("moco") or str(Path(sys.executable).parent / "moco")
    root = Path(tempfile.mkdtemp(prefix="moco-smoke-"))
    os.environ["MOCO_CACHE_DIR"] = str(root / "cache")
    paths = build_tiny_pool(root / "models", 3)
    data = write_data(root, args.examples)
    for method, params in METHODS.items():
        config = {
            "method": method,
            "params": params,
            "models": [{"name": f"m{i}", "path": str(p), "description": f"model {i}"} for i, p in enumerate(paths)],
            "dataset": {"path": str(data)},
            "generation": {"max_new_tokens": 16, "batch_size": 16, "seed": 0},
            "hardware": {"device": "auto", "dtype": "auto"},
            "output_dir": str(root / method),
        }
        config_path = root / f"{method}.yaml"
        config_path.write_text(yaml.safe_dump(config))
        first = subprocess.run([moco, "run", str(config_path)], capture_output=True, text=True)
        second = subprocess.run(
            [moco, "run", str(config_path), "--output-dir", str(root / f"{method}-again")],
            capture_output=True,
            text=True,
        )
        if first.returncode or second.returncode:
            print(f"{method}: FAILED\n{first.stderr[-2000:]}\n{second.stderr[-2000:]}")
            continue
        one = json.loads((root / method / "metrics.json").read_text())
        two = json.loads((root / f"{method}-again" / "metrics.json").read_text())
        same = (root / method / "predictions.jsonl").read_text() == (
            root / f"{method}-again" / "predictions.jsonl"
        ).read_text()
        print(
            f"{method}: device={one['hardware']['device']} dtype={one['hardware']['dtype']} "
            f"score={one['score']['mean']:.3f} n={one['score']['count']} made={one['generations']['made']} "
            f"rerun_made={two['generations']['made']} identical_predictions={same} wall={one['wall_time_s']}s"
        )


if __name__ == "__main__":
    main()
