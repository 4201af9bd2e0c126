"""Folders that moco writes into the cache (merges, training results) and may later replace.

A folder carries its recipe in ``moco_identity.json`` with a ``kind``; only a folder of the same
kind (or an empty one) is ever cleared to make room for a new result, never a user's model.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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


@contextlib.contextmanager
def staged_folder(
    target: Path, recipe: dict[str, Any], complete: Callable[[Path], bool], replace: bool = False
) -> Iterator[Path]:
    """A ``<target>.partial-<pid>`` folder to write a result into, published only when the block succeeds.

    The recipe goes in as ``moco_identity.json`` and the folder is renamed to ``target``, so a
    killed writer never leaves a folder that looks finished; when another process published the
    same result first (``complete(target)``), that one is kept. ``replace`` first removes whatever
    stands at ``target`` (a content-addressed folder that failed its identity check). The partial
    folder never outlives the block.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        yield partial
        (partial / IDENTITY_FILE).write_text(json.dumps(recipe, indent=2, sort_keys=True), encoding="utf-8")
        if replace:
            shutil.rmtree(target, ignore_errors=True)
        try:
            partial.rename(target)
        except OSError:
            if not complete(target):
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
