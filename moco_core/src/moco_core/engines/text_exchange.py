"""Text exchange: models with different tokenizers take turns writing one shared text.

Every row (prompt) has one continuation text that any model may extend.  Each model keeps its
own KV cache over its own prompt plus its own tokenization of that text.  When a model is asked
for its next-token distribution, the text written since it last looked is re-encoded in its
tokenizer and compared with the tokens already in its cache: the common prefix stays, tokens
that no longer match (a word another model finished, so it tokenizes differently) are dropped
from the cache, and only the new tokens are fed.  The prefix is never recomputed, yet the
cache always equals what a model re-reading the whole text would see.  Re-encoding starts at
the last clean boundary before the change (the start of the pre-token that holds the last
committed token), so tokenisation work per step is a word, not the whole text; models with
the same tokenizer (by content) share their encodings, so a text is encoded once for them all.

Where it can (plain dynamic layers, sdpa or eager attention) a model's cache is a row cache
(``row_cache``): each row's tokens in its own run of columns, fed as slots of one token, so a
row that catches up on many tokens pads no other row.  Elsewhere every row gets the same new
columns, masked where it has no tokens, and the masked-out columns are dropped once they make
up most of the cache.

A character written over several tokens (bytes of an emoji in byte-level BPE or byte fallback)
is not text until it is whole: the decoder shows U+FFFD for its bytes meanwhile, and
re-encoding that would feed the writer a different character than the one it is spelling.  So
the row's reading is its text in whole characters, then, for models with the writer's
tokenizer, the ids the writer wrote since; models with other tokenizers read the text alone.

A ``policy`` decides, each step and for each unfinished row, which model writes the next token
and from which distribution; it asks the view for any model's distribution (or last hidden
state) of any rows, at the shared text or at a lookahead text, and may also commit a whole
text it drafted.  Tokens are drawn with the hf backend's per-row seeding, so a row's text never
depends on its batch neighbours.  A row stops at its writer's EOS or after ``max_new_tokens``
generated tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from transformers.cache_utils import DynamicLayer

from moco_core.backends.hf import HFModel, RowSeededSampler, active_adapter, eos_ids, render_prompt
from moco_core.engines.decoding import _ModelStream, load_hf_members
from moco_core.engines.pretoken_encoding import PreTokenEncoder
from moco_core.engines.row_cache import RowCache
from moco_core.engines.tokenizer_ops import TokenSpelling, ends_in_part_character, token_decoder, tokenizer_fingerprint
from moco_core.errors import MocoError
from moco_core.types import GenerationSettings

COMPACT_SLACK = 32
"""Dead columns a padded cache tolerates beyond its live ones before it is compacted."""


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


class Unfinished(NamedTuple):
    """A character a row's writer is midway through: the writer, its raw ids since the span's text
    last ended in whole characters, and the row's text then."""

    writer: int
    ids: list[int]
    before: str


@dataclass
class Choice:
    """The policy's decision for one row: ``model`` writes one token drawn from ``log_probs`` (its
    vocabulary), or ``token`` (one the policy already drew with ``ExchangeView.sample``), or, when
    ``text`` is given, that whole text (``tokens`` long; ``stop`` ends the row).  A text the model
    drew token by token comes with its ``ids``: they are written one by one, as if drawn now, so a
    text that ends midway through a character goes on from its bytes."""

    model: int
    log_probs: torch.Tensor | None = None
    text: str | None = None
    tokens: int = 0
    stop: bool = False
    token: int | None = None
    ids: list[int] | None = None


class _TextStream(_ModelStream):
    """A model's cache over prompt + its tokenization of the shared text, kept in sync lazily."""

    def __init__(
        self,
        hf: HFModel,
        texts: Sequence[str],
        pad_id: int,
        keep_hidden: bool = False,
        shared: list[Any] | None = None,
        reserve: int = 0,
    ) -> None:
        with active_adapter(hf):
            super().__init__(hf, texts, pad_id, keep_hidden=keep_hidden, uneven=True)
        count = len(texts)
        self.pad_id = pad_id
        self.shared = shared
        """Per row, (text, ids, boundaries) of its latest encoding, shared by the streams of models
        with one tokenizer: a text one of them encoded is not encoded again by the others."""
        self.splits = _splits_words(hf.tokenizer)
        self.pretokens = PreTokenEncoder.over(hf.tokenizer) if self.splits else None
        processor = getattr(getattr(hf.tokenizer, "backend_tokenizer", None), "post_processor", None)
        self.token_offsets = "trim_offsets=True" not in repr(processor)
        """Whether a token's offsets start where its text does (no processor trims their whitespace)."""
        self.ids: list[list[int]] = [[] for _ in range(count)]
        self.boundaries: list[list[tuple[int, int]]] = [[] for _ in range(count)]
        """Per row: (token index, character offset) of every cached token that starts a pre-token."""
        self.seen: list[str] = [""] * count
        self.seen_extras: list[list[int]] = [[] for _ in range(count)]
        """Per row, the raw ids cached after its text's (a character still being written)."""
        self.records: list[tuple[str, list[int], list[tuple[int, int]]]] = [("", [], []) for _ in range(count)]
        """Per row, (text, ids, boundaries) of the text its cache holds."""
        self.row_logits: list[torch.Tensor] = list(self.logits.unbind(0))
        self.prompt_logits = list(self.row_logits)
        self.row_hidden: list[torch.Tensor | None] = (
            list(self.hidden.unbind(0)) if self.hidden is not None else [None] * count
        )
        self.prompt_hidden = list(self.row_hidden)
        self.row_cache = RowCache.over(self.cache, self.attention_mask, hf.model, reserve, self.windows)
        self.positions: list[int] = self.next_position.view(-1).tolist()
        """Per row, the position of its next token."""
        self.columns: list[list[int]] = [[] for _ in range(count)]
        """Per row, without a row cache: the cache column of every cached token of the text."""

    def _boundary(self, row: int, changed: int) -> tuple[int, int, int]:
        """The last clean boundary safely before character ``changed``: (tokens kept, offset, its
        index in the row's boundaries, which is how many of them stay).

        Tokens never cross pre-token boundaries, and a pre-token can only grow or re-split at
        its end (a whitespace run may give its last space to the next word), so text before
        the start of the pre-token preceding the change always tokenizes the same.
        """
        boundaries = self.boundaries[row]
        before = len(boundaries)
        while before and boundaries[before - 1][1] >= changed:
            before -= 1
        if before < 2:
            return 0, 0, 0
        keep, offset = boundaries[before - 2]
        return keep, offset, before - 2

    def _encode(self, texts: list[str], offsets: list[int]) -> list[tuple[list[int], list[tuple[int, int]]]]:
        """Per text: its token ids and pre-token boundaries (token index, offset + start); none
        where the normalizer changes the text, whose words then are not the raw text's."""
        if not self.splits:
            return [(list(ids), []) for ids in self.hf.tokenizer(texts, add_special_tokens=False)["input_ids"]]
        if self.pretokens is None:
            return self._encode_whole(texts, offsets)
        results = [self.pretokens.encode(text, offset) for text, offset in zip(texts, offsets, strict=True)]
        missed = [i for i, result in enumerate(results) if result is None]
        if missed:
            whole = self._encode_whole([texts[i] for i in missed], [offsets[i] for i in missed])
            for i, result in zip(missed, whole, strict=True):
                results[i] = result
        return results  # type: ignore[return-value]

    def _encode_whole(self, texts: list[str], offsets: list[int]) -> list[tuple[list[int], list[tuple[int, int]]]]:
        """``_encode`` through the tokenizer's own encode (texts with added tokens, normalised texts)."""
        backend = self.hf.tokenizer.backend_tokenizer
        if backend.truncation is not None or backend.padding is not None:  # what the wrapper would reset
            encodings = self.hf.tokenizer(texts, add_special_tokens=False).encodings
        else:  # one text at a time: a batch call's thread pool costs more than these short texts
            encodings = [backend.encode(text, add_special_tokens=False) for text in texts]
        pre_tokenize = backend.pre_tokenizer.pre_tokenize_str
        normalizer = backend.normalizer
        results = []
        for encoding, text, offset in zip(encodings, texts, offsets, strict=True):
            if normalizer is not None and normalizer.normalize_str(text) != text:
                results.append((encoding.ids, []))  # words of the normalised text: no raw offsets
                continue
            word_ids = encoding.word_ids
            pairs = zip(word_ids, [None, *word_ids], strict=False)  # each token's word and its predecessor's
            firsts = [i for i, (word, before) in enumerate(pairs) if word not in (before, None)]
            if self.token_offsets:  # a word's first token starts where the word does
                spans = encoding.offsets
                boundaries = [(i, offset + spans[i][0]) for i in firsts]
            else:  # offsets trimmed of whitespace: the pre-tokens' own starts
                words = [start for _, (start, _) in pre_tokenize(text)]
                boundaries = [(i, offset + words[word_ids[i]]) for i in firsts if word_ids[i] < len(words)]
            results.append((encoding.ids, boundaries))
        return results

    def sync(
        self, rows: Sequence[int], texts: Sequence[str], extras: Sequence[Sequence[int]] | None = None
    ) -> torch.Tensor:
        """Next-token logits of ``rows`` after their texts became ``texts`` (each followed by the
        raw ids ``extras[i]`` of this tokenizer, if given); feeds only what changed."""
        known: dict[int, tuple[tuple[str, list[int], list[tuple[int, int]]], int]] = {}
        """Per row whose reading changed: its text's (text, ids, boundaries) and how many leading
        ids are known to match the cache."""
        pending: dict[int, tuple[str, int, int, int]] = {}
        shared, seen_texts, seen_extras, records = self.shared, self.seen, self.seen_extras, self.records
        wanted: dict[int, list[int]] = {}
        for i, (row, text) in enumerate(zip(rows, texts, strict=True)):
            extra = list(extras[i]) if extras is not None else []
            seen = seen_texts[row]
            if text == seen:
                if extra == seen_extras[row]:
                    continue
                wanted[row] = extra
                known[row] = (records[row], len(records[row][1]))
                continue
            if extra:
                wanted[row] = extra
            record = shared[row] if shared is not None else None
            if record is not None and record[0] == text:
                known[row] = (record, 0)
            else:
                changed = len(seen) if text.startswith(seen) else _common_prefix(seen, text)
                pending[row] = (text, *self._boundary(row, changed))
        if pending:
            tails = [text[offset:] for text, _, offset, _ in pending.values()]
            encoded = self._encode(tails, [offset for _, _, offset, _ in pending.values()])
            for (row, (text, keep, _, cut)), (new_ids, new_boundaries) in zip(pending.items(), encoded, strict=True):
                boundaries = self.boundaries[row][:cut]
                boundaries += [(keep + i, at) for i, at in new_boundaries]
                record = (text, self.ids[row][:keep] + new_ids, boundaries)
                known[row] = (record, keep)
                if shared is not None:
                    shared[row] = record
        blocks: dict[int, list[int]] = {}
        for row, (record, same) in known.items():
            text, ids, boundaries = record
            cached = self.ids[row]
            extra = wanted.get(row)
            if extra or seen_extras[row]:
                seen_extras[row] = extra or []
                ids = ids + extra if extra else ids
            keep = _common_prefix(cached, ids, same)
            seen_texts[row], self.boundaries[row], records[row] = text, boundaries, record
            new_ids = ids[keep:]
            if not new_ids:
                if keep == len(cached):
                    continue
                if keep == 0:  # back to the bare prompt, whose logits are kept
                    self._forget(row, 0)
                    self.row_logits[row] = self.prompt_logits[row]
                    self.row_hidden[row] = self.prompt_hidden[row]
                    continue
                keep -= 1  # the text lost its tail: feed the last kept token again for fresh logits
                new_ids = [cached[keep]]
            if keep < len(cached):
                self._forget(row, keep)
            cached.extend(new_ids)
            blocks[row] = new_ids
        if blocks:
            self._extend(blocks)
        return torch.stack([self.row_logits[r] for r in rows])

    def _forget(self, row: int, keep: int) -> None:
        """Drop the row's cached tokens from text token ``keep`` on."""
        stale = len(self.ids[row]) - keep
        if stale and self.row_cache is not None:
            self.row_cache.length[row] -= stale
        elif stale:
            self.attention_mask[row, self.columns[row][keep:]] = 0
            del self.columns[row][keep:]
        self.positions[row] -= stale
        del self.ids[row][keep:]

    def _extend(self, blocks: dict[int, list[int]]) -> None:
        """Feed every row's new tokens in one forward and keep the logits after each row's last."""
        starts = {row: self.positions[row] for row in blocks}
        for row, tokens in blocks.items():
            self.positions[row] += len(tokens)
        if self.row_cache is not None:
            batch = self.row_cache.plan(blocks, starts, self.pad_id)
            full, self.attention_mask = self.attention_mask, batch.mask
            try:
                logits = self._forward(batch.input_ids, batch.positions)
            finally:
                self.attention_mask = full
            at = batch.last
        else:
            logits = self._extend_padded(blocks, starts)
            at = {row: row for row in blocks}
        pieces = logits.unbind(0)
        for row, slot in at.items():
            self.row_logits[row] = pieces[slot]
        if self.hidden is not None:
            hidden = self.hidden.unbind(0)
            for row, slot in at.items():
                self.row_hidden[row] = hidden[slot]

    def _extend_padded(self, blocks: dict[int, list[int]], starts: dict[int, int]) -> torch.Tensor:
        """Without a row cache: every row gets the same new columns, its tokens left-padded to the
        widest block (masked out where it has none); the next logits of every row."""
        self._compact()
        count, base = self.attention_mask.shape
        width = max(len(tokens) for tokens in blocks.values())
        input_ids, positions = [], []
        mask = torch.zeros((count, width), dtype=self.attention_mask.dtype, device=self.hf.device)
        for row in range(count):
            tokens = blocks.get(row, [])
            n, start = len(tokens), starts.get(row, 0)
            input_ids.append([self.pad_id] * (width - n) + tokens)
            positions.append([0] * (width - n) + list(range(start, start + n)))
            mask[row, width - n :] = 1
            self.columns[row].extend(range(base + width - n, base + width))
        self.attention_mask = torch.cat([self.attention_mask, mask], dim=-1)
        device = self.hf.device
        return self._forward(torch.tensor(input_ids, device=device), torch.tensor(positions, device=device))

    def _compact(self) -> None:
        """Drop a padded cache's masked-out columns once they are most of it, re-packing rows
        left-padded (plain dynamic layers only).

        Rotary positions are baked into the cached keys, so moving a column changes nothing but
        the memory and time attention spends on dead entries.
        """
        live = self.attention_mask.bool()
        total, width = live.shape[1], int(live.sum(-1).max())
        layers = getattr(self.cache, "layers", [])
        if total < 2 * width + COMPACT_SLACK or not layers or any(type(x) is not DynamicLayer for x in layers):
            return
        index = torch.sort(live.int(), dim=-1, stable=True).indices[:, total - width :]
        for layer in layers:
            gather = index[:, None, :, None].expand(-1, layer.keys.shape[1], -1, layer.keys.shape[-1])
            layer.keys = layer.keys.gather(2, gather)
            layer.values = layer.values.gather(2, gather)
        self.attention_mask = live.gather(1, index).to(self.attention_mask.dtype)
        for row, columns in enumerate(self.columns):
            self.columns[row] = list(range(width - len(columns), width))


def _common_prefix(a: Sequence[Any], b: Sequence[Any], known: int = 0) -> int:
    """How many leading items ``a`` and ``b`` share (the first ``known`` are known to match)."""
    limit = min(len(a), len(b))
    if a[known:limit] == b[known:limit]:
        return limit
    i = known
    while i < limit and a[i] == b[i]:
        i += 1
    return i


def _splits_words(tokenizer: Any) -> bool:
    """Whether re-encoding may start at a pre-token boundary.

    True for pre-tokenizers that split into words without adding anything (byte-level BPE);
    a Metaspace pre-tokenizer, a byte-level one with ``add_prefix_space`` or a prepending
    normalizer adds a word marker or a space at the start of whatever text it sees, so those
    tokenizers re-encode the whole continuation instead.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    pre_tokenizer = getattr(backend, "pre_tokenizer", None)
    if pre_tokenizer is None:
        return False
    described = repr(pre_tokenizer)
    return (
        "Metaspace" not in described
        and "add_prefix_space=True" not in described
        and "Prepend" not in repr(getattr(backend, "normalizer", None))
    )


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

    def whole_text(self, position: int) -> str:
        """The row's text in whole characters: without the bytes of a character still being
        written (what a prompt built from the text should show, rather than U+FFFD)."""
        return self._engine.whole_text(position)

    def spans(self, position: int) -> list[Span]:
        return self._engine.spans[position]

    def generated(self, position: int) -> int:
        """Tokens generated so far in this row (by any model)."""
        return self._engine.generated[position]

    def log_probs(
        self,
        model: int,
        positions: Sequence[int],
        texts: Sequence[str] | None = None,
        ids: Sequence[Sequence[int]] | None = None,
    ) -> torch.Tensor:
        """Model ``model``'s next-token log-probabilities (temperature 1) for those rows, over its
        tokenizer's ids (lm_head rows beyond them, padding some checkpoints add, are dropped).

        ``texts`` asks about other continuations than the rows' texts (a lookahead), ``ids`` about
        raw ids of the model's tokenizer after them (tokens a lookahead drew, read as drawn);
        the model's cache follows them, and returns to the shared text on the next plain call
        by feeding only where the two differ.
        """
        positions = list(positions)
        if not positions:
            return torch.zeros((0, 0))
        logits = self._sync(model, positions, texts, ids)[:, : self._engine.vocab_sizes[model]]
        return torch.log_softmax(logits.float(), dim=-1)

    def hidden(
        self,
        model: int,
        positions: Sequence[int],
        texts: Sequence[str] | None = None,
        ids: Sequence[Sequence[int]] | None = None,
    ) -> torch.Tensor:
        """Model ``model``'s last hidden state at the end of each row's text (or ``texts`` and ``ids``).

        Only for models the decoder was built to keep hidden states of (``hidden_states``).
        """
        positions = list(positions)
        stream = self._engine.streams[model]
        self._sync(model, positions, texts, ids)
        rows = [stream.row_hidden[p] for p in positions]
        if any(r is None for r in rows):
            raise ValueError(f"model {model} was not asked to keep hidden states")
        return torch.stack([r for r in rows if r is not None])

    def _sync(
        self, model: int, positions: list[int], texts: Sequence[str] | None, ids: Sequence[Sequence[int]] | None
    ) -> torch.Tensor:
        if texts is None and ids is None:
            read, extras = self._engine.reading(model, positions)
        else:
            read = list(texts) if texts is not None else self._engine.reading(model, positions)[0]
            extras = [list(i) for i in ids] if ids is not None else None
        stream = self._engine.streams[model]
        return stream.sync(positions, read, extras) if extras is not None else stream.sync(positions, read)

    def midway(self, model: int, ids: Sequence[int], text: str) -> bool:
        """Whether ``text``, ``model``'s decoding of ``ids``, ends midway through a character."""
        return self._engine.midway(model, ids, text)

    def reading(self, model: int, position: int) -> tuple[str, list[int]]:
        """What ``model`` reads of the row: its text in whole characters, and the raw ids (of
        ``model``'s tokenizer) of a character the row's writer is still writing."""
        texts, extras = self._engine.reading(model, [position])
        return texts[0], extras[0] if extras is not None else []

    def sample(self, positions: Sequence[int], log_probs: torch.Tensor) -> list[int]:
        """One token per row from ``log_probs``, drawn from the row's own random stream."""
        return self._engine.sample(list(positions), log_probs) if len(positions) else []

    def uniform(self, position: int) -> float:
        """A uniform draw in [0, 1) from the row's own random stream."""
        return float(torch.rand((), generator=self._engine.generators[position]))

    def is_stop(self, model: int, token: int) -> bool:
        return token in self._engine.stop_ids[model]

    def decode_tokens(self, model: int, tokens: Sequence[int], after_text: bool = False) -> str:
        """``tokens`` as text; ``after_text``: as they read after other text (a SentencePiece
        model's first "▁word" keeps its space), as ``write`` decodes a span that follows text."""
        return self._engine.decode(model, list(tokens), after_text)

    def last_piece(self, position: int) -> str:
        """The text the row's last token added (empty before the first token)."""
        return self._engine.last_piece(position)

    def piece(self, position: int, model: int, token: int) -> str:
        """The text ``token`` would add to the row if ``model`` wrote it now (decoded in context)."""
        return self._engine.piece(position, model, token)


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
        self.changes = [("", "")] * len(rows)
        """Per row, its last span's text before and after the last write (what it added, lazily)."""
        self.unsettled: list[Unfinished | None] = [None] * len(rows)
        """Per row whose writer is midway through a character (its span's text ends in U+FFFD, the
        decoder's stand-in for incomplete bytes)."""
        self.generated = [0] * len(rows)
        self.tokens_by_model = [[0] * len(self.models) for _ in rows]
        self.stop_ids = [eos_ids(m) for m in self.models]
        self.decoders = [token_decoder(m.tokenizer) for m in self.models]
        self.anchors = [_anchor(m.tokenizer, d) for m, d in zip(self.models, self.decoders, strict=True)]
        self.vocab_sizes = [len(m.tokenizer) for m in self.models]
        self.fingerprints = [tokenizer_fingerprint(m.tokenizer) for m in self.models]
        self.spellings = [TokenSpelling(m.tokenizer) for m in self.models]
        self.settles = [
            not anchor and not getattr(m.tokenizer, "clean_up_tokenization_spaces", False)
            for m, (anchor, _) in zip(self.models, self.anchors, strict=True)
        ]
        """Per model, whether a span's text decoded so far stays as it is once it ends in a whole
        character (the decoder joins tokens' texts: byte-level BPE), so only later tokens are decoded."""
        self.settings = settings
        self.generators = RowSeededSampler(seeds, settings.temperature, settings.top_p).generators

    def sample(self, positions: list[int], log_probs: torch.Tensor) -> list[int]:
        """One token per row from its own random stream (rows of one writer, one vocabulary)."""
        if self.settings.temperature == 0:
            return log_probs.argmax(dim=-1).tolist()
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
        replaced = restored = ""
        if not spans or spans[-1].model != model:
            carried, replaced, restored = self._hand_over_bytes(position, model)
            spans.append(Span(model))
            self.span_ids[position] = carried
            self.span_prefix[position] = ""
        self.span_ids[position].append(token)
        span = spans[-1]
        previous, text = span.text, self.texts[position]
        span.text = new = self._span_text(position, model)
        span.tokens += 1
        if self.settles[model] and not midway_through_character(new):  # later tokens only add to it
            self.span_prefix[position] = new  # (a byte-fallback decoder reads a run of bytes as a whole)
            self.span_ids[position] = []
        self.texts[position] = text[: len(text) - len(previous)] + new
        self.changes[position] = (replaced, restored + new) if replaced else (previous, new)
        unsettled = self.unsettled[position]
        pending = unsettled.ids if unsettled is not None and unsettled.writer == model else []
        if not self.midway(model, [*pending, token], new):
            self.unsettled[position] = None
        elif pending:
            pending.append(token)
        else:  # the text before this token is the last in whole characters (a byte-fallback decoder
            self.unsettled[position] = Unfinished(model, [token], text)  # may turn the bytes before it to U+FFFD too)
        return True

    def _hand_over_bytes(self, position: int, model: int) -> tuple[list[int], str, str]:
        """The ids of a character the last writer left unfinished, which ``model`` (taking over)
        goes on from where it has the writer's tokenizer: they leave the last span's text and
        start ``model``'s, so the character is decoded whole.  Under another tokenizer the bytes
        cannot be finished, and ``model`` read the text without them: they are dropped from the
        text (the tokens still count as written).  Also, when carried, the end of the row's text
        this replaced and what replaced it (the last span without those bytes may read
        differently)."""
        unsettled = self.unsettled[position]
        if unsettled is None:
            return [], "", ""
        writer, ids, before = unsettled
        span, text = self.spans[position][-1], self.texts[position]
        self.span_ids[position] = self.span_ids[position][: len(self.span_ids[position]) - len(ids)]
        previous, span.text = span.text, self._span_text(position, writer)
        self.texts[position] = text[: len(text) - len(previous)] + span.text
        if self.fingerprints[writer] != self.fingerprints[model]:
            self.unsettled[position] = None
            return [], "", ""  # what the row gains is ``model``'s text alone
        self.unsettled[position] = Unfinished(model, list(ids), before)
        same = _common_prefix(previous, span.text)
        return list(ids), previous[same:], span.text[same:]

    def midway(self, model: int, ids: Sequence[int], text: str) -> bool:
        """Whether ``text``, decoded from ``model``'s ``ids`` (all it wrote since the text last ended
        in a whole character), ends midway through a character: in U+FFFD for bytes that more
        bytes can still make a character.  A byte-level decoder replaces bytes nothing can finish
        for good, so they are text; a byte-fallback decoder reads a run of byte tokens as a whole
        (all U+FFFD unless all valid), so the run is waited for until its text ends otherwise."""
        if not midway_through_character(text):
            return False
        spelling = self.spellings[model]
        return not spelling.byte_level or ends_in_part_character(spelling.of_ids(ids))

    def write_ids(self, position: int, model: int, ids: Sequence[int]) -> bool:
        """``write`` each of ``ids`` in turn; False at the writer's EOS (nothing after it is written)."""
        return all(self.write(position, model, token) for token in ids)

    def reading(self, model: int, positions: Sequence[int]) -> tuple[list[str], list[list[int]] | None]:
        """What ``model`` reads of each row: its text, and raw ids of ``model``'s tokenizer after it.

        A character still being written is not text yet: a model with the writer's tokenizer reads
        the writer's own ids for it (so the writer goes on from the bytes it wrote), any other
        reads the text before it.
        """
        if not any(self.unsettled):
            return [self.texts[p] for p in positions], None
        texts, extras = [], []
        for p in positions:
            texts.append(self.whole_text(p))
            readable = self._unfinished_for(p, model)
            extras.append(readable.ids if readable is not None else [])
        return texts, extras if any(extras) else None

    def whole_text(self, position: int) -> str:
        """The row's text without the bytes of a character still being written."""
        unsettled = self.unsettled[position]
        return self.texts[position] if unsettled is None else unsettled.before

    def _unfinished_for(self, position: int, model: int) -> Unfinished | None:
        """The row's unfinished character (``unsettled``) where ``model`` has its writer's tokenizer
        and so can read, and go on from, its bytes; else None."""
        unsettled = self.unsettled[position]
        if unsettled is None or self.fingerprints[unsettled.writer] != self.fingerprints[model]:
            return None
        return unsettled

    def last_piece(self, position: int) -> str:
        """The text the row's last token (or written text) added."""
        return _added(*self.changes[position])

    def _span_text(self, position: int, model: int, extra: Sequence[int] = ()) -> str:
        """The row's last span's text (it is ``model``'s) from its token ids, plus ``extra`` ids."""
        ids = [*self.span_ids[position], *extra]
        prefix = self.span_prefix[position]
        if not self.anchors[model][0]:  # decodes the same wherever it stands
            return prefix + self.decoders[model](ids)
        after_text = bool(prefix) or len(self.texts[position]) > len(self.spans[position][-1].text)
        return prefix + self.decode(model, ids, after_text)

    def decode(self, model: int, ids: list[int], after_text: bool) -> str:
        """``ids`` as text; ``after_text``: as they read after other text, so a SentencePiece
        decoder, which drops the space of a text's first word, keeps it ("The" + "▁answer")."""
        anchor, anchor_text = self.anchors[model]
        if after_text and anchor:
            text = self.decoders[model]([*anchor, *ids])
            if text.startswith(anchor_text):
                return text[len(anchor_text) :]
        return self.decoders[model](ids)

    def piece(self, position: int, model: int, token: int) -> str:
        """What ``write(position, model, token)`` would add to the text, without writing it."""
        spans = self.spans[position]
        if token in self.stop_ids[model]:
            return ""
        if not spans or spans[-1].model != model:
            unsettled = self.unsettled[position]
            if unsettled is None:
                return self.decode(model, [token], bool(self.texts[position]))
            after_text = bool(unsettled.before)
            if self._unfinished_for(position, model) is None:  # it would drop those bytes
                return self.decode(model, [token], after_text)
            carried = unsettled.ids  # it would finish that character
            return _added(self.decode(model, carried, after_text), self.decode(model, [*carried, token], after_text))
        return _added(spans[-1].text, self._span_text(position, model, [token]))

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
        self.changes[position] = ("", text)
        self.unsettled[position] = None


def midway_through_character(text: str) -> bool:
    """Whether a decoded text may end midway through a character: in U+FFFD, the decoder's
    stand-in for bytes that are not a whole character (``TextExchangeBatch.midway`` tells)."""
    return text.endswith("\ufffd")


def _anchor(tokenizer: Any, decoder: Callable[[list[int]], str]) -> tuple[list[int], str]:
    """Ids of a one-letter word and their text: decoded ahead of a span, they stand in for the text
    before it.  Empty where a word decodes the same wherever it stands (byte-level BPE), or the
    tokenizer cannot encode the letter."""
    ids = list(tokenizer("a", add_special_tokens=False)["input_ids"])
    text = decoder(ids) if ids else ""
    return (ids, text) if text and decoder(ids + ids) != text + text else ([], "")


def _added(previous: str, new: str) -> str:
    """The text ``new`` adds to ``previous`` (from where they first differ, if they do)."""
    return new[len(previous) :] if new.startswith(previous) else new[_common_prefix(previous, new) :]


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
        self.share_encodings = True
        """Whether models with one tokenizer share their encodings (False: each encodes for itself)."""

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

    def streams(self, prompts: list[list[str]], reserve: int = 0) -> list[Any]:
        """One stream per model over its rendered prompts; anything with ``sync(rows, texts) -> logits``
        (and an ``extras`` argument, raw ids after each text, where a row's writer is midway
        through a character or a policy reads a lookahead's own ids).

        Models with the same tokenizer (same content) share their encodings of the text;
        ``reserve``: cache columns to make room for at once (the tokens a decode expects).
        """
        shared: dict[str, list[Any]] = {}
        streams = []
        for i, (model, texts) in enumerate(zip(self.models, prompts, strict=True)):
            key = tokenizer_fingerprint(model.tokenizer) if self.share_encodings else str(i)
            records = shared.setdefault(key, [None] * len(texts))
            streams.append(_TextStream(model, texts, _pad_id(model), i in self.hidden_states, records, reserve))
        return streams

    def _decode_batch(
        self,
        rows: list[int],
        prompts: list[list[str]],
        policy: Policy,
        settings: GenerationSettings,
        seeds: list[int],
        starts: list[str],
    ) -> list[RowResult]:
        streams = self.streams(prompts, reserve=settings.max_new_tokens)
        batch = TextExchangeBatch(self.models, rows, streams, settings, seeds)
        batch.texts = list(starts)
        active = list(range(len(rows)))
        for step in range(settings.max_new_tokens):
            if not active:
                break
            choices = policy(ExchangeView(batch, step, active))
            sampled = [p for p in active if choices[p].text is None and choices[p].token is None]
            tokens: dict[int, int] = {}
            for model in sorted({choices[p].model for p in sampled}):
                group = [p for p in sampled if choices[p].model == model]
                picked = [choices[p].log_probs for p in group]
                scores = torch.stack([r if r.dim() == 1 else r.reshape(-1) for r in picked])
                tokens.update(zip(group, batch.sample(group, scores), strict=True))
            still = []
            for p in active:
                choice = choices[p]
                if choice.token is not None:
                    going = batch.write(p, choice.model, choice.token)
                elif choice.text is None:
                    going = batch.write(p, choice.model, tokens[p])
                elif choice.ids is not None:
                    going = batch.write_ids(p, choice.model, choice.ids) and not choice.stop
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
