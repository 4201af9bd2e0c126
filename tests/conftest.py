"""Shared fixtures: offline Hugging Face, a private cache, tiny models built once per session."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_SESSION_TMP = Path(tempfile.mkdtemp(prefix="moco-tests-"))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HOME"] = str(_SESSION_TMP / "hf_home")
os.environ.setdefault("MOCO_CACHE_DIR", str(_SESSION_TMP / "moco_cache"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]


def bench_data_dir() -> Path | None:
    """``MOCO_BENCH_DATA`` or ``../shared/data/benchmarks`` next to the repository, if present."""
    configured = os.environ.get("MOCO_BENCH_DATA")
    candidates = [Path(configured)] if configured else []
    candidates.append(REPO_ROOT.parent / "shared" / "data" / "benchmarks")
    return next((c for c in candidates if c.is_dir()), None)


@pytest.fixture(scope="session")
def bench_dir() -> Path:
    found = bench_data_dir()
    if found is None:
        pytest.skip("benchmark files not found: set MOCO_BENCH_DATA or provide ../shared/data/benchmarks")
    return found


@pytest.fixture(scope="session")
def tiny_pool_paths() -> list[Path]:
    """Three tiny Llama models sharing one tokenizer, built once per session."""
    from moco_core.testing import build_tiny_pool

    return build_tiny_pool(_SESSION_TMP / "tiny_models", 3)


@pytest.fixture()
def fresh_cache_dir(tmp_path, monkeypatch) -> Path:
    """A generation cache private to one test."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("MOCO_CACHE_DIR", str(cache))
    return cache


@pytest.fixture()
def scripted_with_evals(fresh_cache_dir):
    """The scripted test backend next to the real moco-evals scorers (skips without them)."""
    from moco_core.plugins import get_registry
    from moco_core.testing import ScriptedBackendPlugin, registered_plugin

    if "multiple_choice" not in get_registry().scorers:
        pytest.skip("moco-evals is not installed")
    with registered_plugin(ScriptedBackendPlugin(), "scripted"):
        yield


@pytest.fixture()
def trainer_calls(monkeypatch) -> list[str]:
    """The kinds of the jobs the training engine really trained (a reused job is not trained again)."""
    from moco_core import training_run

    calls: list[str] = []
    original = training_run.run_trainer

    def counted(job, *args, **kwargs):
        calls.append(job.kind)
        return original(job, *args, **kwargs)

    monkeypatch.setattr(training_run, "run_trainer", counted)
    return calls
