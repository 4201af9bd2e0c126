"""The text exchange's reference: every step re-encodes prompt + the whole text and runs a full
forward, one row at a time, as the original implementations did.

Tests check that the engine's caches give exactly its distributions; benchmarks time the engine
against it.  Nothing is cached, so it is slow by design.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from moco_core.backends.hf import HFModel, adds_special_tokens
from moco_core.engines.text_exchange import TextExchangeDecoder


class FullRecompute:
    """A stream (``sync(rows, texts, extras) -> logits``) that reads prompt + text (+ raw ids) from scratch
    every time."""

    def __init__(self, hf: HFModel, prompts: Sequence[str]) -> None:
        self.hf = hf
        special = adds_special_tokens(hf.tokenizer)
        self.prompt_ids = [hf.tokenizer(p, add_special_tokens=special)["input_ids"] for p in prompts]

    def sync(
        self, rows: Sequence[int], texts: Sequence[str], extras: Sequence[Sequence[int]] | None = None
    ) -> torch.Tensor:
        out = []
        for i, (row, text) in enumerate(zip(rows, texts, strict=True)):
            ids = self.prompt_ids[row] + self.hf.tokenizer(text, add_special_tokens=False)["input_ids"]
            ids += list(extras[i]) if extras is not None else []
            out.append(self.hf.model(input_ids=torch.tensor([ids], device=self.hf.device)).logits[0, -1])
        return torch.stack(out)


class ReferenceExchange(TextExchangeDecoder):
    """The text exchange decoder over ``FullRecompute`` streams (use ``batch_size=1``)."""

    def streams(self, prompts: list[list[str]], reserve: int = 0) -> list[Any]:
        return [FullRecompute(m, p) for m, p in zip(self.models, prompts, strict=True)]
