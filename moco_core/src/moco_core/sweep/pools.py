"""Keeping one model pool loaded across consecutive cells of the local executor.

Cells run pool by pool, so consecutive cells usually share a pool config (members, hardware,
batch size). :class:`SharedPools` hands the runner the pool the previous cell left loaded when
that config is unchanged, and builds a fresh one otherwise. Each cell gets its own generation
cache handle, hook and zeroed stats and compute counters, so a cell's ``generations`` metrics count only its own work.
After a cell, members the method added (merged, trained or in-memory models) are removed; if a
configured member was replaced or given in-memory weights, an added adapter was loaded over a
resident base, or the cell failed, the pool is closed rather than reused, so nothing of one cell
leaks into the next.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from moco_core.cache import GenerationCache
from moco_core.config import RunConfig
from moco_core.pool import GenerationStats, ModelPool

log = logging.getLogger(__name__)


def pool_key(config: RunConfig) -> str:
    """What a pool is built from: two cells with the same key can share one loaded pool."""
    return json.dumps(
        {
            "models": [m.model_dump(mode="json") for m in config.models],
            "hardware": config.hardware.model_dump(mode="json"),
            "batch_size": config.generation.batch_size,
        },
        sort_keys=True,
        default=str,
    )


class SharedPools:
    """The pool of the last cell, kept loaded for the next cell with the same pool config."""

    def __init__(self) -> None:
        self._pool: ModelPool | None = None
        self._key: str | None = None
        self._backends: Any = None
        self.built = 0
        """How many pools were built (a test and the log can see reuse)."""

    def acquire(self, config: RunConfig, cache: GenerationCache, backends: Any, hook: Any) -> ModelPool:
        key = pool_key(config)
        if self._pool is not None and (key != self._key or backends is not self._backends):
            self.close()
        if self._pool is None:
            self._pool = ModelPool(config.models, config.hardware, config.generation.batch_size, cache, backends, hook)
            self._key, self._backends = key, backends
            self.built += 1
        else:
            log.info("reusing the loaded pool: %s", ", ".join(self._pool.resident()) or "nothing loaded yet")
            self._pool.cache = cache
            self._pool._hook = hook
            self._pool.stats = GenerationStats()
            self._pool.compute.reset()
        return self._pool

    def release(self, pool: ModelPool, config: RunConfig, ok: bool) -> None:
        """After a cell: strip what the method added, or close the pool if it cannot be reused cleanly."""
        if pool is not self._pool:
            pool.close()
            return
        configured = {m.name: m for m in config.models}
        members = pool._members
        own_adapters = {(m.config.backend, m.resolved_path) for n, m in members.items() if n in configured}
        # An added adapter was injected into a loaded base model (PEFT); only a fresh load is clean.
        foreign_adapter = any(key not in own_adapters for key in pool._adapters)
        for name in [n for n in pool.names if n not in configured]:
            pool.remove(name)
        clean = list(members) == list(configured) and all(
            members[name].config == model and members[name].swap is None for name, model in configured.items()
        )
        if not (ok and clean) or foreign_adapter:
            self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        self._pool, self._key, self._backends = None, None, None
