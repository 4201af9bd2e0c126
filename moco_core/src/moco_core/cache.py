"""Persistent generation cache shared by every run and method (SQLite, stdlib only).

A key hashes everything that determines a generation: the model's full identity (never just
its name: two models must never share entries), the system prompt, the exact prompt, the
sampling settings, the seed and the sample index.  Values are JSON, each stored with a checksum
of its key and bytes: a value that changed on disk is a miss, never a wrong answer.  The cache
only saves time, so a damaged database is moved aside (with a warning naming it) and replaced
by a fresh one instead of stopping the run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

logger = logging.getLogger("moco.cache")
SQLITE_MAGIC = b"SQLite format 3\x00"
TABLE = "entries"
_T = TypeVar("_T")


def default_cache_dir() -> Path:
    """``MOCO_CACHE_DIR``, else ``~/.cache/moco``."""
    configured = os.environ.get("MOCO_CACHE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "moco"


def cache_key(**fields: Any) -> str:
    """A stable hash of JSON-serialisable key fields."""
    payload = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def value_checksum(key: str, value: str) -> str:
    """What a stored value must hash to: its key and its JSON text together."""
    return hashlib.sha256(f"{key}\n{value}".encode()).hexdigest()


def header_problem(path: Path) -> str | None:
    """Why ``path`` is not an intact SQLite file by its header alone (None when it looks intact).

    Catches random bytes (no SQLite magic) and truncation (shorter than the page count the
    header records), which SQLite itself may only notice on the page that happens to be read.
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            header = handle.read(100)
    except FileNotFoundError:
        return None
    if size == 0:
        return None
    if len(header) < 100 or not header.startswith(SQLITE_MAGIC):
        return "not an SQLite database"
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        return "bad page size in the header"
    change_counter, pages, valid_for = (int.from_bytes(header[o : o + 4], "big") for o in (24, 28, 92))
    wal = Path(f"{path}-wal")
    recovering = wal.is_file() and wal.stat().st_size > 0  # a checkpoint cut short is replayed from the WAL
    if pages and change_counter == valid_for and size < pages * page_size and not recovering:
        return f"truncated ({size} of {pages * page_size} bytes)"
    return None


def damaged(error: sqlite3.DatabaseError) -> bool:
    """Whether ``error`` says the file is damaged (not busy, locked, unwritable or misused)."""
    return type(error) is sqlite3.DatabaseError


class GenerationCache:
    """Key/value store of generations; ``enabled=False`` makes every lookup a miss."""

    def __init__(self, path: str | Path | None = None, enabled: bool = True) -> None:
        self.enabled = enabled
        self.path = Path(path) if path else default_cache_dir() / "generations.sqlite"
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None

    def _open(self) -> sqlite3.Connection:
        problem = header_problem(self.path)
        if problem is not None:
            raise sqlite3.DatabaseError(problem)
        connection = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            columns = "key TEXT PRIMARY KEY, value TEXT NOT NULL, checksum TEXT NOT NULL, created REAL"
            connection.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} ({columns})")
            existing = {row[1] for row in connection.execute(f"PRAGMA table_info({TABLE})")}
            if "created" not in existing:  # a cache written before entries were dated: they count as oldest
                connection.execute(f"ALTER TABLE {TABLE} ADD COLUMN created REAL")
            connection.commit()
        except sqlite3.DatabaseError:
            connection.close()
            raise
        return connection

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._connection = self._open()
            except sqlite3.DatabaseError as exc:
                if not damaged(exc):
                    raise
                self._set_aside(exc)
                self._connection = self._open()
        return self._connection

    def _set_aside(self, error: sqlite3.DatabaseError) -> None:
        """Move the damaged database (and its WAL files) aside and say so; the next open starts fresh."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{self.path}{suffix}")
            try:
                source.replace(f"{aside}{suffix}")
            except FileNotFoundError:
                continue
        logger.warning(
            "%s: damaged generation cache (%s); moved it to %s and started a fresh one", self.path, error, aside
        )

    def _with_connection(self, action: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``action``; a database found damaged mid-way is set aside and ``action`` retried once."""
        with self._lock:
            try:
                return action(self._connect())
            except sqlite3.DatabaseError as exc:
                if not damaged(exc):
                    raise
                self._set_aside(exc)
                return action(self._connect())

    def get_many(self, keys: list[str]) -> dict[str, Any]:
        if not self.enabled or not keys:
            return {}

        def select(connection: sqlite3.Connection) -> dict[str, Any]:
            found: dict[str, Any] = {}
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                query = f"SELECT key, value, checksum FROM {TABLE} WHERE key IN ({marks})"
                for key, value, checksum in connection.execute(query, chunk):
                    if not isinstance(value, str) or checksum != value_checksum(key, value):
                        continue
                    try:
                        found[key] = json.loads(value)
                    except json.JSONDecodeError:
                        continue
            return found

        return self._with_connection(select)

    def put_many(self, items: dict[str, Any]) -> None:
        if not self.enabled or not items:
            return
        rows = []
        now = time.time()
        for key, value in items.items():
            text = json.dumps(value, ensure_ascii=False)
            rows.append((key, text, value_checksum(key, text), now))

        def insert(connection: sqlite3.Connection) -> None:
            statement = f"INSERT OR REPLACE INTO {TABLE} (key, value, checksum, created) VALUES (?, ?, ?, ?)"
            connection.executemany(statement, rows)
            connection.commit()

        self._with_connection(insert)

    def stats(self) -> dict[str, Any]:
        """Entries, bytes on disk (database and its WAL) and the oldest and newest entry times."""

        def count(connection: sqlite3.Connection) -> tuple[int, float | None, float | None]:
            query = f"SELECT COUNT(*), MIN(COALESCE(created, 0)), MAX(created) FROM {TABLE}"
            return connection.execute(query).fetchone()

        entries, oldest, newest = self._with_connection(count)
        size = sum(Path(f"{self.path}{s}").stat().st_size for s in ("", "-wal") if Path(f"{self.path}{s}").is_file())
        return {"path": str(self.path), "entries": entries, "bytes": size, "oldest": oldest, "newest": newest}

    def clear(self, older_than_s: float | None = None) -> int:
        """Delete every entry, or those stored more than ``older_than_s`` seconds ago; returns how many.

        Entries from before entries were dated count as oldest. The file is compacted afterwards.
        """

        def delete(connection: sqlite3.Connection) -> int:
            if older_than_s is None:
                removed = connection.execute(f"DELETE FROM {TABLE}").rowcount
            else:
                cutoff = time.time() - older_than_s
                removed = connection.execute(f"DELETE FROM {TABLE} WHERE COALESCE(created, 0) < ?", (cutoff,)).rowcount
            connection.commit()
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            connection.execute("VACUUM")
            return removed

        return self._with_connection(delete)

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
