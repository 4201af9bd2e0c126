"""Lets the tests import the plugin without installing it, and keeps them off the user's cache."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# ``pip install -e .`` makes the package importable; a fresh checkout (or this template inside
# the moco repository) is tested straight from src/ instead.
if importlib.util.find_spec("moco_plugin_template") is None:
    sys.path.insert(0, str(SRC))


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch) -> Path:
    """Every test gets its own generation cache, so no test reads another's generations."""
    cache = tmp_path / "moco-cache"
    monkeypatch.setenv("MOCO_CACHE_DIR", str(cache))
    return cache
