"""Co-LLM training: the generator's ``<|defer|>`` output vector, then (optionally) the generator.

Training runs teacher-forced over gold continuations.  At each gold token the label is 1 when
the assistant's top-1 is the gold token and the generator's is not.  Phase 1 fits the defer
vector ``w`` and bias ``b`` (p(defer) = sigmoid(h·w + b) on the generator's last hidden state
``h``) on frozen hidden states with a positive-weighted BCE.  Phase 2 trains the generator and
the head on the marginal likelihood −log[(1−p)·p_gen(gold) + p·p_asst(gold)], the assistant
frozen.  Results are content-addressed under the moco cache, so one recipe trains once.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from moco_core.backends.hf import HFModel, adds_special_tokens, render_prompt
from moco_core.cache import cache_key, default_cache_dir

POS_WEIGHT = 8.0
HEAD_STEPS = 300
HEAD_LR = 1e-2
HEAD_FILE = "defer_head.pt"


def _sequences(generator: HFModel, prompts: Sequence[str], golds: Sequence[str]) -> list[tuple[list[int], int]]:
    """(ids, prompt length) per example: the generator's rendered prompt, then the gold and EOS."""
    tokenizer = generator.tokenizer
    special = adds_special_tokens(tokenizer)
    out = []
    for prompt, gold in zip(prompts, golds, strict=True):
        head = tokenizer(render_prompt(tokenizer, prompt, None), add_special_tokens=special)["input_ids"]
        tail = tokenizer(gold, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        out.append((head + tail, len(head)))
    return out


def _forward(hf: HFModel, model: Any, ids: list[int], hidden: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    output = model(input_ids=torch.tensor([ids], device=hf.device), output_hidden_states=hidden)
    return output.logits[0].float(), (output.hidden_states[-1][0].float() if hidden else None)


def _labelled(generator: HFModel, assistant: HFModel, sequences: list[tuple[list[int], int]]) -> list[dict]:
    """Per example: gold ids, generator hidden states, both models' log-probs at the gold positions."""
    items = []
    with torch.inference_mode():
        for ids, start in sequences:
            gen_logits, hidden = _forward(generator, generator.model, ids, True)
            asst_logits, _ = _forward(assistant, assistant.model, ids, False)
            width = min(gen_logits.shape[-1], asst_logits.shape[-1])
            span = slice(start - 1, len(ids) - 1)
            gold = torch.tensor(ids[start:], device=gen_logits.device)
            gen_lp = torch.log_softmax(gen_logits[span, :width], -1)
            asst_lp = torch.log_softmax(asst_logits[span, :width], -1)
            label = (asst_lp.argmax(-1) == gold) & (gen_lp.argmax(-1) != gold)
            assert hidden is not None
            items.append({"ids": ids, "start": start, "hidden": hidden[span], "asst_lp": asst_lp, "label": label})
    return items


def fit_head(items: list[dict], hidden_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Phase 1: logistic regression of the labels on frozen hidden states (BCE, positive weight 8)."""
    torch.manual_seed(seed)
    features = torch.cat([i["hidden"] for i in items]).cpu()
    labels = torch.cat([i["label"] for i in items]).float().cpu()
    w = torch.zeros(hidden_size, requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.Adam([w, b], lr=HEAD_LR)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(POS_WEIGHT))
    for _ in range(HEAD_STEPS):
        optimizer.zero_grad()
        loss = loss_fn(features @ w + b, labels)
        loss.backward()
        optimizer.step()
    return w.detach(), b.detach()


def finetune(
    generator_path: str, items: list[dict], head: tuple[torch.Tensor, torch.Tensor], epochs: int, lr: float, seed: int
) -> tuple[Any, tuple[torch.Tensor, torch.Tensor]]:
    """Phase 2: the generator (a fresh copy) and head on the marginal likelihood of the gold tokens."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    device = items[0]["hidden"].device
    model = AutoModelForCausalLM.from_pretrained(generator_path, dtype=torch.float32).to(device)
    model.train()
    w, b = (t.clone().to(device).requires_grad_(True) for t in head)
    optimizer = torch.optim.AdamW([*model.parameters(), w, b], lr=lr)
    for _ in range(epochs):
        for item in items:
            ids, start = item["ids"], item["start"]
            output = model(input_ids=torch.tensor([ids], device=device), output_hidden_states=True)
            span = slice(start - 1, len(ids) - 1)
            width = item["asst_lp"].shape[-1]
            gen_lp = torch.log_softmax(output.logits[0, span, :width].float(), -1)
            p = torch.sigmoid(output.hidden_states[-1][0, span].float() @ w + b)
            gold = torch.tensor(ids[start:], device=device).unsqueeze(-1)
            mixed = torch.logaddexp(
                torch.log1p(-p) + gen_lp.gather(-1, gold).squeeze(-1),
                torch.log(p) + item["asst_lp"].gather(-1, gold).squeeze(-1),
            )
            loss = -mixed.mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    return model.cpu(), (w.detach().cpu(), b.detach().cpu())


def train_co_llm(
    load: Callable[[], tuple[HFModel, HFModel]],
    generator_path: str,
    identities: list[dict],
    prompts: Sequence[str],
    golds: Sequence[str],
    finetune_epochs: int | None,
    lr: float,
    seed: int,
) -> Path:
    """A folder holding the defer head (and, when fine-tuned, the generator); reused when complete.

    ``load`` gives the loaded (generator, assistant) and is called only when training is needed.
    """
    recipe = {
        "kind": "co_llm",
        "models": identities,
        "data": cache_key(prompts=list(prompts), golds=list(golds)),
        "finetune_epochs": finetune_epochs,
        "lr": lr,
        "seed": seed,
        "head": [POS_WEIGHT, HEAD_STEPS, HEAD_LR],
    }
    folder = default_cache_dir() / "co_llm" / cache_key(**recipe)[:24]
    if (folder / "recipe.json").is_file():
        return folder
    generator, assistant = load()
    items = _labelled(generator, assistant, _sequences(generator, prompts, golds))
    head = fit_head(items, items[0]["hidden"].shape[-1], seed)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    if finetune_epochs:
        model, head = finetune(generator_path, items, head, finetune_epochs, lr, seed)
        model.save_pretrained(partial)
        generator.tokenizer.save_pretrained(partial)
    torch.save(
        {"w": head[0], "b": head[1], "positives": int(sum(int(i["label"].sum()) for i in items))}, partial / HEAD_FILE
    )
    (partial / "recipe.json").write_text(json.dumps(recipe))
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return folder
