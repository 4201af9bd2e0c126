"""What the registration hooks collect: light specs that name heavy code by import path.

A spec is cheap to build (no torch, no model code is imported); ``load()`` imports the
implementation only when a run needs it, so ``moco list-methods`` stays fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from moco_core.errors import MocoError

Level = Literal["api", "text", "logit", "weight", "baseline", "oracle", "other"]  # oracle: an upper bound, not a method


class NoParams(BaseModel):
    """Parameter model of a method that takes no parameters."""

    model_config = ConfigDict(extra="forbid")


def import_object(path: str) -> Any:
    """Import ``"package.module:attribute"``."""
    module_name, _, attribute = path.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attribute) if attribute else module


@dataclass(frozen=True)
class Requirements:
    """What a method needs of its pool; checked before any model loads."""

    min_models: int = 1
    max_models: int | None = None
    same_tokenizer: bool = False
    same_architecture: bool = False
    descriptions: bool = False
    needs_extractor: bool = False
    """The method compares extracted answers (voting), so the task type must have an extractor."""
    local_weights: bool | None = None
    """The method needs the models' weights in this process (per-step logits, token-level switching,
    training the members), so a remote backend is refused; None derives it from level and ``trains``."""
    dev_split: bool = False
    """The method always selects, ranks or trains on the dev split, so data without one is refused."""
    answers_only: bool = False
    """The method only asks each member for its one answer to each query's own prompt (single models,
    routers, votes over members), so it can run on a backend that replays stored answers (a response
    bank, ``BackendSpec.generates=False``); any other method is refused there before anything loads.
    A method whose parameters ask for more (several samples) refuses that in its own ``check``."""

    def describe(self) -> str:
        parts = []
        if self.max_models is None:
            parts.append(f">={self.min_models} models")
        elif self.max_models == self.min_models:
            parts.append(f"{self.min_models} models")
        else:
            parts.append(f"{self.min_models}-{self.max_models} models")
        if self.same_tokenizer:
            parts.append("same tokenizer")
        if self.same_architecture:
            parts.append("same architecture")
        if self.descriptions:
            parts.append("descriptions")
        if self.needs_extractor:
            parts.append("answer extractor")
        if self.dev_split:
            parts.append("dev split")
        return ", ".join(parts)


@dataclass
class MethodSpec:
    """A collaboration method: ``implementation`` is ``"module:Class"`` of a ``Method``."""

    key: str
    level: Level
    implementation: str
    summary: str
    params: type[BaseModel] = NoParams
    requirements: Requirements = field(default_factory=Requirements)
    trains: bool = False
    reference: str = ""
    distribution: str = ""

    def load(self) -> Any:
        return import_object(self.implementation)


@dataclass
class DatasetSpec:
    """A named dataset, loadable from its benchmark file, its public source, or both.

    ``loader`` is ``"module:function"`` called as ``loader(spec, data_dir)`` (``data_dir`` may be
    None) and reads the benchmark file; it is empty for a dataset that has none. ``hub`` names the
    public source (a Hugging Face dataset id) and ``hub_loader`` is ``"module:function"`` called as
    ``hub_loader(spec, seed)``, mapping that source to the benchmark schema with a seeded dev/test
    sample; None when no mapping exists. Both return a ``Dataset``.
    """

    key: str
    task_type: str
    loader: str
    domain: str = ""
    source: str = ""
    summary: str = ""
    sizes: tuple[int, int] | None = None
    group_by: str | None = None
    hub: str | None = None
    hub_loader: str | None = None
    distribution: str = ""

    def load(self, data_dir: str | None = None) -> Any:
        if not self.loader:
            raise MocoError(f"dataset {self.key}: no benchmark file exists; load it from its public source {self.hub}")
        return import_object(self.loader)(self, data_dir)

    def load_hub(self, seed: int = 0) -> Any:
        if not self.hub_loader:
            raise MocoError(f"dataset {self.key}: no public-source mapping; use the benchmark file")
        return import_object(self.hub_loader)(self, seed)

    def benchmark_file(self, data_dir: str | Path) -> Path:
        """Where a benchmark file of this dataset sits in a data folder: ``<data_dir>/<key>.json``."""
        return Path(data_dir).expanduser() / f"{self.key}.json"


@dataclass
class ScorerSpec:
    """How one task type is prompted, how an answer is extracted and how it is scored.

    ``prompt(example) -> str``; ``extract(example, output) -> str | None`` gives the
    comparable answer (used by voting methods); ``score(examples, outputs, options) -> list[float]``
    scores a batch (batched so model-based scorers can batch too); ``options`` is the run's
    ``ScoringConfig`` (or None outside a run), naming judge, reward and embedding models.
    ``metric`` names what the mean means; ``normalize`` says scores are not in [0, 1] and are
    min-max normalised before averaging across datasets (reward models).
    ``extra_metrics(examples, outputs, options) -> list[dict[str, float]]`` gives secondary
    per-item numbers beside the main score (lm-eval's flexible match, PopQA's alias accuracy, a
    rate of conflicting answers); the runner writes each item's dict into its prediction line as
    ``extra_scores`` and their means into ``metrics.json`` as ``score.extra``.
    """

    task_type: str
    prompt: Callable[..., str]
    score: Callable[..., list[float]]
    extract: Callable[..., Any] | None = None
    metric: str = "accuracy"
    normalize: bool = False
    distribution: str = ""
    extra_metrics: Callable[..., list[dict[str, float]]] | None = None


@dataclass
class BackendSpec:
    """A generation backend; ``implementation`` is ``"module:Class"`` of a ``Backend``.

    ``local_paths`` says model paths are folders or hub ids that core checks and fingerprints;
    a backend whose paths mean something else (an API model name) sets it to False. ``weights``
    says the model's weights are in this process (per-step logits, merging, training); a remote
    backend sets it to False and weight- and logit-level methods refuse it. ``options`` is
    ``"module:Class"`` of the pydantic model that validates a model's ``backend_options``.
    ``logprobs`` says generations can carry token log-probabilities when a request asks for them
    (a response bank cannot), so methods that read them refuse the backend before anything runs.
    ``generates`` says the backend writes text for any prompt; a backend that only replays each
    model's stored answer to a known query (a response bank) sets it to False, and only methods with
    ``Requirements.answers_only`` may use it.
    """

    key: str
    implementation: str
    summary: str = ""
    local_paths: bool = True
    weights: bool = True
    logprobs: bool = True
    generates: bool = True
    options: str = ""
    distribution: str = ""

    def load(self) -> Any:
        return import_object(self.implementation)


@dataclass
class Registry:
    """Everything the installed plugins registered, plus the errors of those that failed."""

    methods: dict[str, MethodSpec] = field(default_factory=dict)
    datasets: dict[str, DatasetSpec] = field(default_factory=dict)
    scorers: dict[str, ScorerSpec] = field(default_factory=dict)
    backends: dict[str, BackendSpec] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
