"""Folders that moco writes into the cache (merges, training results) and may later replace.

A folder carries its recipe in ``moco_identity.json`` with a ``kind``; only a folder of the same
kind (or an empty one) is ever cleared to make room for a new result, never a user's model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from moco_core.errors import MocoError
from moco_core.models import IDENTITY_FILE


def written_by(folder: Path, kind: str) -> bool:
    """Whether ``folder`` holds a result moco wrote as ``kind`` ("merge", "training")."""
    try:
        return json.loads((folder / IDENTITY_FILE).read_text(encoding="utf-8")).get("kind") == kind
    except (OSError, json.JSONDecodeError, AttributeError):
        return False


def clear_stale_output(target: Path, kind: str, refusal: str) -> None:
    """Remove a stale ``kind`` result (or an empty folder) at ``target``; anything else is refused with ``refusal``."""
    if not target.exists():
        return
    if target.is_dir() and (written_by(target, kind) or not any(target.iterdir())):
        shutil.rmtree(target)
        return
    raise MocoError(refusal)
