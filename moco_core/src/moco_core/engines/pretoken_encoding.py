"""Encoding a text pre-token by pre-token, remembering what each pre-token encodes to.

The text exchange re-encodes a word or two of every row at every step.  The tokenizer's own
``encode`` then builds a whole ``Encoding`` (offsets, word ids, masks) and reads them back into
Python, which costs several times the tokenization itself.  Yet a tokenizer with a
pre-tokenizer never lets a token cross a pre-token boundary: with no added token in the text
and a normalizer that leaves it as it is, its ids are the concatenation of each pre-token's ids
from the tokenizer's model.  Pre-tokens repeat (words, spaces, digits), so each is tokenized
once and then looked up.
"""

from __future__ import annotations

import re
from typing import Any

MEMO_LIMIT = 1 << 16
"""Pre-tokens remembered before the memo starts over (it only saves work; any size is right)."""


class PreTokenEncoder:
    """``encode(text)`` gives the ids the tokenizer's encode (no special tokens) gives, and the
    index and start of every pre-token's first token; None where this way may differ."""

    def __init__(self, backend: Any) -> None:
        self.pre_tokenize = backend.pre_tokenizer.pre_tokenize_str
        self.tokenize = backend.model.tokenize
        normalizer = backend.normalizer
        self.normalize = normalizer.normalize_str if normalizer is not None else None
        contents = {t.content for t in backend.get_added_tokens_decoder().values() if t.content}
        if self.normalize is not None:  # a normalised added token matches the normalised text
            contents |= {self.normalize(c) for c in contents} - {""}
        longest_first = sorted(contents, key=len, reverse=True)
        self.added = re.compile("|".join(re.escape(c) for c in longest_first)) if contents else None
        """Matches any added token's text (raw or normalised): the tokenizer splits those out
        before it pre-tokenizes."""
        self.memo: dict[str, list[int]] = {}

    @classmethod
    def over(cls, tokenizer: Any) -> PreTokenEncoder | None:
        """An encoder for ``tokenizer`` (a fast one), or None where its model is not deterministic
        (BPE dropout) or it has no pre-tokenizer (nothing bounds its tokens)."""
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None or backend.pre_tokenizer is None or getattr(backend.model, "dropout", None):
            return None
        try:
            return cls(backend)
        except (AttributeError, TypeError):  # a backend without the calls this needs
            return None

    def encode(self, text: str, offset: int = 0) -> tuple[list[int], list[tuple[int, int]]] | None:
        """The text's ids and (token index, ``offset`` + character offset) of each pre-token's first
        token; None where the text holds an added token or the normalizer would change it."""
        if self.added is not None and self.added.search(text):
            return None
        if self.normalize is not None and self.normalize(text) != text:
            return None
        memo, ids, boundaries = self.memo, [], []
        for piece, (start, _) in self.pre_tokenize(text):
            piece_ids = memo.get(piece)
            if piece_ids is None:
                if len(memo) >= MEMO_LIMIT:
                    memo.clear()
                piece_ids = memo[piece] = [token.id for token in self.tokenize(piece)]
            if piece_ids:
                boundaries.append((len(ids), offset + start))
                ids += piece_ids
        return ids, boundaries
