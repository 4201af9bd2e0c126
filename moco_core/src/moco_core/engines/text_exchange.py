"""Text exchange: models with different tokenizers take turns writing one shared text.

Every row (prompt) has one continuation text that any model may extend.  Each model keeps its
own KV cache over its own prompt plus its own tokenization of that text.  When a model is asked
for its next-token distribution, the text written since it last looked is re-encoded in its
tokenizer and compared with the tokens already in its cache: the common prefix stays, tokens
that no longer match (a word another model finished, so it tokenizes differently) are masked
out of the cache, and only the new tokens are fed.  The prefix is never recomputed, yet the
cache always equals what a model re-reading the whole text would see.  Re-encoding starts at
the last clean boundary before the change (the start of the pre-token that holds the last
committed token), so tokenisation work per step is a word, not the whole text.

A ``policy`` decides, each step and for each unfinished row, which model writes the next token
and from which distribution; it asks the view for any model's distribution (or last hidden
state) of any rows, at the shared text or at a lookahead text, and may also commit a whole
text it drafted.  Tokens are drawn with the hf backend's per-row seeding, so a row's text never
depends on its batch neighbours.  A row stops at its writer's EOS or after ``max_new_tokens``
generated tokens.  Masked-out cache columns are dropped once they make up most of the cache.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from moco_core.backends.hf import HFModel, RowSeededSampler, active_adapter, eos_ids, render_prompt
from moco_core.engines.decoding import _ModelStream, load_hf_members
from moco_core.errors import MocoError
from moco_core.types import GenerationSettings

COMPACT_SLACK = 32
"""Dead cache columns tolerated beyond the live ones before the cache is compacted."""


@dataclass
class Span:
    """A run of consecutive tokens by one model: its index and the text it wrote."""

    model: int
    text: str = ""
    tokens: int = 0


@dataclass
class RowResult:
    """One row's continuation, its spans (who wrote what) and generated tokens per model."""

    text: str
    spans: list[Span]
    tokens_by_model: list[int]


@dataclass
class Choice:
    """The policy's decision for one row: ``model`` writes one token drawn from ``log_probs`` (its
    vocabulary), or, when ``text`` is given, that whole text (``tokens`` long; ``stop`` ends the row)."""

    model: int
    log_probs: torch.Tensor | None = None
    text: str | None = None
    tokens: int = 0
    stop: bool = False


class _TextStream(_ModelStream):
    """A model's cache over prompt + its tokenization of the shared text, kept in sync lazily."""

    def __init__(self, hf: HFModel, texts: Sequence[str], pad_id: int, keep_hidden: bool = False) -> None:
        with active_adapter(hf):
            super().__init__(hf, texts, pad_id, keep_hidden=keep_hidden)
        count = len(texts)
        self.pad_id = pad_id
        self.splits = _splits_words(hf.tokenizer)
        self.ids: list[list[int]] = [[] for _ in range(count)]
        self.columns: list[list[int]] = [[] for _ in range(count)]
        self.boundaries: list[list[tuple[int, int]]] = [[] for _ in range(count)]
        """Per row: (token index, character offset) of every cached token that starts a pre-token."""
        self.seen: list[str] = [""] * count
        self.row_logits: list[torch.Tensor] = [self.logits[r] for r in range(count)]
        self.prompt_logits = list(self.row_logits)
        self.row_hidden: list[torch.Tensor | None] = [
            self.hidden[r] if self.hidden is not None else None for r in range(count)
        ]
        self.prompt_hidden = list(self.row_hidden)
        self._buffers: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
        """Per cache layer and keys/values: the layer's tensor and the wider buffer it views."""

    def _boundary(self, row: int, changed: int) -> tuple[int, int]:
        """The last clean boundary safely before character ``changed``: (tokens kept, offset).

        Tokens never cross pre-token boundaries, and a pre-token can only grow or re-split at
        its end (a whitespace run may give its last space to the next word), so text before
        the start of the pre-token preceding the change always tokenizes the same.
        """
        if not self.splits:
            return 0, 0
        before = [b for b in self.boundaries[row] if b[1] < changed]
        return before[-2] if len(before) >= 2 else (0, 0)

    def _encode(self, texts: list[str], offsets: list[int]) -> list[tuple[list[int], list[tuple[int, int]]]]:
        """Per text: its token ids and pre-token boundaries (token index, offset + start), in one call."""
        encoded = self.hf.tokenizer(texts, add_special_tokens=False)
        if not self.splits:
            return [(list(ids), []) for ids in encoded["input_ids"]]
        pre_tokenizer = self.hf.tokenizer.backend_tokenizer.pre_tokenizer
        results = []
        for index, (text, offset) in enumerate(zip(texts, offsets, strict=True)):
            starts = [start for _, (start, _) in pre_tokenizer.pre_tokenize_str(text)]
            words = encoded.word_ids(index)
            boundaries = []
            for i, word in enumerate(words):
                if word is not None and (i == 0 or words[i - 1] != word) and word < len(starts):
                    boundaries.append((i, offset + starts[word]))
            results.append((list(encoded["input_ids"][index]), boundaries))
        return results

    def sync(self, rows: Sequence[int], texts: Sequence[str]) -> torch.Tensor:
        """Next-token logits of ``rows`` after their texts became ``texts``; feeds only what changed."""
        blocks: dict[int, list[int]] = {}
        changed: dict[int, tuple[str, int, int]] = {}
        for row, text in zip(rows, texts, strict=True):
            if text != self.seen[row]:
                changed[row] = (text, *self._boundary(row, _common_prefix(self.seen[row], text)))
        tails = [text[offset:] for text, _, offset in changed.values()]
        encoded = self._encode(tails, [offset for _, _, offset in changed.values()]) if changed else []
        for (row, (text, keep, _)), (new_ids, new_boundaries) in zip(changed.items(), encoded, strict=True):
            shared = _common_prefix(self.ids[row][keep:], new_ids)
            self.seen[row] = text
            self.boundaries[row] = [b for b in self.boundaries[row] if b[0] < keep] + [
                (keep + i, at) for i, at in new_boundaries
            ]
            keep += shared
            new_ids = new_ids[shared:]
            if not new_ids and keep == len(self.ids[row]):
                continue
            if not new_ids and keep == 0:  # back to the bare prompt, whose logits are kept
                self._forget(row, 0)
                self.row_logits[row] = self.prompt_logits[row]
                self.row_hidden[row] = self.prompt_hidden[row]
                continue
            if not new_ids:  # the text lost its tail: feed the last kept token again for fresh logits
                keep -= 1
                new_ids = [self.ids[row][keep]]
            self._forget(row, keep)
            self.ids[row].extend(new_ids)
            blocks[row] = new_ids
        if blocks:
            self._extend(blocks)
        return torch.stack([self.row_logits[r] for r in rows])

    def _forget(self, row: int, keep: int) -> None:
        stale = self.columns[row][keep:]
        if stale:
            self.attention_mask[row, stale] = 0
            self.next_position[row] -= len(stale)
        del self.ids[row][keep:], self.columns[row][keep:]

    def _compact(self) -> None:
        """Drop masked-out cache columns once they are most of the cache, re-packing rows left-padded.

        Rotary positions are baked into the cached keys, so moving a column changes nothing but
        the memory and time attention spends on dead entries.
        """
        live = self.attention_mask.bool()
        total, width = live.shape[1], int(live.sum(-1).max())
        layers = getattr(self.cache, "layers", [])
        if total < 2 * width + COMPACT_SLACK or not layers or any(type(x).__name__ != "DynamicLayer" for x in layers):
            return
        index = torch.sort(live.int(), dim=-1, stable=True).indices[:, total - width :]
        for layer in layers:
            gather = index[:, None, :, None].expand(-1, layer.keys.shape[1], -1, layer.keys.shape[-1])
            layer.keys = layer.keys.gather(2, gather)
            layer.values = layer.values.gather(2, gather)
        self.attention_mask = live.gather(1, index).to(self.attention_mask.dtype)
        for row, columns in enumerate(self.columns):
            self.columns[row] = list(range(width - len(columns), width))

    def _extend(self, blocks: dict[int, list[int]]) -> None:
        """Append each row's new tokens (left-padded to one width; other rows all padding).

        With a plain dynamic cache only the rows that have tokens go through the model.
        """
        self._compact()
        count, base = self.attention_mask.shape
        width = max(len(tokens) for tokens in blocks.values())
        rows = sorted(blocks)
        layers = getattr(self.cache, "layers", [])
        subset = len(rows) < count and layers and all(type(x).__name__ == "DynamicLayer" for x in layers)
        fed = rows if subset else range(count)
        next_position = self.next_position.squeeze(-1).tolist()
        input_ids, positions = [], []
        mask = [[0] * width for _ in range(count)]
        for row in fed:
            tokens = blocks.get(row, [])
            n, start = len(tokens), next_position[row]
            input_ids.append([self.pad_id] * (width - n) + tokens)
            positions.append([0] * (width - n) + list(range(start, start + n)))
        for row, tokens in blocks.items():
            n = len(tokens)
            mask[row][width - n :] = [1] * n
            self.columns[row].extend(range(base + width - n, base + width))
            next_position[row] += n
        device = self.hf.device
        self.next_position = torch.tensor(next_position, dtype=self.next_position.dtype, device=device)[:, None]
        mask_tensor = torch.tensor(mask, dtype=self.attention_mask.dtype, device=device)
        self.attention_mask = torch.cat([self.attention_mask, mask_tensor], dim=-1)
        ids_tensor = torch.tensor(input_ids, dtype=torch.long, device=device)
        positions_tensor = torch.tensor(positions, dtype=torch.long, device=device)
        if subset:
            logits = self._forward_rows(rows, ids_tensor, positions_tensor)
            at = {row: i for i, row in enumerate(rows)}
        else:
            with active_adapter(self.hf):
                logits = self._forward(ids_tensor, positions_tensor)
            at = {row: row for row in rows}
        for row in rows:
            self.row_logits[row] = logits[at[row]]
            if self.hidden is not None:
                self.row_hidden[row] = self.hidden[at[row]]

    def _forward_rows(self, rows: list[int], input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Forward only ``rows`` (``input_ids`` and ``positions`` hold theirs alone): each cache layer
        is cut to those rows for the forward, then every row gets the new columns, others zeros
        (masked out)."""
        index = torch.tensor(rows, device=self.attention_mask.device)
        layers = self.cache.layers
        full = [(layer.keys, layer.values) for layer in layers]
        mask = self.attention_mask
        for layer, (keys, values) in zip(layers, full, strict=True):
            layer.keys, layer.values = keys.index_select(0, index), values.index_select(0, index)
        self.attention_mask = mask.index_select(0, index)
        try:
            with active_adapter(self.hf):
                logits = self._forward(input_ids, positions)
        finally:
            self.attention_mask = mask
        total, width = mask.shape[1], input_ids.shape[1]
        for slot, (layer, (keys, values)) in enumerate(zip(layers, full, strict=True)):
            grown = []
            for kind, old, sub in ((0, keys, layer.keys), (1, values, layer.values)):
                tensor = self._grow((slot, kind), old, total)
                tensor[:, :, total - width :].index_copy_(0, index, sub[:, :, total - width :])
                grown.append(tensor)
            layer.keys, layer.values = grown
        return logits

    def _grow(self, slot: tuple[int, int], tensor: torch.Tensor, total: int) -> torch.Tensor:
        """``tensor`` (batch, heads, columns, dim) widened to ``total`` columns, the new ones zeros.

        The result is a view into a zero-filled buffer with room to spare, so while the cache
        keeps growing a step writes only its new columns instead of copying the whole cache.
        """
        view, buffer = self._buffers.get(slot, (None, None))
        if view is not tensor or buffer is None or buffer.shape[2] < total:
            shape = (tensor.shape[0], tensor.shape[1], total + max(COMPACT_SLACK, total // 2), tensor.shape[3])
            buffer = tensor.new_zeros(shape)
            buffer[:, :, : tensor.shape[2]] = tensor
        view = buffer[:, :, :total]
        self._buffers[slot] = (view, buffer)
        return view


def _common_prefix(a: Sequence[Any], b: Sequence[Any]) -> int:
    limit = min(len(a), len(b))
    if a[:limit] == b[:limit]:
        return limit
    i = 0
    while i < limit and a[i] == b[i]:
        i += 1
    return i


def _splits_words(tokenizer: Any) -> bool:
    """Whether re-encoding may start at a pre-token boundary.

    True for pre-tokenizers that split into words without adding anything (byte-level BPE);
    a Metaspace pre-tokenizer or a prepending normalizer adds a word marker at the start of
    whatever text it sees, so those tokenizers re-encode the whole continuation instead.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    pre_tokenizer = getattr(backend, "pre_tokenizer", None)
    if pre_tokenizer is None:
        return False
    return "Metaspace" not in repr(pre_tokenizer) and "Prepend" not in repr(getattr(backend, "normalizer", None))


class ExchangeView:
    """What a policy sees of one step of one batch: rows, their texts and spans, and distributions."""

    def __init__(self, engine: TextExchangeBatch, step: int, active: list[int]) -> None:
        self._engine = engine
        self.step = step
        self.active = active
        """Batch positions of the rows still generating."""

    def prompt_index(self, position: int) -> int:
        """The row's index in the prompts given to ``decode`` (stable keys for per-row state)."""
        return self._engine.rows[position]

    def text(self, position: int) -> str:
        return self._engine.texts[position]

    def spans(self, position: int) -> list[Span]:
        return self._engine.spans[position]

    def generated(self, position: int) -> int:
        """Tokens generated so far in this row (by any model)."""
        return self._engine.generated[position]

    def log_probs(self, model: int, positions: Sequence[int], texts: Sequence[str] | None = None) -> torch.Tensor:
        """Model ``model``'s next-token log-probabilities (temperature 1) for those rows.

        ``texts`` asks about other continuations than the rows' texts (a lookahead); the model's
        cache follows them, and returns to the shared text on the next plain call by feeding
        only where the two differ.
        """
        positions = list(positions)
        if not positions:
            return torch.zeros((0, 0))
        texts = list(texts) if texts is not None else [self._engine.texts[p] for p in positions]
        logits = self._engine.streams[model].sync(positions, texts)
        return torch.log_softmax(logits.float(), dim=-1)

    def hidden(self, model: int, positions: Sequence[int], texts: Sequence[str] | None = None) -> torch.Tensor:
        """Model ``model``'s last hidden state at the end of each row's text (or ``texts``).

        Only for models the decoder was built to keep hidden states of (``hidden_states``).
        """
        positions = list(positions)
        texts = list(texts) if texts is not None else [self._engine.texts[p] for p in positions]
        stream = self._engine.streams[model]
        stream.sync(positions, texts)
        rows = [stream.row_hidden[p] for p in positions]
        if any(r is None for r in rows):
            raise ValueError(f"model {model} was not asked to keep hidden states")
        return torch.stack([r for r in rows if r is not None])

    def sample(self, positions: Sequence[int], log_probs: torch.Tensor) -> list[int]:
        """One token per row from ``log_probs``, drawn from the row's own random stream."""
        return self._engine.sample(list(positions), log_probs) if len(positions) else []

    def uniform(self, position: int) -> float:
        """A uniform draw in [0, 1) from the row's own random stream."""
        return float(torch.rand((), generator=self._engine.generators[position]))

    def is_stop(self, model: int, token: int) -> bool:
        return token in self._engine.stop_ids[model]

    def decode_tokens(self, model: int, tokens: Sequence[int]) -> str:
        return self._engine.models[model].tokenizer.decode(list(tokens), skip_special_tokens=True)

    def last_piece(self, position: int) -> str:
        """The text the row's last token added (empty before the first token)."""
        return self._engine.last_piece[position]


Policy = Callable[[ExchangeView], dict[int, Choice]]
"""Maps a step to a choice per active row (batch position -> who writes, from what distribution)."""


class TextExchangeBatch:
    """The state of one batch: per-row text and spans, per-model streams and samplers."""

    def __init__(
        self,
        models: Sequence[HFModel],
        rows: list[int],
        streams: list[Any],
        settings: GenerationSettings,
        seeds: list[int],
    ) -> None:
        self.models = list(models)
        self.rows = rows
        self.streams = streams
        self.texts = [""] * len(rows)
        self.spans: list[list[Span]] = [[] for _ in rows]
        self.span_ids: list[list[int]] = [[] for _ in rows]
        self.span_prefix = [""] * len(rows)
        self.last_piece = [""] * len(rows)
        self.generated = [0] * len(rows)
        self.tokens_by_model = [[0] * len(self.models) for _ in rows]
        self.stop_ids = [eos_ids(m) for m in self.models]
        self.settings = settings
        self.generators = RowSeededSampler(seeds, settings.temperature, settings.top_p).generators

    def sample(self, positions: list[int], log_probs: torch.Tensor) -> list[int]:
        """One token per row from its own random stream (rows of one writer, one vocabulary)."""
        sampler = RowSeededSampler([], self.settings.temperature, self.settings.top_p)
        sampler.generators = [self.generators[p] for p in positions]
        return sampler(None, log_probs).argmax(dim=-1).tolist()

    def write(self, position: int, model: int, token: int) -> bool:
        """Append ``token`` by ``model`` to the row; False when it is the writer's EOS."""
        if token in self.stop_ids[model]:
            return False
        self.generated[position] += 1
        self.tokens_by_model[position][model] += 1
        spans = self.spans[position]
        if not spans or spans[-1].model != model:
            spans.append(Span(model))
            self.span_ids[position] = []
            self.span_prefix[position] = ""
        self.span_ids[position].append(token)
        span = spans[-1]
        before = self.texts[position][: len(self.texts[position]) - len(span.text)]
        previous = span.text
        decoded = self.models[model].tokenizer.decode(self.span_ids[position], skip_special_tokens=True)
        span.text = self.span_prefix[position] + decoded
        span.tokens += 1
        self.texts[position] = before + span.text
        self.last_piece[position] = span.text[_common_prefix(previous, span.text) :]
        return True

    def write_text(self, position: int, model: int, text: str, tokens: int) -> None:
        """Append a whole text by ``model`` (a policy's chosen candidate), ``tokens`` long."""
        self.generated[position] += tokens
        self.tokens_by_model[position][model] += tokens
        if not text and not tokens:
            return
        spans = self.spans[position]
        if not spans or spans[-1].model != model:
            spans.append(Span(model))
        spans[-1].text += text
        spans[-1].tokens += tokens
        self.span_ids[position] = []
        self.span_prefix[position] = spans[-1].text
        self.texts[position] += text
        self.last_piece[position] = text


def _pad_id(hf: HFModel) -> int:
    pad = hf.tokenizer.pad_token_id
    return pad if pad is not None else min(eos_ids(hf), default=0)


class TextExchangeDecoder:
    """Decodes with models that exchange text; any tokenizers, batched over prompts."""

    def __init__(self, models: Sequence[HFModel], batch_size: int = 16, hidden_states: Sequence[int] = ()) -> None:
        if not models:
            raise MocoError("text exchange needs at least one model")
        self.models = list(models)
        self.batch_size = batch_size
        self.hidden_states = set(hidden_states)

    def render(self, prompts: Sequence[str], system_prompts: Sequence[str | None]) -> list[list[str]]:
        """Each model's chat-rendered prompts, with that model's own system prompt."""
        return [
            [render_prompt(m.tokenizer, p, system) for p in prompts]
            for m, system in zip(self.models, system_prompts, strict=True)
        ]

    @torch.inference_mode()
    def decode(
        self,
        prompts_per_model: Sequence[Sequence[str]],
        policy_factory: Callable[[], Policy],
        settings: GenerationSettings,
        seeds: Sequence[int],
        starts: Sequence[str] | None = None,
    ) -> list[RowResult]:
        """One continuation per prompt; ``policy_factory()`` gives a fresh policy per batch.

        ``starts[i]`` is text that row i's continuation begins with (written by nobody in the
        spans, not counted as generated); the result's text includes it.
        """
        count = len(seeds)
        if len(prompts_per_model) != len(self.models) or any(len(p) != count for p in prompts_per_model):
            raise ValueError("every model needs exactly one prompt per seed")
        lengths = [len(t) for t in prompts_per_model[0]]
        order = sorted(range(count), key=lambda i: -lengths[i])
        results: list[RowResult | None] = [None] * count
        for start in range(0, count, self.batch_size):
            rows = order[start : start + self.batch_size]
            prompts = [[texts[i] for i in rows] for texts in prompts_per_model]
            batch = self._decode_batch(
                rows,
                prompts,
                policy_factory(),
                settings,
                [seeds[i] for i in rows],
                [starts[i] if starts else "" for i in rows],
            )
            for i, result in zip(rows, batch, strict=True):
                results[i] = result
        return [r for r in results if r is not None]

    def streams(self, prompts: list[list[str]]) -> list[Any]:
        """One stream per model over its rendered prompts; anything with ``sync(rows, texts) -> logits``."""
        return [
            _TextStream(m, texts, _pad_id(m), keep_hidden=i in self.hidden_states)
            for i, (m, texts) in enumerate(zip(self.models, prompts, strict=True))
        ]

    def _decode_batch(
        self,
        rows: list[int],
        prompts: list[list[str]],
        policy: Policy,
        settings: GenerationSettings,
        seeds: list[int],
        starts: list[str],
    ) -> list[RowResult]:
        batch = TextExchangeBatch(self.models, rows, self.streams(prompts), settings, seeds)
        batch.texts = list(starts)
        active = list(range(len(rows)))
        for step in range(settings.max_new_tokens):
            if not active:
                break
            choices = policy(ExchangeView(batch, step, active))
            sampled = [p for p in active if choices[p].text is None]
            tokens: dict[int, int] = {}
            for model in sorted({choices[p].model for p in sampled}):
                group = [p for p in sampled if choices[p].model == model]
                scores = torch.stack([choices[p].log_probs.reshape(-1) for p in group])
                tokens.update(zip(group, batch.sample(group, scores), strict=True))
            still = []
            for p in active:
                choice = choices[p]
                if choice.text is None:
                    going = batch.write(p, choice.model, tokens[p])
                else:
                    batch.write_text(p, choice.model, choice.text, choice.tokens)
                    going = not choice.stop
                if going and batch.generated[p] < settings.max_new_tokens:
                    still.append(p)
            active = still
        return [RowResult(batch.texts[p].strip(), batch.spans[p], batch.tokens_by_model[p]) for p in range(len(rows))]


def load_text_exchange(pool: Any, names: Sequence[str], hidden_states: Sequence[int] = ()) -> TextExchangeDecoder:
    """A decoder over pool members ``names`` (hf backend), all loaded at once."""
    handles = load_hf_members(pool, names, "text exchange")
    return TextExchangeDecoder(handles, batch_size=pool.batch_size, hidden_states=hidden_states)
