"""Plain data types shared by core, backends, methods and plugins.

They are deliberately free of torch so that registering a plugin stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Example:
    """One benchmark item, normalised to one schema whatever file or source it came from.

    ``index`` is the position in its split: ids are not unique in every dataset, so results
    are keyed by position and id together.
    """

    index: int
    id: str
    question: str
    answer: Any
    task_type: str
    choices: dict[str, str] | None = None
    prompt: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.index}:{self.id}"


@dataclass
class Dataset:
    """A named dataset with a dev split (for selection/tuning/training) and a test split."""

    name: str
    task_type: str
    dev: list[Example]
    test: list[Example]
    domain: str = ""
    source: str = ""
    group_by: str | None = None


@dataclass(frozen=True)
class GenerationSettings:
    """Sampling settings; temperature 0 means greedy decoding."""

    max_new_tokens: int = 512
    temperature: float = 0.7
    top_p: float = 0.9
    seed: int = 0

    def cache_fields(self) -> dict[str, Any]:
        return {
            "max_new_tokens": self.max_new_tokens,
            "temperature": float(self.temperature),
            "top_p": float(self.top_p),
            "seed": self.seed,
        }


@dataclass
class Generation:
    """A generated continuation, with per-token log-probabilities when they were requested.

    ``token_logprobs`` holds log p(chosen token) and ``top_logprobs`` log p(most likely token)
    at each step, both under the unmodified (temperature 1) distribution. ``tokens`` (generated
    tokens, the stop token included) and ``prompt_tokens`` are the backend's counts, None where it
    reports none; they travel with the cache entry, so a cached generation still says what it cost.
    """

    text: str
    token_logprobs: list[float] | None = None
    top_logprobs: list[float] | None = None
    cached: bool = False
    tokens: int | None = None
    prompt_tokens: int | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "text": self.text,
            "token_logprobs": self.token_logprobs,
            "top_logprobs": self.top_logprobs,
        }
        if self.tokens is not None:
            data["tokens"] = self.tokens
        if self.prompt_tokens is not None:
            data["prompt_tokens"] = self.prompt_tokens
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], cached: bool = False) -> Generation:
        return cls(
            text=data["text"],
            token_logprobs=data.get("token_logprobs"),
            top_logprobs=data.get("top_logprobs"),
            cached=cached,
            tokens=data.get("tokens"),
            prompt_tokens=data.get("prompt_tokens"),
        )


@dataclass
class Prediction:
    """A method's final answer for one test example plus method-specific extras."""

    output: str
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class GenerationRequest:
    """One prompt for one pool model: the user message, its system prompt and sample index.

    ``sample`` distinguishes repeated samples of the same prompt (self-consistency, voting with
    several samples per model); it is part of the cache key and of the per-row seed.  ``stream``
    names the model's random stream (the pool sets it from the model's identity).
    """

    prompt: str
    system_prompt: str | None = None
    sample: int = 0
    logprobs: bool = False
    stream: str = ""


@dataclass
class MergeJob:
    """A weight merge: models (+ optional base) combined by ``method`` into ``output_dir``.

    ``method`` is a mergekit merge method name (``linear``, ``task_arithmetic``,
    ``dare_ties``, ...); ``weights`` are per-model and ``parameters`` are extra per-model or
    global mergekit parameters such as ``density``.
    """

    models: list[str]
    output_dir: str
    method: str = "linear"
    base_model: str | None = None
    weights: list[float] | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    dtype: str = "float32"


@dataclass
class TrainingJob:
    """A training run: ``kind`` is sft, dpo or grpo; ``adapter`` is lora or full.

    Rows are ``{prompt, completion}`` (sft), ``{prompt, chosen, rejected}`` (dpo) or ``{prompt,
    ...gold fields}`` (grpo, scored by ``reward``, a JSON description such as ``{"type":
    "scorer", "task_type": "multiple_choice"}`` so the job stays cacheable).  Without
    ``output_dir`` the result lands in a content-addressed folder under the moco cache.
    ``device`` and ``dtype`` "auto" follow the hardware (bf16 on capable GPUs, fp32 on CPU).
    """

    kind: str
    base_model: str
    data: list[dict[str, Any]]
    output_dir: str | None = None
    adapter: str = "lora"
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    reward: dict[str, Any] | None = None
    seed: int = 0
    device: str = "auto"
    dtype: str = "auto"
