"""Fixtures of the logit-level tests: a tiny model whose tokenizer differs from the tiny pool's."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def other_tokenizer_model(tmp_path_factory) -> Path:
    """A tiny Llama whose byte-level BPE has fewer merges and other special-token ids."""
    from moco_core.testing import build_other_tokenizer_model

    return build_other_tokenizer_model(tmp_path_factory.mktemp("other_tokenizer"))
