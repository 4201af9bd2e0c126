"""Content fingerprints of model folders, so a model's identity is what it holds, not where it sits.

Sampling streams and cache keys are derived from a model's identity. Path and mtime would make
the same weights sample differently after a copy, a move or a ``touch``, and would let weights
overwritten with the same size and a restored mtime serve stale generations. Hashing gigabytes
on every run is too slow, so each file's digest is memoised in a small SQLite table under the
moco cache directory, keyed by what changes whenever the bytes may have: resolved path, size,
mtime, ctime and inode (``ctime`` cannot be restored by the writer, so an in-place overwrite
always misses the memo and is hashed again).
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from moco_core.cache import cache_key, default_cache_dir

MEMO_FILE = "fingerprints.sqlite"
_CHUNK = 1 << 22
_ANNOUNCE_BYTES = 1 << 30
_log = logging.getLogger(__name__)


def _stat_key(path: Path) -> tuple[str, int, int, int, int]:
    stat = path.stat()
    return (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)


def hash_file(path: Path) -> str:
    """The SHA-256 of one file's bytes, read in chunks."""
    if path.stat().st_size > _ANNOUNCE_BYTES:
        _log.info("fingerprinting %s (once per file version; remembered under the moco cache)", path)
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class DigestMemo:
    """File digests remembered by (path, size, mtime, ctime, inode); an unusable memo file
    (read-only cache directory, corrupt database) only costs re-hashing, never a failed run."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_cache_dir() / MEMO_FILE

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=60)
        connection.execute(
            "CREATE TABLE IF NOT EXISTS digests (path TEXT, size INTEGER, mtime INTEGER, ctime INTEGER, "
            "inode INTEGER, digest TEXT NOT NULL, PRIMARY KEY (path, size, mtime, ctime, inode))"
        )
        return connection

    def digests(self, files: Iterable[Path]) -> dict[Path, str]:
        """Each file's digest, hashing only those the memo does not know."""
        keys = {file: _stat_key(file) for file in files}
        try:
            connection = self._connect()
        except (OSError, sqlite3.Error) as exc:
            _log.debug("fingerprint memo %s unusable: %s", self.path, exc)
            return {file: hash_file(file) for file in keys}
        try:
            found: dict[Path, str] = {}
            for file, key in keys.items():
                row = connection.execute(
                    "SELECT digest FROM digests WHERE path=? AND size=? AND mtime=? AND ctime=? AND inode=?", key
                ).fetchone()
                if row is None:
                    found[file] = hash_file(file)
                    connection.execute("INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?, ?, ?)", (*key, found[file]))
                    connection.commit()
                else:
                    found[file] = row[0]
            return found
        except sqlite3.Error as exc:
            _log.debug("fingerprint memo %s failed: %s", self.path, exc)
            return {file: hash_file(file) for file in keys}
        finally:
            connection.close()


def folder_fingerprint(folder: str | os.PathLike[str], suffixes: Iterable[str], memo: DigestMemo | None = None) -> str:
    """A hash of the names and bytes of the files in ``folder`` whose suffix is in ``suffixes``.

    Independent of the folder's location and of timestamps: a copied, moved or touched folder
    has the same fingerprint; any changed byte gives a new one.
    """
    wanted = tuple(suffixes)
    files = sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix in wanted)
    digests = (memo or DigestMemo()).digests(files)
    return cache_key(files=[(file.name, digests[file]) for file in files])
