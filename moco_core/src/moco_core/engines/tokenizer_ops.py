"""What the text exchange needs to know about tokenizers: when two are the same, and a lean decode."""

from __future__ import annotations

import contextlib
import hashlib
import weakref
from collections.abc import Callable
from typing import Any

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
