"""Fixtures of the logit-level tests: a tiny model whose tokenizer differs from the tiny pool's."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def other_tokenizer_model(tmp_path_factory) -> Path:
    """A tiny Llama whose byte-level BPE has fewer merges and other special-token ids."""
    from moco_core.testing import build_other_tokenizer_model

    return build_other_tokenizer_model(tmp_path_factory.mktemp("other_tokenizer"))


def fusion_context(
    members: Sequence[Any], cache: Path, settings: Any, examples: Sequence[Any], batch_size: int = 4, **params: Any
) -> Any:
    """A logit_fusion context over ``members`` (ModelConfigs) with its own generation cache file."""
    from moco_core.cache import GenerationCache
    from moco_core.config import HardwareConfig
    from moco_core.method import MethodContext
    from moco_core.plugins import get_plugin_manager, get_registry
    from moco_core.pool import ModelPool
    from moco_core.registry import ScorerSpec
    from moco_core.types import Dataset
    from moco_methods_logit.params import LogitFusionParams

    pool = ModelPool(
        list(members),
        hardware=HardwareConfig(device="cpu", dtype="float32"),
        batch_size=batch_size,
        cache=GenerationCache(cache),
        backends=get_registry().backends,
        hook=get_plugin_manager().hook,
    )
    return MethodContext(
        pool=pool,
        dataset=Dataset(name="t", task_type="open", dev=[], test=list(examples)),
        params=LogitFusionParams(**params),
        settings=settings,
        scorer=ScorerSpec(task_type="open", prompt=lambda e: e.question, score=lambda ex, out, options=None: []),
        hook=get_plugin_manager().hook,
        work_dir=cache.parent,
    )
