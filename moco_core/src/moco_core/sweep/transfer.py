"""A cell's files as a mapping, to ship a cell to a Ray worker and its results back.

The ``work/`` folder (merged or trained models, content-addressed and re-creatable) stays
behind: it can be gigabytes, and everything a report reads lies outside it. Only its
``attempts.json`` travels (a few hundred bytes), so a cell resumed on another machine still adds up
the compute of its earlier attempts. Hidden files (the run's lock) stay behind too.
"""

from __future__ import annotations

from pathlib import Path

from moco_core.runner import ATTEMPTS

STAY_BEHIND = "work"
TRAVELS = f"{STAY_BEHIND}/{ATTEMPTS}"


def read_cell_files(directory: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every file in ``directory`` except those under ``work/`` (but its attempts)."""
    if not directory.is_dir():
        return {}
    found = {}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        kept = relative.parts[0] != STAY_BEHIND or relative.as_posix() == TRAVELS
        if path.is_file() and kept and not path.name.startswith("."):
            found[relative.as_posix()] = path.read_bytes()
    return found


def write_cell_files(directory: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` under ``directory``; names that would leave it are refused."""
    root = directory.resolve()
    for name, content in files.items():
        target = (root / name).resolve()
        if root not in target.parents:
            raise ValueError(f"cell file {name!r} points outside its cell")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
