"""Joint decoding of whole prompts through the pool's cache, shared by the logit-level methods.

Every answer is cached under the whole recipe (the decoding version, the members' identities
and system prompts, the method's settings, the prompt), so a repeated or resumed run decodes
nothing twice and a change to how generations are decoded is never served from old entries.
Rows are seeded as the pool seeds the anchor member's own generations (``pool.request``), so a
decode that puts all weight on the anchor reproduces its samples, not only its greedy text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from moco_core.backends.hf import row_seed
from moco_core.cache import cache_key
from moco_core.config import ModelConfig
from moco_core.engines import ENGINE_VERSION
from moco_core.engines.attention_masks import check_uneven_members
from moco_core.engines.byte_spelling import byte_spelling_problem
from moco_core.engines.decoding import Combine, JointDecoder, load_joint_decoder
from moco_core.engines.vocab_alignment import load_aligned_decoder
from moco_core.errors import MocoError
from moco_core.method import MethodContext
from moco_core.models import adapter_base, tokenizer_fingerprint
from moco_core.pool import CHUNK_BATCHES, DECODING_VERSION
from moco_core.types import Example, Generation


def check_vocabulary(key: str, models: Sequence[ModelConfig], vocabulary: str, space: str) -> None:
    """One tokenizer across the pool, unless the union vocabulary (probabilities only) or the byte
    level (any space; tokenizers that spell text as its bytes) aligns them."""
    if vocabulary in ("byte", "union"):  # engines that feed rows unevenly
        check_uneven_members(models, f"{key} with params.vocabulary: {vocabulary}")
    if vocabulary == "byte":
        for i, model in enumerate(models):
            problem = byte_spelling_problem(adapter_base(model.path, model.base) or model.path)
            if problem is not None:
                raise MocoError(f"models[{i}].path: {key} with params.vocabulary: byte {problem}")
        return
    if vocabulary == "union":
        if space != "prob":
            raise MocoError(
                f"params.space: {key} across tokenizers (vocabulary: union) averages probabilities; use prob"
            )
        return
    seen: dict[str, int] = {}
    for i, model in enumerate(models):
        fingerprint = tokenizer_fingerprint(adapter_base(model.path, model.base) or model.path)
        if fingerprint is not None:
            seen.setdefault(fingerprint, i)
    if len(seen) > 1:
        first, second = sorted(seen.values())[:2]
        raise MocoError(
            f"models[{second}].path: {key} needs the same tokenizer as models[{first}], "
            f"but {models[second].path} differs (or set params.vocabulary: union)"
        )


def _load_decoder(pool: Any, names: list[str], vocabulary: str, anchor: int) -> JointDecoder:
    if vocabulary == "byte":
        from moco_core.engines.byte_level import load_byte_decoder

        return load_byte_decoder(pool, names, budget_model=anchor)
    return load_aligned_decoder(pool, names) if vocabulary == "union" else load_joint_decoder(pool, names)


def decode_cached(
    ctx: MethodContext,
    names: list[str],
    method: str,
    combine: Combine,
    examples: list[Example],
    vocabulary: str = "shared",
    anchor: int = 0,
    **recipe: Any,
) -> list[str]:
    """One jointly decoded answer per example from members ``names`` (in that order).

    ``vocabulary`` ``union`` decodes across tokenizers through the union vocabulary, ``byte`` one
    byte at a time (its token budget counted in the anchor's tokenizer).  ``anchor`` is the index
    in ``names`` of the member whose random stream seeds the rows (the one the method leans on most).
    A cached answer records its share of the engine's work per member (the chunk's next-token
    distributions over its rows and members), so a rerun served from the cache still says what it cost.
    """
    if vocabulary != "shared":
        recipe["vocabulary"] = vocabulary
    pool = ctx.pool
    settings = ctx.settings
    system_prompts = [pool.config(n).system_prompt for n in names]
    identities = [pool.identity(n) for n in names]
    keys = [
        cache_key(
            kind="joint",
            decoding=DECODING_VERSION,
            engine=ENGINE_VERSION,
            method=method,
            models=identities,
            system_prompts=system_prompts,
            anchor=anchor,
            **recipe,
            prompt=e.prompt,
            settings=settings.cache_fields(),
        )
        for e in examples
    ]
    found = pool.cache.get_many(list(dict.fromkeys(keys)))
    texts = {k: v["text"] for k, v in found.items()}
    for key in keys:
        if key in found:
            for name in names:
                pool.compute.cached(name, [Generation.from_json(found[key], cached=True)])
    missing = list({k: e.prompt for k, e in zip(keys, examples, strict=True) if k not in texts}.items())
    if missing:
        decoder = _load_decoder(pool, names, vocabulary, anchor)
        chunk = pool.batch_size * CHUNK_BATCHES
        for start in range(0, len(missing), chunk):
            part = missing[start : start + chunk]
            prompts = [prompt for _, prompt in part]
            seeds = [row_seed(settings.seed, pool.request(names[anchor], p)) for p in prompts]
            before = sum(pool.compute.engine_tokens.values())
            outputs = decoder.decode(decoder.render(prompts, system_prompts), combine, settings, seeds)
            share = round((sum(pool.compute.engine_tokens.values()) - before) / (len(part) * len(names)))
            made = {key: text for (key, _), text in zip(part, outputs, strict=True)}
            pool.cache.put_many({k: Generation(text=t, tokens=share).to_json() for k, t in made.items()})
            texts.update(made)
            pool.stats.made += len(part)
    pool.stats.cached += len(examples) - len(missing)
    return [texts[k] for k in keys]
