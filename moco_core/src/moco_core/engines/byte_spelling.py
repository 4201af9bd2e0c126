"""How a tokenizer spells text as bytes, which byte-level joint decoding relies on.

The byte level reads every token as the bytes it stands for and re-encodes the text since the
last committed token, so a model's tokens must spell its text: exactly, or after one leading
space marker.  SentencePiece-style tokenizers (a dummy prefix: Metaspace with prepend_scheme
``first``/``always`` as in Llama 2 and Mistral 7B, a ``Prepend`` normalizer, byte-level BPE with
``add_prefix_space``) prepend a space to every text and their decoders drop it again; such a
model's stream of bytes is that space followed by the shared text (``Spelling.lead``), and the
text since a commit is encoded by a copy of the tokenizer that prepends nothing.  What cannot be
read back byte for byte (WordPiece's ``##`` pieces, normalizers that lowercase, strip accents or
recompose characters) is refused: from ``tokenizer.json`` before any model loads, and by probing
a loaded tokenizer (``spelling_of``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moco_core.models import ALIASES, is_local_path

PROBE = "Hello world, 2 + 3 = 5."
INNER_PROBE = "llo wor"
"""A piece from the middle of a text: a prefix-free encoder must spell it without a marker."""
MARKER = b" "
REWRITING_NORMALIZERS = {
    "Lowercase": "lowercases text",
    "BertNormalizer": "lowercases and cleans text",
    "StripAccents": "strips accents",
    "Strip": "strips whitespace",
    "NFD": "decomposes characters (NFD)",
    "NFKD": "decomposes characters (NFKD)",
    "NFKC": "rewrites characters (NFKC)",
    "Precompiled": "rewrites characters (a precompiled SentencePiece normalizer)",
}
"""Normalizers whose output the tokens spell instead of the text itself (NFC is left alone: it
leaves already composed text, what models write, as it is)."""


def _parts(component: dict[str, Any] | None, key: str) -> list[dict[str, Any]]:
    """A normalizer's or pre-tokenizer's steps (a ``Sequence`` flattened)."""
    if not component:
        return []
    if component.get("type") == "Sequence":
        return [p for c in component.get(key, []) for p in _parts(c, key)]
    return [component]


def spelling_problem(tokenizer: dict[str, Any]) -> str | None:
    """Why the tokenizer described by ``tokenizer.json`` content cannot be read byte by byte, or None."""
    if tokenizer.get("model", {}).get("type") == "WordPiece":
        return "needs tokens that spell their bytes; a WordPiece vocabulary marks word pieces instead"
    for part in _parts(tokenizer.get("normalizer"), "normalizers"):
        kind = part.get("type")
        if kind in REWRITING_NORMALIZERS:
            return f"needs tokens that spell the text; this tokenizer's {kind} normalizer {REWRITING_NORMALIZERS[kind]}"
        if kind == "Prepend" and part.get("prepend") not in ("\u2581", " "):
            return f"needs tokens that spell the text; this tokenizer prepends {part.get('prepend')!r} to it"
    return None


def byte_spelling_problem(path: str) -> str | None:
    """``spelling_problem`` of a local model folder's ``tokenizer.json`` (None when there is none to read)."""
    if path in ALIASES or not is_local_path(path):
        return None
    file = Path(path).expanduser() / "tokenizer.json"
    try:
        content = json.loads(file.read_text(encoding="utf-8")) if file.is_file() else None
    except (OSError, json.JSONDecodeError):
        return None
    return spelling_problem(content) if isinstance(content, dict) else None


def _without_prefix(content: dict[str, Any]) -> dict[str, Any]:
    """``tokenizer.json`` content with every leading-space marker switched off (in place)."""
    normalizer = content.get("normalizer")
    if normalizer and normalizer.get("type") == "Prepend":
        content["normalizer"] = None
    elif normalizer and normalizer.get("type") == "Sequence":
        normalizer["normalizers"] = [n for n in normalizer["normalizers"] if n.get("type") != "Prepend"]
    for part in _parts(content.get("pre_tokenizer"), "pretokenizers"):
        if part.get("type") == "Metaspace":
            part["prepend_scheme"] = "never"
            part.pop("add_prefix_space", None)
        elif part.get("type") == "ByteLevel":
            part["add_prefix_space"] = False
    return content


@dataclass(frozen=True)
class Spelling:
    """How one tokenizer spells a text: ``lead`` (the marker it prepends, or nothing) then the text.

    ``encode`` reads any piece of a model's byte stream (a whole stream or the part after a
    commit) without prepending a marker, special-token names as plain text.
    """

    encode: Callable[[str], list[int]]
    lead: bytes

    def stream(self, text: bytes) -> bytes:
        """The bytes the model's tokens spell for ``text`` (nothing for no text)."""
        return self.lead + text if text and self.lead else text


def _plain_encoder(tokenizer: Any) -> Callable[[str], list[int]]:
    """An encoder without a leading marker: a copy of the fast tokenizer's pipeline with prefixes off,
    called directly (the wrapper's per-call overhead outweighs the encoding itself)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return lambda text: tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True)
    from tokenizers import Tokenizer

    plain = Tokenizer.from_str(json.dumps(_without_prefix(json.loads(backend.to_str()))))
    plain.encode_special_tokens = True
    return lambda text: plain.encode(text, add_special_tokens=False).ids


def spelling_of(tokenizer: Any, spell: Callable[[int], bytes]) -> Spelling | str:
    """The loaded tokenizer's ``Spelling``, or why its tokens do not spell a probe text (``spell``
    maps ids to bytes): its own encoding must be the probe after at most one space, and the
    marker-free encoder must agree with it and spell a piece from a text's middle as it is."""
    ids = tokenizer.encode(PROBE, add_special_tokens=False, split_special_tokens=True)
    spelled = b"".join(spell(i) for i in ids)
    lead = spelled[: len(spelled) - len(PROBE.encode("utf-8"))]
    encode = _plain_encoder(tokenizer)
    if (
        lead not in (b"", MARKER)
        or spelled != lead + PROBE.encode("utf-8")
        or encode(lead.decode("utf-8") + PROBE) != ids
        or b"".join(spell(i) for i in encode(INNER_PROBE)) != INNER_PROBE.encode("utf-8")
    ):
        return f"re-encodes text, but this tokenizer does not spell {PROBE!r} back byte for byte"
    return Spelling(encode=encode, lead=lead)
