"""Greedy model soup (Wortsman et al. 2022): a uniform weight average grown one model at a time.

Models are tried best dev score first; a candidate joins the soup only if the averaged model
scores at least as well on dev as the soup without it, so the soup is never worse on dev than
the single best model.  Merges go through the ``moco_merge`` hook into content-addressed
folders, so a resumed or repeated run reuses both the merges and their cached generations.
"""

from __future__ import annotations

from typing import Any

from moco_core.config import ModelConfig
from moco_core.merging import merge_output_dir, merge_recipe
from moco_core.method import Method, MethodContext
from moco_core.types import Example, MergeJob, Prediction


def soup_name(members: list[str]) -> str:
    """The pool name of the uniform average of ``members`` (readable in logs and metrics)."""
    return f"soup({'+'.join(members)})"


class GreedySoup(Method):
    """Builds the soup on dev in ``prepare``; the final soup model answers the test split."""

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx)
        self.soup: list[str] = []
        self.soup_model = ""

    def _dev_score(self, name: str) -> float:
        dev = self.ctx.dataset.dev
        scores = self.ctx.score(dev, [g.text for g in self.ctx.answer(name, dev)])
        return sum(scores) / len(scores) if scores else 0.0

    def _merge(self, members: list[str]) -> str:
        """Merge ``members`` uniformly, add the result to the pool and return its pool name."""
        pool = self.ctx.pool
        job = MergeJob(
            models=[pool.resolved_path(m) for m in members],
            output_dir="",
            method="linear",
            weights=[1.0 / len(members)] * len(members),
            dtype=pool.dtype(),
        )
        job.output_dir = str(merge_output_dir(merge_recipe(job)))
        folder = self.ctx.merge(job)
        lead = pool.config(members[0])
        name = soup_name(members)
        pool.add(ModelConfig(name=name, path=folder, backend=lead.backend, system_prompt=lead.system_prompt))
        return name

    def prepare(self) -> None:
        ranking = self.ctx.dev_ranking()
        dev_scores = self.ctx.dev_scores()
        self.soup = [ranking[0]]
        self.soup_model = ranking[0]
        best = dev_scores[ranking[0]]
        history: list[dict[str, Any]] = [
            {"candidate": ranking[0], "members": list(self.soup), "dev_score": best, "accepted": True}
        ]
        for candidate in ranking[1:]:
            members = [*self.soup, candidate]
            merged = self._merge(members)
            score = self._dev_score(merged)
            accepted = score >= best
            history.append({"candidate": candidate, "members": members, "dev_score": score, "accepted": accepted})
            if accepted:
                if self.soup_model != self.soup[0]:
                    self.ctx.pool.remove(self.soup_model)
                self.soup, self.soup_model, best = members, merged, score
            else:
                self.ctx.pool.remove(merged)
        self.ctx.metrics["soup"] = list(self.soup)
        self.ctx.metrics["soup_model"] = self.soup_model
        self.ctx.metrics["soup_model_path"] = self.ctx.pool.resolved_path(self.soup_model)
        self.ctx.metrics["soup_dev_score"] = best
        self.ctx.metrics["soup_history"] = history

    def predict(self, examples: list[Example]) -> list[Prediction]:
        generations = self.ctx.answer(self.soup_model, examples)
        return [Prediction(output=g.text, extras={"soup": list(self.soup)}) for g in generations]
