"""co_llm's two losses as ``transformers.Trainer`` subclasses, built by moco's training engine.

Imported only when a co_llm job trains (``TrainingKind.trainer`` names the two functions at the
bottom).  Both wrap the generator and its defer head in one module, so the engine's trainer
loop, logging and saving apply unchanged; each defines its loss in ``compute_loss`` and writes
its result in ``save_result``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from transformers import Trainer, TrainingArguments

from moco_core.training_run import TrainerInputs
from moco_methods_api.co_llm_training import HEAD_FILE, POS_WEIGHT


class DeferModel(torch.nn.Module):
    """The generator and its defer head: p(defer) = sigmoid(h·w + b) on the last hidden state."""

    def __init__(self, generator: Any, head: dict[str, torch.Tensor] | None, train_generator: bool) -> None:
        super().__init__()
        self.generator = generator
        size = generator.get_input_embeddings().weight.shape[-1]
        self.w = torch.nn.Parameter(head["w"].float().clone() if head else torch.zeros(size))
        self.b = torch.nn.Parameter(head["b"].float().clone() if head else torch.zeros(1))
        self.train_generator = train_generator
        if not train_generator:
            generator.requires_grad_(False)

    def train(self, mode: bool = True) -> DeferModel:
        super().train(mode)
        if not self.train_generator:
            self.generator.eval()
        return self

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The generator's logits and the defer logit h·w + b at every position."""
        with torch.set_grad_enabled(self.train_generator and torch.is_grad_enabled()):
            output = self.generator(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        hidden = output.hidden_states[-1].float()
        return output.logits, hidden @ self.w + self.b

    def head(self) -> dict[str, torch.Tensor]:
        return {"w": self.w.detach().float().cpu().contiguous(), "b": self.b.detach().float().cpu().contiguous()}


def collate(rows: list[dict[str, Any]], pad_id: int, max_length: int) -> dict[str, torch.Tensor]:
    """Right-padded ids; at each position that predicts a gold token: the token, the assistant's
    log-probability of it and the defer label (sequences cut at ``max_length``)."""
    lengths = [min(len(r["input_ids"]), max_length) for r in rows]
    shape = (len(rows), max(lengths))
    batch = {
        "input_ids": torch.full(shape, pad_id, dtype=torch.long),
        "attention_mask": torch.zeros(shape, dtype=torch.long),
        "gold": torch.zeros(shape, dtype=torch.long),
        "mask": torch.zeros(shape, dtype=torch.bool),
        "assistant": torch.zeros(shape),
        "labels": torch.zeros(shape),
    }
    for i, (row, n) in enumerate(zip(rows, lengths, strict=True)):
        ids, start = row["input_ids"][:n], row["start"]
        batch["input_ids"][i, :n] = torch.tensor(ids)
        batch["attention_mask"][i, :n] = 1
        gold = n - start
        if gold > 0:
            span = slice(start - 1, n - 1)
            batch["gold"][i, span] = torch.tensor(ids[start:])
            batch["mask"][i, span] = True
            batch["assistant"][i, span] = torch.tensor(row["assistant_logprobs"][:gold])
            batch["labels"][i, span] = torch.tensor(row["defer_labels"][:gold], dtype=torch.float)
    batch["width"] = torch.tensor(min(r["width"] for r in rows))
    return batch


class _DeferTrainer(Trainer):
    def save_result(self, out: Path) -> None:
        save_file(self.model.head(), str(Path(out) / HEAD_FILE))


class DeferHeadTrainer(_DeferTrainer):
    """Phase 1: the head alone, BCE with positive weight 8, the generator frozen."""

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, **kw: Any) -> Any:
        _, defer = model(inputs["input_ids"], inputs["attention_mask"])
        mask = inputs["mask"]
        weight = torch.tensor(POS_WEIGHT, device=defer.device)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            defer[mask], inputs["labels"][mask], pos_weight=weight
        )
        return (loss, None) if return_outputs else loss


class MarginalTrainer(_DeferTrainer):
    """Phase 2: generator and head on −log[(1−p)·p_gen(gold) + p·p_asst(gold)]."""

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, **kw: Any) -> Any:
        logits, defer = model(inputs["input_ids"], inputs["attention_mask"])
        width = int(inputs["width"])
        gen = torch.log_softmax(logits[..., :width].float(), -1).gather(-1, inputs["gold"].unsqueeze(-1)).squeeze(-1)
        mixed = torch.logaddexp(
            torch.nn.functional.logsigmoid(-defer) + gen, torch.nn.functional.logsigmoid(defer) + inputs["assistant"]
        )
        loss = -mixed[inputs["mask"]].mean()
        return (loss, None) if return_outputs else loss

    def save_result(self, out: Path) -> None:
        self.model.generator.save_pretrained(out)
        super().save_result(out)


def _build(inputs: TrainerInputs, trainer: type[Trainer], head: dict[str, torch.Tensor] | None, train: bool) -> Any:
    generator = inputs.model
    if train and inputs.peft_config is not None:
        from peft import get_peft_model

        generator = get_peft_model(generator, inputs.peft_config)
    pad = inputs.tokenizer.pad_token_id
    max_length = inputs.hyper.max_length
    return trainer(
        model=DeferModel(generator, head, train_generator=train),
        args=TrainingArguments(**inputs.args, remove_unused_columns=False),
        train_dataset=inputs.dataset,
        data_collator=lambda rows: collate(rows, pad, max_length),
    )


def defer_head_trainer(inputs: TrainerInputs) -> Any:
    return _build(inputs, DeferHeadTrainer, None, train=False)


def marginal_trainer(inputs: TrainerInputs) -> Any:
    head = load_file(str(Path(inputs.init_from) / HEAD_FILE)) if inputs.init_from else None
    return _build(inputs, MarginalTrainer, head, train=True)
