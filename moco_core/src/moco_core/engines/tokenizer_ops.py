"""What the engines need to know about tokenizers: when two are the same, a lean decode, and the
bytes a token stands for."""

from __future__ import annotations

import codecs
import contextlib
import functools
import hashlib
import re
import weakref
from collections.abc import Callable, Sequence
from typing import Any

BYTE_TOKEN = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
"""SentencePiece's byte-fallback tokens."""

_FINGERPRINTS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A digest of the tokenizer's content (vocabulary, merges, pre-tokenizer, normalizer, decoder,
    special and added tokens): equal digests encode and decode every text alike.

    Two loaded copies of one tokenizer get the same digest; a tokenizer whose content cannot be
    serialised gets one of its own (its identity), so it is never taken for another.
    """
    try:
        return _FINGERPRINTS[tokenizer]
    except (KeyError, TypeError):
        pass
    backend = getattr(tokenizer, "backend_tokenizer", None)
    try:
        content = f"{type(tokenizer).__qualname__}\n{backend.to_str()}" if backend is not None else None
    except Exception:  # a backend without a serialisable form
        content = None
    digest = hashlib.sha256(content.encode()).hexdigest() if content else f"object-{id(tokenizer)}"
    with contextlib.suppress(TypeError):
        _FINGERPRINTS[tokenizer] = digest
    return digest


def token_decoder(tokenizer: Any) -> Callable[[list[int]], str]:
    """``tokenizer.decode(ids, skip_special_tokens=True)``, calling the Rust tokenizer directly when
    the wrapper would add nothing (a fast tokenizer that overrides no decoding and cleans up no
    spaces): the wrapper's argument conversion costs more than decoding a short span."""
    from transformers.tokenization_utils_tokenizers import TokenizersBackend

    backend = getattr(tokenizer, "_tokenizer", None)
    plain = (
        isinstance(tokenizer, TokenizersBackend)
        and type(tokenizer).decode is TokenizersBackend.decode
        and type(tokenizer)._decode is TokenizersBackend._decode
        and not tokenizer.clean_up_tokenization_spaces
        and backend is not None
    )
    if plain:
        return lambda ids: backend.decode(ids, skip_special_tokens=True)
    return lambda ids: tokenizer.decode(ids, skip_special_tokens=True)


@functools.cache
def byte_level_alphabet() -> dict[str, int]:
    """The inverse of GPT-2's byte-to-unicode table, in which byte-level BPE tokens spell bytes."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


class TokenSpelling:
    """The bytes a tokenizer's (non-special) tokens stand for: byte-level BPE's alphabet, a
    SentencePiece byte-fallback ``<0xNN>`` token's byte, else the token's text with ``▁`` as a space."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
        self.byte_level = "ByteLevel" in str(decoder)
        self.alphabet = byte_level_alphabet()

    def of_token(self, token: str) -> bytes:
        if self.byte_level and all(c in self.alphabet for c in token):
            return bytes(self.alphabet[c] for c in token)
        if match := BYTE_TOKEN.match(token):
            return bytes([int(match.group(1), 16)])
        return token.replace("▁", " ").encode("utf-8")

    def of_ids(self, ids: Sequence[int]) -> bytes:
        return b"".join(self.of_token(t or "") for t in self.tokenizer.convert_ids_to_tokens(list(ids)))


def ends_in_part_character(spelled: bytes) -> bool:
    """Whether ``spelled`` ends in the first bytes of a UTF-8 character (which more bytes can
    finish), rather than in whole characters or bytes no continuation makes valid."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    decoder.decode(spelled, final=False)
    return bool(decoder.getstate()[0])
