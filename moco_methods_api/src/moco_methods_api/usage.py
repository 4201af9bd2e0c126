"""Who did what, summed over a run: queries and generated tokens per pool model.

Each prediction carries its own counts (``tokens_by_model``, and ``routed_to`` for methods that
pick one model per query); this tally adds them up into ``ctx.metrics["usage"]`` so cost can be
compared across methods.  A method that drafts more than it keeps (mentor_collab's losing
candidates) also gives ``generated_tokens_by_model``: what each model generated, the cost, while
``tokens_by_model`` stays what each model wrote into the answers (``token_share``).  A resumed
run starts from the counts of the predictions already written, so the totals cover the whole
test split, not just the part answered last.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from moco_core.method import MethodContext
from moco_core.runner import PREDICTIONS, read_predictions


class UsageTally:
    """Running totals written to ``ctx.metrics["usage"]`` after every ``add``."""

    def __init__(self, ctx: MethodContext, names: Iterable[str], helpers: Iterable[str] = ()) -> None:
        """``helpers``: models outside the pool that generate for the method (a trained router LM);
        their tokens count as cost, but they answer no query."""
        self.ctx = ctx
        self.names = list(names)
        self.queries = dict.fromkeys(self.names, 0)
        self.tokens = dict.fromkeys([*self.names, *helpers], 0)
        self.written = dict(self.tokens)
        for line in read_predictions(ctx.work_dir.parent / PREDICTIONS):
            written = line.get("tokens_by_model") or {}
            self._count(line.get("routed_to"), written, line.get("generated_tokens_by_model") or written)
        self._publish()

    def add(
        self,
        routed_to: str | None,
        tokens_by_model: Mapping[str, int],
        generated_by_model: Mapping[str, int] | None = None,
    ) -> None:
        """``generated_by_model``: tokens generated, where more than the answer holds (default: the same)."""
        self._count(routed_to, tokens_by_model, tokens_by_model if generated_by_model is None else generated_by_model)
        self._publish()

    def _count(self, routed_to: Any, written: Mapping[str, Any], generated: Mapping[str, Any]) -> None:
        if routed_to in self.queries:
            self.queries[routed_to] += 1
        for totals, counts in ((self.written, written), (self.tokens, generated)):
            for name, count in counts.items():
                if name in totals:
                    totals[name] += int(count)

    def _publish(self) -> None:
        total_queries = sum(self.queries.values())
        total_written = sum(self.written.values())
        usage: dict[str, Any] = {"generated_tokens": dict(self.tokens)}
        if total_queries:
            usage["query_share"] = {n: self.queries[n] / total_queries for n in self.names}
        if total_written:
            usage["token_share"] = {n: self.written[n] / total_written for n in self.names}
        self.ctx.metrics["usage"] = usage


def token_count(generation: Any) -> int:
    """Generated tokens: with log-probs, the tokens up to (not counting) EOS; else the backend's own
    count (stop token included), 0 where it gives none."""
    if generation.top_logprobs is not None:
        return len(generation.top_logprobs)
    return int(generation.tokens or 0)
