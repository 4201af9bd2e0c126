"""Joint decoding across tokenizers through a union vocabulary (as in GaC, Yu et al. 2024).

Every token of every model is named by the bytes it stands for; the union vocabulary holds each
distinct byte string once (the first model's tokens first, in its id order, so a pool with one
tokenizer keeps its ids).  At each step every model's next-token distribution is moved onto the
union (probabilities of tokens with the same bytes add up), the distributions are combined there,
and one union token per row is drawn.  Each model then reads that token: its own id when it has a
token with exactly those bytes, else the text is re-encoded with its tokenizer — only the bytes
since the last token it could read, never the whole prefix — once those bytes form whole UTF-8
characters.  Every model keeps its own KV cache; a step may feed a model 0, 1 or several tokens,
right-padded and masked.  End-of-sequence tokens of all models are one union token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from moco_core.backends.hf import HFModel, RowSeededSampler, active_adapter
from moco_core.engines.decoding import Combine, DecodeStep, JointDecoder, StepHook, _ModelStream, load_hf_members
from moco_core.engines.tokenizer_ops import TokenSpelling
from moco_core.types import GenerationSettings

STOP = b"\xff<stop>"
SPECIAL = b"\xff"


def token_bytes(tokenizer: Any, stop_ids: set[int]) -> list[bytes]:
    """The bytes each token id stands for; special tokens get a reserved key, stop tokens one shared key."""
    size = len(tokenizer)
    tokens = tokenizer.convert_ids_to_tokens(list(range(size)))
    special = set(tokenizer.all_special_ids)
    spelling = TokenSpelling(tokenizer)
    keys = []
    for index, token in enumerate(tokens):
        token = token or ""
        if index in stop_ids:
            keys.append(STOP)
        elif index in special:
            keys.append(SPECIAL + token.encode("utf-8"))
        else:
            keys.append(spelling.of_token(token))
    return keys


class UnionVocabulary:
    """Maps each model's token ids onto one vocabulary of distinct byte strings."""

    def __init__(self, tokenizers: Sequence[Any], stop_ids: Sequence[set[int]], device: Any = "cpu") -> None:
        self.keys: list[bytes] = []
        index: dict[bytes, int] = {}
        self.maps: list[torch.Tensor] = []
        self.lookup: list[dict[int, int]] = []
        for tokenizer, stops in zip(tokenizers, stop_ids, strict=True):
            ids, own = [], {}
            for token_id, key in enumerate(token_bytes(tokenizer, stops)):
                if key not in index:
                    index[key] = len(self.keys)
                    self.keys.append(key)
                ids.append(index[key])
                own.setdefault(index[key], token_id)
            self.maps.append(torch.tensor(ids, dtype=torch.long, device=device))
            self.lookup.append(own)
        self.stop = index.get(STOP, -1)
        self.size = len(self.keys)

    def project(self, model: int, log_probs: torch.Tensor) -> torch.Tensor:
        """Model ``model``'s log-probabilities ``(batch, its vocab)`` as log-probabilities over the union."""
        mapping = self.maps[model]
        probs = log_probs[:, : mapping.shape[0]].exp()
        union = torch.zeros(probs.shape[0], self.size, dtype=probs.dtype, device=probs.device)
        union.scatter_add_(1, mapping.to(probs.device).expand(probs.shape[0], -1), probs)
        return union.log()


def _advance(stream: _ModelStream, feeds: list[list[int]], pad_id: int) -> None:
    """Feed each row its own number of tokens (0 or more), right-padded and masked, in one forward."""
    width = max(len(f) for f in feeds)
    if width == 0:
        return
    device = stream.hf.device
    lengths = torch.tensor([len(f) for f in feeds], device=device)
    input_ids = torch.tensor([f + [pad_id] * (width - len(f)) for f in feeds], device=device)
    real = (torch.arange(width, device=device).unsqueeze(0) < lengths.unsqueeze(1)).long()
    stream.attention_mask = torch.cat([stream.attention_mask, real], dim=-1)
    position_ids = stream.next_position + torch.arange(width, device=device).unsqueeze(0)
    extra: dict[str, Any] = {stream._cache_argument: stream.cache}
    with active_adapter(stream.hf):
        output = stream.hf.model(
            input_ids=input_ids,
            attention_mask=stream.mask_for(stream.attention_mask, width),
            position_ids=position_ids,
            use_cache=True,
            **extra,
        )
    last = (lengths - 1).clamp(min=0)
    fresh = output.logits[torch.arange(len(feeds), device=device), last, :]
    stream.logits = torch.where((lengths > 0).unsqueeze(-1), fresh, stream.logits)
    stream.next_position = stream.next_position + lengths.unsqueeze(-1)


class AlignedJointDecoder(JointDecoder):
    """``JointDecoder`` for models with different tokenizers; ``combine`` sees union log-probabilities.

    Texts are the first model's reading of the chosen tokens, so with all weight on the first
    model the text is exactly its own.
    """

    def __init__(self, models: Sequence[HFModel], batch_size: int = 16) -> None:
        self._own_vocabularies(models, batch_size)
        self.vocabulary = UnionVocabulary([m.tokenizer for m in models], self.stops, self.device)

    def _read(self, model: int, row: int, token: int, pending: list[list[bytearray]]) -> list[int]:
        """The ids model ``model`` reads for union token ``token`` in row ``row`` (maybe none yet)."""
        buffer = pending[model][row]
        own = self.vocabulary.lookup[model].get(token)
        if own is not None and not buffer:
            return [own]
        key = self.vocabulary.keys[token]
        buffer.extend(b"" if key.startswith(SPECIAL) else key)
        try:
            text = bytes(buffer).decode("utf-8")
        except UnicodeDecodeError:
            return []
        buffer.clear()
        return self.models[model].tokenizer.encode(text, add_special_tokens=False) if text else []

    def _decode_batch(
        self,
        rows: list[int],
        texts: list[list[str]],
        combine: Combine,
        settings: GenerationSettings,
        seeds: list[int],
        step_hook: StepHook | None,
        hidden_states: set[int] | None = None,
    ) -> list[list[int]]:
        members = zip(self.models, texts, self.pads, strict=True)
        streams = [_ModelStream(m, t, pad, uneven=True) for m, t, pad in members]
        sampler = RowSeededSampler(seeds, settings.temperature, settings.top_p)
        finished = torch.zeros(len(rows), dtype=torch.bool, device=self.device)
        pending = [[bytearray() for _ in rows] for _ in streams]
        read: list[list[int]] = [[] for _ in rows]
        widths = [mapping.shape[0] for mapping in self.vocabulary.maps]
        for index in range(settings.max_new_tokens):
            log_probs = [
                self.vocabulary.project(m, torch.log_softmax(s.logits[:, :width].float(), dim=-1).to(self.device))
                for m, (s, width) in enumerate(zip(streams, widths, strict=True))
            ]
            combined = combine(log_probs)
            if step_hook is not None:
                replaced = step_hook(DecodeStep(index, rows, log_probs, combined, finished.clone(), []))
                combined = combined if replaced is None else replaced
            tokens = sampler(None, combined).argmax(dim=-1).tolist()
            done = finished.tolist()
            for m, stream in enumerate(streams):
                feeds = [
                    [] if done[r] or t == self.vocabulary.stop else self._read(m, r, t, pending)
                    for r, t in enumerate(tokens)
                ]
                if m == 0:
                    for r, ids in enumerate(feeds):
                        read[r].extend(ids)
                if index + 1 < settings.max_new_tokens:
                    _advance(stream, feeds, self.pads[m])
            finished |= torch.tensor([t == self.vocabulary.stop for t in tokens], device=self.device)
            if bool(finished.all()):
                break
        return read


def load_aligned_decoder(pool: Any, names: Sequence[str]) -> AlignedJointDecoder:
    """An ``AlignedJointDecoder`` over pool members ``names`` (hf backend, all loaded at once)."""
    return AlignedJointDecoder(load_hf_members(pool, names), batch_size=pool.batch_size)
