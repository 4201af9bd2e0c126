"""A cell's files as a mapping, to ship a cell to a Ray worker and its results back.

The ``work/`` folder (merged or trained models, content-addressed and re-creatable) stays
behind: it can be gigabytes, and everything a report reads lies outside it. Hidden files (the
run's lock) stay behind too.
"""

from __future__ import annotations

from pathlib import Path

STAY_BEHIND = "work"


def read_cell_files(directory: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every file in ``directory`` except those under ``work/``."""
    if not directory.is_dir():
        return {}
    found = {}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if path.is_file() and relative.parts[0] != STAY_BEHIND and not path.name.startswith("."):
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
