"""What the token-level methods share: cached decoding of whole rows and who-wrote-what extras.

A token-level continuation depends on every model involved, so it is cached under all their
identities, the method's settings and the prompt; finished chunks are stored at once, so an
interrupted run keeps them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from moco_core.cache import cache_key
from moco_core.engines import ENGINE_VERSION
from moco_core.engines.decoding import check_resident as resident_cap
from moco_core.method import MethodContext
from moco_core.pool import CHUNK_BATCHES
from moco_core.types import Example, Prediction
from moco_core.validation import RunPlan
from moco_methods_api.usage import UsageTally

Decode = Callable[[list[str]], list[dict[str, Any]]]
"""Decodes prompts into result dicts with at least ``text``, ``spans`` and ``tokens_by_model``."""


def check_resident(plan: RunPlan, paths: Sequence[str], purpose: str) -> None:
    """At plan time, before any model loads: the distinct models (``paths``) the method keeps loaded
    at once must fit ``hardware.max_resident_models``."""
    resident_cap(plan.config.hardware.max_resident_models, len(set(paths)), purpose)


def cached_decode(
    ctx: MethodContext,
    method: str,
    names: Sequence[str],
    settings: dict[str, Any],
    prompts: Sequence[str],
    decode: Decode,
) -> list[dict[str, Any]]:
    """One result per prompt, read from the cache or decoded in chunks (``decode`` loads the models)."""
    pool = ctx.pool
    keys = [
        cache_key(
            kind="exchange",
            engine=ENGINE_VERSION,
            method=method,
            models=[pool.identity(n) for n in names],
            system_prompts=[pool.config(n).system_prompt for n in names],
            params=settings,
            prompt=prompt,
            settings=ctx.settings.cache_fields(),
        )
        for prompt in prompts
    ]
    found = pool.cache.get_many(list(dict.fromkeys(keys)))
    missing = list({k: p for k, p in zip(keys, prompts, strict=True) if k not in found}.items())
    chunk = pool.batch_size * CHUNK_BATCHES
    for start in range(0, len(missing), chunk):
        part = missing[start : start + chunk]
        made = dict(zip([k for k, _ in part], decode([p for _, p in part]), strict=True))
        pool.cache.put_many(made)
        found.update(made)
        pool.stats.made += len(part)
    pool.stats.cached += len(prompts) - len(missing)
    return [found[k] for k in keys]


def exchange_result(result: Any, names: Sequence[str], log: Any) -> dict[str, Any]:
    """A decoder ``RowResult`` as a JSON dict, models named, with the method's own ``log``."""
    return {
        "text": result.text,
        "spans": [{"model": names[s.model], "text": s.text, "tokens": s.tokens} for s in result.spans],
        "tokens_by_model": {names[i]: n for i, n in enumerate(result.tokens_by_model)},
        "log": log,
    }


def token_spans(tokenizer: Any, ids: Sequence[int], writers: Sequence[int], names: Sequence[str]) -> list[dict]:
    """Spans of one token stream (``writers[i]``: index of the model that chose token ``i``) whose
    texts join to the stream's decoded text.

    Each span's text is what decoding up to its last token adds; where that re-decodes the end of
    the text before (a character whose bytes two spans share), the earlier spans are cut back, so
    the character goes to the span that completed it.
    """
    spans: list[dict[str, Any]] = []
    text, start = "", 0
    for end in range(1, len(ids) + 1):
        if end < len(ids) and writers[end] == writers[start]:
            continue
        full = tokenizer.decode(list(ids[:end]), skip_special_tokens=True)
        keep = _common_prefix(text, full)
        surplus = len(text) - keep
        for span in reversed(spans):
            if not surplus:
                break
            cut = min(surplus, len(span["text"]))
            span["text"], surplus = span["text"][: len(span["text"]) - cut], surplus - cut
        spans.append({"model": names[writers[start]], "text": full[keep:], "tokens": end - start})
        text, start = full, end
    return spans


def _common_prefix(a: str, b: str) -> int:
    limit = min(len(a), len(b))
    return next((i for i in range(limit) if a[i] != b[i]), limit)


def token_predictions(
    tally: UsageTally, examples: Sequence[Example], results: Sequence[dict[str, Any]], log_name: str
) -> list[Prediction]:
    """Predictions whose extras hold the spans (who wrote what), the method's log and token counts
    (of every pool model: those the method did not use wrote 0), and, where a method generated more
    than its answers hold, ``generated_tokens_by_model`` (also naming the tally's helper models, a
    selector LM, whose tokens cost but are not in the answer)."""
    predictions = []
    for _, result in zip(examples, results, strict=True):
        tokens = {name: result["tokens_by_model"].get(name, 0) for name in tally.names}
        extras = {"spans": result["spans"], log_name: result["log"], "tokens_by_model": tokens}
        generated = None
        if "generated_tokens_by_model" in result:
            generated = {name: result["generated_tokens_by_model"].get(name, 0) for name in tally.tokens}
            extras["generated_tokens_by_model"] = generated
        tally.add(None, tokens, generated)
        predictions.append(Prediction(output=result["text"], extras=extras))
    return predictions
