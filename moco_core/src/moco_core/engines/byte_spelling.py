"""Whether a tokenizer spells text as its bytes, which byte-level joint decoding relies on.

The byte level reads every token as the bytes it stands for and re-encodes the text since the
last committed token, so the tokens of a text must spell exactly that text: a WordPiece
vocabulary (continuation pieces marked ``##``) or a tokenizer that prepends a space to every
text it encodes (SentencePiece's dummy prefix) breaks that.  Both show in ``tokenizer.json``,
so a run is refused before any model loads; ``encode_problem`` checks a loaded tokenizer too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from moco_core.models import ALIASES, is_local_path

PROBE = "Hello world, 2 + 3 = 5."


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
    prepends = any(p.get("type") == "Prepend" for p in _parts(tokenizer.get("normalizer"), "normalizers"))
    for part in _parts(tokenizer.get("pre_tokenizer"), "pretokenizers"):
        if part.get("type") == "Metaspace":
            prepends |= part.get("prepend_scheme", "always" if part.get("add_prefix_space") else "never") != "never"
        elif part.get("type") == "ByteLevel":
            prepends |= bool(part.get("add_prefix_space"))
    if prepends:
        return "re-encodes text, but this tokenizer prepends a space to every text it encodes"
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


def encode_problem(tokenizer: Any, spell: Any) -> str | None:
    """Why a loaded tokenizer's encoding of a probe text does not spell it (``spell`` maps ids to bytes)."""
    ids = tokenizer.encode(PROBE, add_special_tokens=False)
    if b"".join(spell(i) for i in ids) != PROBE.encode("utf-8"):
        return f"re-encodes text, but this tokenizer does not spell {PROBE!r} back byte for byte"
    return None
