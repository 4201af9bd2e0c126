"""What a method sees (``MethodContext``) and what it implements (``Method``).

A method works in rounds over whole splits, asking the pool for one batched request per model
per round.  It never loads a model, writes a file or knows which backend generates: it gets
the pool, the dataset, its validated parameters and helpers for scoring, merging and training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from moco_core.errors import MissingCapabilityError, MocoError
from moco_core.pool import ModelPool
from moco_core.registry import ScorerSpec
from moco_core.types import Dataset, Example, Generation, GenerationSettings, MergeJob, Prediction, TrainingJob

if TYPE_CHECKING:
    from moco_core.validation import RunPlan


@dataclass
class MethodContext:
    """Everything a method may use; ``metrics`` entries end up in ``metrics.json``."""

    pool: ModelPool
    dataset: Dataset
    params: BaseModel
    settings: GenerationSettings
    scorer: ScorerSpec
    hook: Any
    work_dir: Path
    scoring: Any = None
    metrics: dict[str, Any] = field(default_factory=dict)
    _dev_scores: dict[str, float] | None = None
    _dev_outputs: dict[str, list[str]] = field(default_factory=dict)

    def answer(self, name: str, examples: Sequence[Example], logprobs: bool = False) -> list[Generation]:
        """Model ``name`` answers each example's task prompt (one batched call)."""
        return self.pool.generate(name, [e.prompt for e in examples], self.settings, logprobs=logprobs)

    def score(self, examples: Sequence[Example], outputs: Sequence[str]) -> list[float]:
        if not examples:
            return []
        scores = self.hook.moco_score(
            task_type=self.dataset.task_type, examples=list(examples), outputs=list(outputs), options=self.scoring
        )
        if scores is None:
            raise MocoError(f"no scorer is registered for task type {self.dataset.task_type!r}")
        return list(scores)

    def extract(self, example: Example, output: str) -> Any:
        """The comparable answer in ``output`` (for voting), or None when none is found."""
        if self.scorer.extract is None:
            raise MocoError(f"task type {self.dataset.task_type!r} has no answer extractor")
        return self.scorer.extract(example, output)

    def dev_outputs(self, name: str) -> list[str]:
        if name not in self._dev_outputs:
            self._dev_outputs[name] = [g.text for g in self.answer(name, self.dataset.dev)]
        return self._dev_outputs[name]

    def dev_scores(self) -> dict[str, float]:
        """Mean dev score of every pool model (each answers every dev item once)."""
        if self._dev_scores is None:
            if not self.dataset.dev:
                raise MocoError(
                    f"dataset: {self.dataset.name} has no dev split, and this method selects or tunes on dev; "
                    "give the data a dev split"
                )
            scores = {}
            for name in self.pool.names:
                outputs = self.dev_outputs(name)
                values = self.score(self.dataset.dev, outputs)
                scores[name] = sum(values) / len(values) if values else 0.0
            self._dev_scores = scores
            self.metrics["dev_scores"] = scores
        return self._dev_scores

    def dev_ranking(self) -> list[str]:
        """Pool names, best dev score first; ties keep pool order."""
        scores = self.dev_scores()
        return sorted(self.pool.names, key=lambda n: -scores[n])

    def dev_best(self) -> str:
        best = self.dev_ranking()[0]
        self.metrics["dev_best_model"] = best
        return best

    def merge(self, job: MergeJob) -> str:
        result = self.hook.moco_merge(job=job)
        if result is None:
            raise MissingCapabilityError("no installed plugin implements merging (moco_merge)")
        return result

    def train(self, job: TrainingJob) -> str:
        """Run a training job through the hook; returns a folder usable as a pool ``path``.

        Device and dtype left "auto" follow the run's hardware.  The job's summary (steps,
        final loss, seconds) goes into ``metrics["training"]`` and its log into ``work_dir``.
        """
        from moco_core.training import record_training

        if job.device == "auto":
            job = replace(job, device=self.pool.device())
        if job.dtype == "auto":
            job = replace(job, dtype=self.pool.dtype())
        result = self.hook.moco_train(job=job)
        if result is None:
            raise MissingCapabilityError("no installed plugin implements training (moco_train)")
        self.metrics.setdefault("training", []).append(record_training(result, self.work_dir))
        return result


class Method:
    """Base class of a collaboration method.

    ``prepare`` does the dev-split work (select, tune, train) once per run; ``predict``
    answers a chunk of test examples and may be called several times.  A resumed run calls
    ``prepare`` again, which is cheap because every generation is cached.
    """

    def __init__(self, ctx: MethodContext) -> None:
        self.ctx = ctx
        self.params = ctx.params

    @classmethod
    def check(cls, plan: RunPlan) -> None:
        """Refuse a run this method cannot do, before any model loads; the default refuses nothing.

        ``plan_run`` calls it for ``moco validate`` and ``moco run`` alike, after the spec's
        ``Requirements`` passed, so a check that lives here is one that ``validate`` reports too.
        It sees what the plan knows: ``plan.params``, ``plan.config.models`` (names, paths,
        backends, descriptions), ``plan.dataset`` (splits, task type) and ``plan.scorer``.
        Raise ``MocoError`` with one line naming the field at fault.
        """

    def prepare(self) -> None:
        """Dev-split work; the default does nothing."""

    def predict(self, examples: list[Example]) -> list[Prediction]:
        raise NotImplementedError
