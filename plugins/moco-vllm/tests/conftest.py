"""Imports the plugin from src/ when it is not installed, keeps Hugging Face offline and the cache private."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
if importlib.util.find_spec("moco_vllm") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    """One moco cache for the session, so SmolLM2 is converted from its GGUF once."""
    return tmp_path_factory.mktemp("moco-cache")


@pytest.fixture(autouse=True)
def private_cache(model_cache, monkeypatch) -> Path:
    monkeypatch.setenv("MOCO_CACHE_DIR", str(model_cache))
    return model_cache
