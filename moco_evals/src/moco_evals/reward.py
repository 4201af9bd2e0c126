"""The ``reward_model`` task type (AlpacaEval, human interest, WildChat): a reward model's score.

Open-ended instructions have no gold answer, so a sequence-classification reward model
(default Skywork-Reward-Llama-3.1-8B-v0.2) scores each ``(instruction, response)``
conversation. Scores are raw logits, unbounded and model-specific: the spec sets
``normalize=True`` so they are min-max normalised before being averaged with other datasets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from moco_core.config import ScoringConfig
from moco_core.registry import ScorerSpec
from moco_core.types import Example
from moco_evals import scoring_models
from moco_evals.scoring_models import raw_prompt


def conversation_text(tokenizer: Any, question: str, output: str) -> tuple[str, bool]:
    """The conversation as the reward model was trained to read it, and whether it is templated.

    With a chat template the text already holds the special tokens the template writes (BOS,
    turn markers), so it must be tokenized without adding more; without one a plain
    ``User:``/``Assistant:`` transcript is tokenized normally.
    """
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": question}, {"role": "assistant", "content": output}]
        try:
            return tokenizer.apply_chat_template(messages, tokenize=False), True
        except Exception:  # a template that refuses this conversation shape: fall back to text
            pass
    return f"User: {question}\n\nAssistant: {output}", False


def _max_length(tokenizer: Any, model: Any) -> int | None:
    """The longest input worth sending; None when neither tokenizer nor config bounds it."""
    limits = [int(tokenizer.model_max_length)] if tokenizer.model_max_length < 1_000_000 else []
    positions = getattr(model.config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        limits.append(positions)
    return min(limits) if limits else None


def reward_scores(
    model: Any, tokenizer: Any, device: str, questions: Sequence[str], outputs: Sequence[str], batch_size: int
) -> list[float]:
    """Raw rewards ``logits[:, 0]`` of each conversation, in padded batches.

    Rows are sorted by length so batches waste little padding; with right padding and the
    model's pad id set, a row's score does not depend on its batch.
    """
    import torch

    rendered = [conversation_text(tokenizer, q, o) for q, o in zip(questions, outputs, strict=True)]
    max_length = _max_length(tokenizer, model)
    encoded = [
        tokenizer(
            text,
            add_special_tokens=not templated,
            truncation=max_length is not None,
            max_length=max_length,
        )["input_ids"]
        for text, templated in rendered
    ]
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    scores: list[float] = [math.nan] * len(encoded)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            batch = tokenizer.pad({"input_ids": [encoded[i] for i in rows]}, padding=True, return_tensors="pt")
            batch = {k: v.to(device) for k, v in batch.items()}
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            for row, value in zip(rows, logits[:, 0].float().tolist(), strict=True):
                scores[row] = float(value)
    return scores


def score_reward(examples: Sequence[Example], outputs: Sequence[str], options: ScoringConfig | None) -> list[float]:
    """Raw reward-model scores of ``outputs`` as answers to ``examples`` (``options.reward_model``)."""
    if not examples:
        return []
    options = scoring_models.scoring_options(options)
    model, tokenizer, device = scoring_models.load_reward_model(options.reward_model, options)
    questions = [example.question for example in examples]
    return reward_scores(model, tokenizer, device, questions, [o or "" for o in outputs], options.batch_size)


def min_max_normalize(values: Sequence[float], lower: float | None = None, upper: float | None = None) -> list[float]:
    """``values`` mapped linearly onto [0, 1]; used for cross-method and cross-dataset averages.

    Raw rewards are on an arbitrary scale, so averaging them with accuracies needs a common
    range. By default the bounds are the smallest and largest finite value (pass ``lower`` and
    ``upper`` to normalise several methods' scores on one shared scale); results are clipped
    to [0, 1]. When every value is equal there is no ranking information and each maps to
    0.5. Non-finite values stay NaN.
    """
    finite = [float(v) for v in values if math.isfinite(v)]
    if not finite:
        return [math.nan for _ in values]
    low = min(finite) if lower is None else float(lower)
    high = max(finite) if upper is None else float(upper)
    span = high - low
    normalized = []
    for value in values:
        if not math.isfinite(value):
            normalized.append(math.nan)
        elif span <= 0:
            normalized.append(0.5)
        else:
            normalized.append(min(1.0, max(0.0, (float(value) - low) / span)))
    return normalized


def scorer_spec() -> ScorerSpec:
    """The ``reward_model`` scorer: raw input as prompt, raw reward as score, normalised later."""
    return ScorerSpec(task_type="reward_model", prompt=raw_prompt, score=score_reward, metric="reward", normalize=True)
