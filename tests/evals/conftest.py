"""Fixtures shared by the moco-evals tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from moco_core import plugins


@pytest.fixture()
def evals_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Load only the evals plugin, so work in progress elsewhere cannot disturb the check."""
    monkeypatch.setenv("MOCO_LOAD_PLUGINS", "evals")
    plugins.reset()
    yield
    plugins.reset()
