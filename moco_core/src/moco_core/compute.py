"""What a run computed, per pool model: one counter every backend call and model forward goes through.

The pool owns a :class:`ComputeCounter`. Generations returned by a backend add their token counts
(``Generation.tokens``); generations read from the cache are counted apart, as cached, never as new
compute. Each loaded Hugging Face model carries a :class:`ForwardMeter` on a forward pre-hook, so
every forward call (plain generation, the joint decoding engines, dev scoring) is counted without
any code in the methods. The runner writes the totals to ``metrics.json`` under ``compute``.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

METRICS_KEY = "compute"
NOTE = (
    "generated_tokens/prompt_tokens/generations: new backend generations of this run (stop token included); "
    "cached_generations/cached_tokens: generations read from the generation cache (no new compute); "
    "forward_passes: model forward calls over a batch, forward_tokens: input positions they processed "
    "(padding included); engine_tokens: next-token distributions computed by forwards outside plain "
    "generation (joint decoding and text-exchange engines), one per batch row per forward"
)

_COUNTERS = (
    "generated_tokens",
    "prompt_tokens",
    "generations",
    "cached_generations",
    "cached_tokens",
    "forward_passes",
    "forward_tokens",
    "engine_tokens",
)

COMPUTE_COUNTERS = _COUNTERS
"""The per-model counters of the ``compute`` block (each a ``{model: count}`` object)."""
_REPLAYED = tuple(field for field in _COUNTERS if field not in ("forward_passes", "forward_tokens"))
"""What a resumed attempt's replay of the preparation must not count twice (see ``forget_since``)."""


class ComputeCounter:
    """Running totals per pool model name, reset per run (a shared pool serves several sweep cells)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.generated_tokens: Counter[str] = Counter()
        self.prompt_tokens: Counter[str] = Counter()
        self.generations: Counter[str] = Counter()
        self.cached_generations: Counter[str] = Counter()
        self.cached_tokens: Counter[str] = Counter()
        self.forward_passes: Counter[str] = Counter()
        self.forward_tokens: Counter[str] = Counter()
        self.engine_tokens: Counter[str] = Counter()
        self.uncounted: set[str] = set()
        self._serving: str | None = None

    @contextlib.contextmanager
    def serving(self, name: str) -> Iterator[None]:
        """Forward passes inside the block belong to member ``name`` (the pool generating for it),
        also when it shares its loaded copy with other members."""
        previous, self._serving = self._serving, name
        try:
            yield
        finally:
            self._serving = previous

    def generated(self, name: str, generations: Iterable[Any]) -> None:
        """New generations a backend returned for ``name``; one without a count marks the model uncounted."""
        for generation in generations:
            self.generations[name] += 1
            if generation.tokens is None:
                self.uncounted.add(name)
            else:
                self.generated_tokens[name] += int(generation.tokens)
            if generation.prompt_tokens is not None:
                self.prompt_tokens[name] += int(generation.prompt_tokens)

    def cached(self, name: str, generations: Iterable[Any]) -> None:
        """Generations served from the cache: counted, with the tokens their entry recorded, as no new work."""
        for generation in generations:
            self.cached_generations[name] += 1
            if generation.tokens is None:
                self.uncounted.add(name)
            else:
                self.cached_tokens[name] += int(generation.tokens)

    def forward(self, name: str, rows: int, positions: int) -> None:
        """One forward call of a loaded model over ``rows`` rows and ``positions`` input positions."""
        owner = self._serving or name
        self.forward_passes[owner] += 1
        self.forward_tokens[owner] += positions
        if self._serving is None:
            self.engine_tokens[owner] += rows

    def state(self) -> dict[str, Any]:
        """The raw totals, to carry over to a resumed attempt of the same run (:meth:`absorb`)."""
        counts = {field: dict(getattr(self, field)) for field in _COUNTERS}
        return {**counts, "uncounted": sorted(self.uncounted)}

    def absorb(self, state: dict[str, Any]) -> None:
        """Add an earlier attempt's totals (from :meth:`state`); malformed entries are left out."""
        for field in _COUNTERS:
            found = state.get(field)
            if isinstance(found, dict):
                getattr(self, field).update(
                    {str(k): int(v) for k, v in found.items() if isinstance(v, int) and not isinstance(v, bool)}
                )
        uncounted = state.get("uncounted")
        if isinstance(uncounted, list):
            self.uncounted.update(str(name) for name in uncounted)

    def forget_since(self, state: dict[str, Any]) -> None:
        """Drop the generations and tokens counted since ``state`` (from :meth:`state`), keeping forwards.

        A resumed attempt replays the method's preparation (its dev pass), which the earlier attempt
        already counted: counting it again would inflate what a fresh run generates. The forward
        passes it took are this attempt's own work and stay.
        """
        for field in _REPLAYED:
            found = state.get(field)
            setattr(self, field, Counter(found if isinstance(found, dict) else {}))

    def to_metrics(self, untracked_cached: int = 0) -> dict[str, Any]:
        """The ``compute`` block of metrics.json.

        ``complete`` is false when some work has no token count: a backend that reports none, a cache
        entry written without one, or ``untracked_cached`` outputs an engine cached as text only.
        """
        block: dict[str, Any] = {field: dict(sorted(getattr(self, field).items())) for field in _COUNTERS}
        block["total_tokens"] = sum(self.generated_tokens.values()) + sum(self.engine_tokens.values())
        block["total_cached_tokens"] = sum(self.cached_tokens.values())
        block["uncounted"] = sorted(self.uncounted)
        block["untracked_cached_outputs"] = untracked_cached
        block["complete"] = not self.uncounted and untracked_cached == 0
        block["note"] = NOTE
        return block


class ForwardMeter:
    """Counts the forward calls of one loaded model for the pool member it serves.

    A loaded copy can serve several members: members with the same path (named together, ``a+b``,
    outside the pool's own generation calls) and adapters over it (named by the active adapter).
    """

    def __init__(self) -> None:
        self.counter: ComputeCounter | None = None
        self.owners: list[str] = []
        self.adapters: dict[str, str] = {}
        self.active_adapter: str | None = None

    def bind(self, counter: ComputeCounter, name: str, adapter: str | None = None) -> None:
        self.counter = counter
        if adapter is not None:
            self.adapters[adapter] = name
        elif name not in self.owners:
            self.owners.append(name)

    def unbind(self, name: str) -> None:
        self.owners = [n for n in self.owners if n != name]
        self.adapters = {a: n for a, n in self.adapters.items() if n != name}

    def _name(self) -> str:
        if self.active_adapter is not None:
            return self.adapters.get(self.active_adapter, self.active_adapter)
        return "+".join(self.owners) or "unnamed"

    def pre_hook(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """A ``register_forward_pre_hook(..., with_kwargs=True)`` hook: reads only the input's shape."""
        if self.counter is None:
            return
        inputs = kwargs.get("input_ids")
        if inputs is None:
            inputs = kwargs.get("inputs_embeds")
        if inputs is None and args:
            inputs = args[0]
        shape = tuple(getattr(inputs, "shape", ()) or ())
        rows = int(shape[0]) if shape else 1
        length = int(shape[1]) if len(shape) > 1 else 1
        self.counter.forward(self._name(), rows, rows * length)
