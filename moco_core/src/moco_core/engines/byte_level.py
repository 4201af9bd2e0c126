"""Joint decoding across tokenizers one byte at a time, with exact next-byte probabilities
(Phan et al. 2024, Exact Byte-Level Probabilities from Tokenized Language Models for FIM-Tasks
and Model Ensembles, arXiv:2410.09303).

A tokenized model assigns a byte string x the probability that its token stream starts with
x: the sum, over the *cover encodings* of x, of their token-sequence probabilities.  A cover is
a token sequence t_1..t_k whose first k-1 tokens spell a proper prefix x[:j] of x and whose last
token starts with the rest x[j:] (it may run past the end).  Summing over every tokenization is
exponential, so, as the paper does, covers are restricted to those the tokenizer could have
produced: **t_1..t_{k-1} is the tokenizer's own encoding of x[:j]** (when x[:j] ends inside a
UTF-8 character: the encoding of its whole characters, then the longest-match tokens of the
cut character's bytes), and it must spell exactly those bytes.  For streaming, the encoding of
the text before the last *committed* token boundary is frozen: t_1..t_{k-1} are the committed
tokens followed by the encoding of the bytes since that boundary.  Tokens are committed only
when every live cover starts with them, so a commit never changes the probability of the text
so far; before the first commit, and for tokenizers whose encoding of a text extends the
encoding of its prefixes, the covers are exactly the paper's valid covers.  Special tokens
spell no text and are never part of a cover.

Per model and row the engine keeps one cover per live split point j: its tokens since the last
commit, their log-probability and the model's next-token distribution after them, summed in the
order of the tokens' bytes.  The tokens starting with a byte string form one contiguous range in
that order (a byte-prefix tree, cached per model and prefix), so the mass of all tokens starting
with s, and at once with each of the 256 bytes after s, is a difference of two cumulative sums.
With P(x) = sum_j P(t_{<k}) * P(last token starts with x[j:] | t_{<k}), the next-byte
probability is P(x b) / P(x) for b in 0..255 and P(x, end) / P(x) for the stop symbol (the
encoding of x followed by an end-of-sequence token); restricted covers may leave these summing
to a little under 1, and the decoder normalises them before combining.  Each step a model runs
one forward pass: the tokens it commits (kept in its KV cache) followed by the few tokens since
its last commit (cropped off again), so a whole prefix is never re-encoded.  A cover dies once
no token starts with the bytes after its split.  A model whose covers all die (its restricted
probability of the text is 0: a byte its vocabulary cannot spell, a text its tokenizer does not
read back byte for byte) is re-anchored at the text's end: its tokenizer's own reading of the
text since its last commit enters its cache and its covers start again from there.  A model
that gives every next symbol probability 0 states no preference (a uniform distribution).

A tokenizer that prepends a marker space to every text (SentencePiece's dummy prefix, as in
Llama 2 and Mistral 7B; ``byte_spelling``) spells a text x as its *stream* " " + x, and its
decoder drops that space again.  Such a model's probability of x is the above for its stream
(the empty text's stream is empty): covers split the stream anywhere, the marker included, so
before the first byte a row has two covers, no tokens (its last token must start with the
marker and the byte) and the marker's own tokens ("\u2581"); and the text since a commit is
re-encoded by a copy of the tokenizer that prepends nothing.
"""

from __future__ import annotations

import bisect
import math
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from moco_core.backends.hf import HFModel, RowSeededSampler, active_adapter
from moco_core.engines.byte_spelling import Spelling, spelling_of
from moco_core.engines.decoding import Combine, DecodeStep, JointDecoder, StepHook, _ModelStream, load_hf_members
from moco_core.engines.vocab_alignment import token_bytes
from moco_core.errors import MocoError
from moco_core.types import GenerationSettings

SYMBOLS = 257
"""The 256 byte values and the stop symbol (index 256)."""
STOP_SYMBOL = 256
CACHED_PREFIXES = 65536
FLUSH_AFTER = 2


class ByteTrie:
    """A model's tokens sorted by the bytes they spell, with every prefix's token range cached.

    ``children(s)`` is 257 positions into the sorted order: tokens starting with ``s + bytes([b])``
    lie in ``[children[b], children[b + 1])`` and ``children[256]`` ends the tokens starting with
    ``s``; ``span(s)`` gives their whole range (the token spelling ``s`` exactly, if any, comes
    first).  Special and stop tokens spell no bytes and are left out.  The caches keep the
    prefixes decoding has met (at most ``CACHED_PREFIXES`` of them, then they start afresh).
    """

    def __init__(self, tokenizer: Any, stop_ids: set[int], device: Any = "cpu") -> None:
        excluded = set(tokenizer.all_special_ids) | set(stop_ids)
        keys = token_bytes(tokenizer, set(stop_ids))
        pairs = sorted((key, token) for token, key in enumerate(keys) if token not in excluded and key)
        self.keys = [key for key, _ in pairs]
        self.bytes_of = keys
        self.order = torch.tensor([token for _, token in pairs], dtype=torch.long, device=device)
        self.ids: dict[bytes, int] = {}
        for key, token in pairs:
            self.ids.setdefault(key, token)
        self.longest = max((len(k) for k in self.keys), default=1)
        self.device = device
        self._children: dict[bytes, torch.Tensor] = {}
        self._ranges: dict[bytes, tuple[int, int]] = {}

    def span(self, prefix: bytes) -> tuple[int, int]:
        """The positions ``[lo, hi)`` of the tokens whose bytes start with ``prefix``."""
        cached = self._ranges.get(prefix)
        if cached is None:
            if len(self._ranges) >= CACHED_PREFIXES:
                self._ranges.clear()
            lo = bisect.bisect_left(self.keys, prefix)
            cached = self._ranges[prefix] = (lo, self._end(prefix, lo))
        return cached

    def _end(self, prefix: bytes, lo: int) -> int:
        """The first position at or after ``lo`` whose bytes do not start with ``prefix``."""
        low, high = lo, len(self.keys)
        while low < high:
            middle = (low + high) // 2
            if self.keys[middle][: len(prefix)] <= prefix:
                low = middle + 1
            else:
                high = middle
        return low

    def children(self, prefix: bytes) -> torch.Tensor:
        """257 positions splitting the tokens that start with ``prefix`` by their next byte."""
        return self.bounds(prefix)[1:]

    def bounds(self, prefix: bytes) -> torch.Tensor:
        """``span(prefix)[0]`` followed by ``children(prefix)``: 258 positions, one gather's worth."""
        cached = self._children.get(prefix)
        if cached is None:
            if len(self._children) >= CACHED_PREFIXES:
                self._children.clear()
            lo, hi = self.span(prefix)
            bounds = [lo] + [bisect.bisect_left(self.keys, prefix + bytes([b]), lo, hi) for b in range(256)] + [hi]
            cached = self._children[prefix] = torch.tensor(bounds, dtype=torch.long, device=self.device)
        return cached

    def longest_match(self, data: bytes) -> list[int] | None:
        """Tokens spelling ``data``, longest first at every position; None if a byte has no token."""
        ids: list[int] = []
        while data:
            size = next((n for n in range(min(len(data), self.longest), 0, -1) if data[:n] in self.ids), 0)
            if not size:
                return None
            ids.append(self.ids[data[:size]])
            data = data[size:]
        return ids

    def alive(self, prefix: bytes) -> bool:
        lo, hi = self.span(prefix)
        return hi > lo


_TRIES: weakref.WeakKeyDictionary[Any, dict[tuple[frozenset[int], str], ByteTrie]] = weakref.WeakKeyDictionary()


def trie_for(tokenizer: Any, stop_ids: set[int], device: Any) -> ByteTrie:
    """The tokenizer's ``ByteTrie``, built once per loaded tokenizer, stop ids and device (prefix
    ranges found by one decode serve the next)."""
    key = (frozenset(stop_ids), str(device))
    try:
        cached = _TRIES.setdefault(tokenizer, {})
    except TypeError:  # a tokenizer that cannot be weakly referenced: no cache
        return ByteTrie(tokenizer, stop_ids, device)
    if key not in cached:
        cached[key] = ByteTrie(tokenizer, stop_ids, device)
    return cached[key]


_SPELLINGS: weakref.WeakKeyDictionary[Any, Spelling | str] = weakref.WeakKeyDictionary()


def spelling_for(tokenizer: Any, trie: ByteTrie) -> Spelling | str:
    """``spelling_of`` the tokenizer, worked out once per loaded tokenizer (it copies the tokenizer's
    pipeline, a fraction of a second for a large vocabulary)."""
    try:
        cached = _SPELLINGS.get(tokenizer)
    except TypeError:  # a tokenizer that cannot be weakly referenced: no cache
        return spelling_of(tokenizer, trie.bytes_of.__getitem__)
    if cached is None:
        cached = _SPELLINGS[tokenizer] = spelling_of(tokenizer, trie.bytes_of.__getitem__)
    return cached


@dataclass
class _Cover:
    """One live split point: tokens since the last commit and the distribution after them."""

    split: int
    tokens: list[int]
    token_log_probs: list[float]
    cumulative: torch.Tensor
    """Cumulative next-token probabilities in the trie's byte order, a leading 0 first."""
    stop: float
    """Probability of an end-of-sequence token next."""

    log_prob: float = field(init=False)
    """The sum of ``token_log_probs`` (kept as they change)."""

    def __post_init__(self) -> None:
        self.log_prob = math.fsum(self.token_log_probs)


@dataclass
class _Row:
    covers: list[_Cover] = field(default_factory=list)
    committed: int = 0
    boundary: int = 0
    """Byte offset of the last commit in the row's text."""
    lost: bool = False


class ByteModel:
    """One model's side of a batch in byte mode: its KV cache over committed tokens and its covers.

    Its public methods take the shared texts; inside, every offset (a cover's split, a row's
    boundary) is into the model's own stream of each text (``Spelling.stream``: the text after
    the tokenizer's leading marker, if it has one).
    """

    def __init__(
        self, hf: HFModel, texts: Sequence[str], pad_id: int, trie: ByteTrie, stop_ids: set[int], spelling: Spelling
    ) -> None:
        self.hf = hf
        self.trie = trie
        self.spelling = spelling
        self.pad_id = pad_id
        self.stream = _ModelStream(hf, texts, pad_id, uneven=True)
        self.stream.logits = self.stream.logits.to(hf.device)
        self.rows = [_Row() for _ in texts]
        self.width = min(len(trie.bytes_of), self.stream.logits.shape[-1])
        self.stop_ids = torch.tensor(sorted(i for i in stop_ids if i < self.width), dtype=torch.long, device=hf.device)
        self._feeds: list[list[int]] = [[] for _ in self.rows]
        marker = spelling.encode(spelling.lead.decode("utf-8")) if spelling.lead else []
        spelled = b"".join(trie.bytes_of[t] for t in marker) == spelling.lead
        self._marker: list[int] | None = marker if marker and spelled else None
        """The tokens of the marker alone, when they spell it: a cover splits the stream after them."""

    def token_count(self, row: int, text: bytes) -> int | None:
        """Tokens the row's ``text`` takes (committed plus their encoding since), if known."""
        state = self.rows[row]
        last = state.covers[-1] if state.covers and not state.lost else None
        known = last is not None and last.split == len(self.spelling.stream(text))
        return state.committed + len(last.tokens) if known else None

    def open_covers(self, text: list[bytes], finished: list[bool]) -> None:
        """Add each row's cover whose earlier tokens spell its whole text.

        One forward pass feeds committed tokens (kept in the KV cache, as many per row; see
        ``_split_commits``) and, after them, each row's other committed tokens and its tokens
        since its last commit (cropped off again).
        """
        stream = [self.spelling.stream(t) for t in text]
        fresh: list[list[int]] = [[] for _ in self.rows]
        active = [r for r in range(len(self.rows)) if not finished[r]]
        encoded = self._encode([stream[r][self.rows[r].boundary :] for r in active])
        opening: list[tuple[int, int, int]] = []
        """(row, tokens since the last commit, split) of each new cover."""
        for r, ids in zip(active, encoded, strict=True):
            row, data = self.rows[r], stream[r]
            if row.lost:  # re-anchor at the text's end on its own reading of the text since the last commit
                ids = ids if ids is not None else self._reading(data[row.boundary :])
                row.lost = False
                row.covers = []
                row.boundary = len(data)
                row.committed += len(ids)
                self._feeds[r].extend(ids)
                opening.append((r, 0, len(data)))
            elif ids is not None:
                fresh[r] = ids
                opening.append((r, len(ids), len(data)))
                if not data and not row.covers and self._marker is not None:  # the split after the marker
                    fresh[r] = self._marker
                    opening.append((r, len(self._marker), len(self.spelling.lead)))
        flush, unflushed = self._split_commits(finished)
        feeds = [before + ids for before, ids in zip(unflushed, fresh, strict=True)]
        kept, logits = self._forward(flush, feeds)
        self._feeds = unflushed
        if not opening:
            return
        ends = [len(unflushed[r]) + count for r, count, _ in opening]
        after = torch.cat([kept.unsqueeze(1), logits], dim=1)  # [r, n]: the logits after n fed tokens
        index = torch.tensor([[r for r, _, _ in opening], ends], device=after.device)
        cumulative, stop = self._distributions(after[index[0], index[1]])
        token_log_probs = self._token_log_probs(after, feeds)
        stops = stop.tolist()
        for k, ((r, count, split), end) in enumerate(zip(opening, ends, strict=True)):
            own = token_log_probs[r][end - count : end]
            cover = _Cover(split, fresh[r][:count], own, cumulative[k], stops[k])
            self.rows[r].covers.append(cover)

    def _split_commits(self, finished: list[bool]) -> tuple[list[list[int]], list[list[int]]]:
        """The committed tokens to keep in the cache now, and those to feed again before the fresh ones.

        Every unfinished row keeps the same number of tokens, so the cache gains no masked holes
        and grows by tokens, not bytes; a row ahead by more than ``FLUSH_AFTER`` tokens flushes all
        (masked holes for the others).  Tokens held back are fed again every step, so a small
        ``FLUSH_AFTER`` keeps forward passes narrow at the price of a longer cache (2 against 8:
        a third fewer fed tokens, the cache about 1.4x as long, on the benchmark's tiny models).
        """
        for r, done in enumerate(finished):
            if done:
                self._feeds[r] = []
        waiting = [len(f) for f, done in zip(self._feeds, finished, strict=True) if not done]
        if max(waiting, default=0) > FLUSH_AFTER:
            return self._feeds, [[] for _ in self._feeds]
        count = min(waiting, default=0)
        return [f[:count] for f in self._feeds], [f[count:] for f in self._feeds]

    def _distributions(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cumulative next-token probabilities in byte order ``(n, vocab + 1)`` and the stop mass ``(n,)``."""
        probs = torch.softmax(logits[:, : self.width].double(), dim=-1)
        missing = len(self.trie.bytes_of) - self.width
        if missing > 0:
            probs = torch.cat([probs, probs.new_zeros(probs.shape[0], missing)], dim=-1)
        ordered = probs[:, self.trie.order].cumsum(dim=-1)
        cumulative = torch.cat([ordered.new_zeros(ordered.shape[0], 1), ordered], dim=-1)
        return cumulative, probs[:, self.stop_ids].sum(dim=-1).cpu()

    def _token_log_probs(self, after: torch.Tensor, fed: list[list[int]]) -> list[list[float]]:
        """Per row, the log-probability of each token it was fed given the committed ones and those
        before (``after[r, n]``: the logits after the row's first n fed tokens)."""
        width = max(len(f) for f in fed)
        if width == 0:
            return [[] for _ in fed]
        before = after[:, :width, : self.width]
        targets = torch.tensor([f + [0] * (width - len(f)) for f in fed], device=before.device)
        chosen = before.double().log_softmax(dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1).tolist()
        return [values[: len(f)] for values, f in zip(chosen, fed, strict=True)]

    def _encode(self, pending: list[bytes]) -> list[list[int] | None]:
        """Per text, the tokens before a cover's last: the tokenizer's encoding of its longest valid
        UTF-8 prefix (special-token names in it read as plain text), then the longest-match tokens
        of any bytes after it (a character cut short); None if that does not spell those bytes."""
        valid = []
        for data in pending:
            try:
                data.decode("utf-8")
                valid.append(len(data))
            except UnicodeDecodeError as error:
                valid.append(error.start)
        texts = [data[:n].decode("utf-8") for data, n in zip(pending, valid, strict=True)]
        encode = self.spelling.encode  # one call per text: batched calls spin up a thread pool
        encoded = [encode(text) if text else [] for text in texts]
        result: list[list[int] | None] = []
        for data, n, ids in zip(pending, valid, encoded, strict=True):
            tail = self.trie.longest_match(data[n:])
            spelled = b"".join(self.trie.bytes_of[i] for i in ids) == data[:n]
            result.append(ids + tail if spelled and tail is not None else None)
        return result

    def _reading(self, pending: bytes) -> list[int]:
        """The tokenizer's encoding of the text's whole characters, even where it does not spell them."""
        text = pending.decode("utf-8", errors="ignore")
        return self.spelling.encode(text) if text else []

    def _forward(self, commit: list[list[int]], fresh: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Feed ``commit`` (kept) then ``fresh`` (cropped off) tokens per row, both right-padded and masked.

        Returns the logits after each row's committed tokens ``(rows, vocab)`` (the stream's next
        logits) and the logits at every fresh position ``(rows, fresh width, vocab)``.
        """
        stream = self.stream
        kept_width = max(len(f) for f in commit)
        fresh_width = max(len(f) for f in fresh)
        if kept_width + fresh_width == 0:
            return stream.logits, stream.logits.unsqueeze(1)
        device = stream.hf.device
        pad = self.pad_id
        input_ids, real, offsets = [], [], []
        for c, f in zip(commit, fresh, strict=True):
            input_ids.append(c + [pad] * (kept_width - len(c)) + f + [pad] * (fresh_width - len(f)))
            real.append([1] * len(c) + [0] * (kept_width - len(c)) + [1] * len(f) + [0] * (fresh_width - len(f)))
            offsets.append([*range(kept_width), *range(len(c), len(c) + fresh_width)])
        input_ids = torch.tensor(input_ids, device=device)
        real = torch.tensor(real, dtype=stream.attention_mask.dtype, device=device)
        kept_lengths = torch.tensor([len(c) for c in commit], device=device)
        stream.attention_mask = torch.cat([stream.attention_mask, real[:, :kept_width]], dim=-1)
        position_ids = stream.next_position + torch.tensor(offsets, device=device)
        with active_adapter(stream.hf):
            output = stream.hf.model(
                input_ids=input_ids,
                attention_mask=stream.mask_for(
                    torch.cat([stream.attention_mask, real[:, kept_width:]], dim=-1), kept_width + fresh_width
                ),
                position_ids=position_ids,
                use_cache=True,
                **{stream._cache_argument: stream.cache},
            )
        if fresh_width:
            stream.cache.crop(-fresh_width)  # negative: remove the fresh positions (every transformers version)
        logits = output.logits.to(device)  # a model split over devices returns them on its last one
        after = logits[torch.arange(len(commit), device=device), (kept_lengths - 1).clamp(min=0)]
        stream.logits = torch.where((kept_lengths > 0).unsqueeze(-1), after, stream.logits)
        stream.next_position = stream.next_position + kept_lengths.unsqueeze(-1)
        return stream.logits, logits[:, kept_width:]

    def log_ratios(self, text: list[bytes], finished: list[bool]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per row, log P(text + s) / P(text) for the 257 symbols s, and whether the row has a cover.

        Before a row's first byte its one cover (no tokens) is read at the tokenizer's marker: the
        next byte b stands for the model's stream ``lead + b``.  Rows without a cover (lost, or
        finished) get zeros, i.e. no preference once normalised.
        """
        out = torch.zeros(len(self.rows), SYMBOLS, dtype=torch.float64, device=self.hf.device)
        known = torch.zeros(len(self.rows), dtype=torch.bool)
        owners: list[int] = []
        covers: list[_Cover] = []
        suffixes: list[bytes] = []
        at_end: list[bool] = []
        scale: list[float] = []
        anchored: list[int] = []
        lead = self.spelling.lead
        for r, row in enumerate(self.rows):
            if finished[r] or row.lost or not row.covers:
                continue
            stream = lead + text[r] if lead and text[r] else text[r]
            probe = stream if text[r] else lead
            end = len(stream)
            if end == row.boundary:
                anchored.append(r)  # nothing spelled since the last anchor: P(text) is 1 (that cover's)
            top = max(c.log_prob for c in row.covers)
            for cover in row.covers:
                owners.append(r)
                covers.append(cover)
                suffixes.append(probe[cover.split :])
                at_end.append(cover.split == end)
                scale.append(math.exp(cover.log_prob - top))
        if not covers:
            return out, known
        device = self.hf.device
        cumulative = torch.stack([c.cumulative for c in covers])
        found = cumulative.gather(1, torch.stack([self.trie.bounds(s) for s in suffixes]))
        scalars = torch.tensor([scale, [c.stop for c in covers], at_end], dtype=torch.float64, device=device)
        weight, stop, ends = scalars[0], scalars[1], scalars[2].bool()
        symbols = torch.cat([found[:, 2:] - found[:, 1:-1], torch.where(ends, stop, 0.0).unsqueeze(1)], dim=1)
        index = torch.tensor(owners, device=device)
        numerator = torch.zeros_like(out).index_add_(0, index, symbols * weight.unsqueeze(1))
        covered = found[:, -1] - found[:, 0]
        denominator = torch.zeros(len(self.rows), dtype=torch.float64, device=device)
        denominator.index_add_(0, index, torch.where(ends, 0.0, covered * weight))
        if anchored:
            denominator[anchored] = 1.0
        valid = (denominator > 0) & (numerator.sum(dim=1) > 0)
        out = torch.where(valid.unsqueeze(1), (numerator / denominator.unsqueeze(1)).log(), out)
        return out, valid.cpu()

    def append(self, text: list[bytes], finished: list[bool]) -> None:
        """``text`` gained one byte in every unfinished row: drop dead covers, commit agreed tokens
        (fed at the next ``open_covers``)."""
        for r, row in enumerate(self.rows):
            if finished[r] or row.lost:
                continue
            stream = self.spelling.stream(text[r])
            row.covers = [c for c in row.covers if self.trie.alive(stream[c.split :])]
            if not row.covers:
                row.lost = True
                continue
            shared = row.covers[0].tokens
            agreed = 0
            while agreed < len(shared) and all(
                len(c.tokens) > agreed and c.tokens[agreed] == shared[agreed] for c in row.covers
            ):
                agreed += 1
            if agreed:
                self._commit(r, agreed)

    def _commit(self, r: int, count: int) -> None:
        row = self.rows[r]
        tokens = row.covers[0].tokens[:count]
        row.boundary += sum(len(self.trie.bytes_of[t]) for t in tokens)
        row.committed += count
        for cover in row.covers:
            cover.tokens = cover.tokens[count:]
            cover.token_log_probs = cover.token_log_probs[count:]
            cover.log_prob = math.fsum(cover.token_log_probs)
        self._feeds[r].extend(tokens)


class ByteJointDecoder(JointDecoder):
    """``JointDecoder`` over models with any tokenizers; ``combine`` sees next-byte log-probabilities.

    Each model's 257 log-probabilities (256 bytes, then the stop symbol) are normalised before
    ``combine``.  ``max_new_tokens`` counts tokens of model ``budget_model``'s tokenizer (the
    member the method leans on), so with all weight on it a text has its own length budget.
    A step hook sees these 257-symbol distributions (no hidden states: a byte step has no one
    position per model).  Texts read invalid bytes as U+FFFD, as the tokenizers' own decoding does.
    A model whose tokenizer does not spell a probe text (after at most one marker space) is refused.
    """

    def __init__(self, models: Sequence[HFModel], batch_size: int = 16, budget_model: int = 0) -> None:
        self._own_vocabularies(models, batch_size)
        self.budget_model = budget_model
        self.tries = [trie_for(m.tokenizer, s, m.device) for m, s in zip(models, self.stops, strict=True)]
        self.spellings: list[Spelling] = []
        for index, (model, trie) in enumerate(zip(models, self.tries, strict=True)):
            spelling = spelling_for(model.tokenizer, trie)
            if isinstance(spelling, str):
                raise MocoError(f"params.vocabulary: byte {spelling} (pool model {index})")
            self.spellings.append(spelling)

    def streams(self, texts: list[list[str]]) -> list[ByteModel]:
        """Each model's byte-mode state over its rendered prompts ``texts[model][row]``."""
        members = zip(self.models, texts, self.pads, self.tries, self.stops, self.spellings, strict=True)
        return [ByteModel(m, t, pad, trie, stops, spelling) for m, t, pad, trie, stops, spelling in members]

    def _decode_batch(
        self,
        rows: list[int],
        texts: list[list[str]],
        combine: Combine,
        settings: GenerationSettings,
        seeds: list[int],
        step_hook: StepHook | None,
        hidden_states: set[int] | None = None,
    ) -> list[bytes]:
        models = self.streams(texts)
        sampler = RowSeededSampler(seeds, settings.temperature, settings.top_p)
        generated = [b""] * len(rows)
        kept = [0] * len(rows)
        done = [False] * len(rows)
        budget = settings.max_new_tokens
        for index in range(budget * self.tries[self.budget_model].longest + 1):
            for model in models:
                model.open_covers(generated, done)
            for r in range(len(rows)):
                count = models[self.budget_model].token_count(r, generated[r])
                if done[r] or count is None:
                    continue
                if count > budget:
                    done[r] = True
                else:
                    kept[r] = len(generated[r])
            if all(done):
                break
            log_probs = []
            for model in models:
                ratios, known = model.log_ratios(generated, done)
                normalised = ratios - torch.logsumexp(ratios, dim=-1, keepdim=True)
                if not bool(known.all()):
                    known = known.to(normalised.device).unsqueeze(-1)
                    normalised = torch.where(known, normalised, torch.full_like(normalised, -math.log(SYMBOLS)))
                log_probs.append(normalised.to(self.device))
            combined = combine(log_probs)
            if step_hook is not None:
                finished = torch.tensor(done, device=combined.device)
                replaced = step_hook(DecodeStep(index, rows, log_probs, combined, finished, []))
                combined = combined if replaced is None else replaced
            symbols = sampler(None, combined).argmax(dim=-1).tolist()
            for r, symbol in enumerate(symbols):
                if done[r]:
                    continue
                if symbol == STOP_SYMBOL:
                    done[r] = True
                    kept[r] = len(generated[r])
                else:
                    generated[r] += bytes([symbol])
            if all(done):
                break
            for model in models:
                model.append(generated, done)
        return [data[:k] for data, k in zip(generated, kept, strict=True)]

    def text(self, ids: Sequence[int]) -> str:
        """A continuation's bytes (this decoder's token ids) as text."""
        return bytes(ids).decode("utf-8", errors="replace").strip()


def load_byte_decoder(pool: Any, names: Sequence[str], budget_model: int = 0) -> ByteJointDecoder:
    """A ``ByteJointDecoder`` over pool members ``names`` (hf backend, all loaded at once)."""
    return ByteJointDecoder(load_hf_members(pool, names), batch_size=pool.batch_size, budget_model=budget_model)
