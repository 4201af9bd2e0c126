"""co_llm's training, on moco's training engine: two job kinds and the rows both read.

Rows are teacher-forced gold continuations in the generator's tokens (one tokenizer for both
models): ``input_ids`` (rendered prompt, gold, EOS), ``start`` (the first gold position),
``width`` (the vocabulary both models share), and per gold token the assistant's log-probability
of it (``assistant_logprobs``) and the defer label (``defer_labels``: 1 where the assistant's
top-1 is the gold token and the generator's is not).  Precomputing the assistant's side as data
means each trainer holds one model, the generator; the rows are cached per example, so a rerun
loads no model to rebuild them and the engine finds its finished jobs by their recipe.

``co_llm_defer_head`` (phase 1) fits the defer vector ``w`` and bias ``b`` (p(defer) =
sigmoid(h·w + b) on the generator's last hidden state ``h``) on the frozen generator with a
BCE of positive weight 8.  ``co_llm_marginal`` (phase 2, ``finetune``) starts from that head
(``hyperparameters.init_from``) and trains the generator and head on the marginal likelihood
−log[(1−p)·p_gen(gold) + p·p_asst(gold)].  Both trainers live in ``co_llm_trainer``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from moco_core.backends.hf import HFModel, adds_special_tokens, render_prompt
from moco_core.cache import cache_key
from moco_core.training_data import TrainingKind, register_training_kind

HEAD_KIND = "co_llm_defer_head"
MARGINAL_KIND = "co_llm_marginal"
HEAD_FILE = "defer_head.safetensors"
POS_WEIGHT = 8.0
HEAD_STEPS = 300
HEAD_LR = 1e-2
ROWS_VERSION = 1
FIELDS = ("input_ids", "start", "width", "assistant_logprobs", "defer_labels")


def check_row(row: dict[str, Any]) -> str | None:
    """Token ids, a gold start inside them, and one assistant log-prob and label per gold token."""
    ids, start = row["input_ids"], row["start"]
    if not isinstance(ids, list) or not all(isinstance(t, int) for t in ids):
        return "input_ids: must be a list of token ids"
    if not isinstance(start, int) or not 1 <= start < len(ids):
        return f"start: must index a token of input_ids after the first (got {start!r})"
    if not isinstance(row["width"], int) or row["width"] <= max(ids[start:]):
        return "width: must exceed every gold token id"
    gold = len(ids) - start
    for name in ("assistant_logprobs", "defer_labels"):
        if not isinstance(row[name], list) or len(row[name]) != gold:
            return f"{name}: needs one value per gold token ({gold})"
    return None


register_training_kind(
    TrainingKind(
        name=HEAD_KIND,
        fields=FIELDS,
        trainer="moco_methods_api.co_llm_trainer:defer_head_trainer",
        check_row=check_row,
        adapters=("full",),
        version=f"bce-pos{POS_WEIGHT}-v1",
    )
)
register_training_kind(
    TrainingKind(
        name=MARGINAL_KIND,
        fields=FIELDS,
        trainer="moco_methods_api.co_llm_trainer:marginal_trainer",
        check_row=check_row,
        version="marginal-v1",
    )
)


def _row(generator: HFModel, assistant: HFModel, prompt: str, gold: str) -> dict[str, Any]:
    tokenizer = generator.tokenizer
    head = tokenizer(render_prompt(tokenizer, prompt, None), add_special_tokens=adds_special_tokens(tokenizer))
    tail = tokenizer(gold, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids, start = head["input_ids"] + tail, len(head["input_ids"])
    with torch.inference_mode():
        gen_logits = generator.model(input_ids=torch.tensor([ids], device=generator.device)).logits[0].float()
        asst_logits = assistant.model(input_ids=torch.tensor([ids], device=assistant.device)).logits[0].float()
    width = min(gen_logits.shape[-1], asst_logits.shape[-1])
    span = slice(start - 1, len(ids) - 1)
    target = torch.tensor(ids[start:])
    gen_lp = torch.log_softmax(gen_logits[span, :width], -1).cpu()
    asst_lp = torch.log_softmax(asst_logits[span, :width].to(gen_logits.device), -1).cpu()
    label = (asst_lp.argmax(-1) == target) & (gen_lp.argmax(-1) != target)
    return {
        "input_ids": ids,
        "start": start,
        "width": width,
        "assistant_logprobs": [round(v, 6) for v in asst_lp.gather(-1, target.unsqueeze(-1)).squeeze(-1).tolist()],
        "defer_labels": [int(v) for v in label.tolist()],
    }


def training_rows(
    pool: Any,
    names: Sequence[str],
    load: Callable[[], tuple[HFModel, HFModel]],
    prompts: Sequence[str],
    golds: Sequence[str],
) -> list[dict[str, Any]]:
    """One row per (prompt, gold), from the pool's cache or computed (``load`` is called only then)."""
    identities = [pool.identity(n) for n in names]
    keys = [
        cache_key(kind="co_llm_rows", version=ROWS_VERSION, models=identities, prompt=p, gold=g)
        for p, g in zip(prompts, golds, strict=True)
    ]
    found = pool.cache.get_many(list(dict.fromkeys(keys)))
    missing = {k: (p, g) for k, p, g in zip(keys, prompts, golds, strict=True) if k not in found}
    if missing:
        generator, assistant = load()
        made = {k: _row(generator, assistant, p, g) for k, (p, g) in missing.items()}
        pool.cache.put_many(made)
        found.update(made)
    return [found[k] for k in keys]
