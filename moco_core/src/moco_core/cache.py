"""Persistent generation cache shared by every run and method (SQLite, stdlib only).

A key hashes everything that determines a generation: the model's full identity (never just
its name: two models must never share entries), the system prompt, the exact prompt, the
sampling settings, the seed and the sample index.  Values are JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any


def default_cache_dir() -> Path:
    """``MOCO_CACHE_DIR``, else ``~/.cache/moco``."""
    configured = os.environ.get("MOCO_CACHE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "moco"


def cache_key(**fields: Any) -> str:
    """A stable hash of JSON-serialisable key fields."""
    payload = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class GenerationCache:
    """Key/value store of generations; ``enabled=False`` makes every lookup a miss."""

    def __init__(self, path: str | Path | None = None, enabled: bool = True) -> None:
        self.enabled = enabled
        self.path = Path(path) if path else default_cache_dir() / "generations.sqlite"
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("CREATE TABLE IF NOT EXISTS generations (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            connection.commit()
            self._connection = connection
        return self._connection

    def get_many(self, keys: list[str]) -> dict[str, Any]:
        if not self.enabled or not keys:
            return {}
        found: dict[str, Any] = {}
        with self._lock:
            connection = self._connect()
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = connection.execute(f"SELECT key, value FROM generations WHERE key IN ({marks})", chunk)
                found.update((key, json.loads(value)) for key, value in rows)
        return found

    def put_many(self, items: dict[str, Any]) -> None:
        if not self.enabled or not items:
            return
        rows = [(key, json.dumps(value, ensure_ascii=False)) for key, value in items.items()]
        with self._lock:
            connection = self._connect()
            connection.executemany("INSERT OR REPLACE INTO generations (key, value) VALUES (?, ?)", rows)
            connection.commit()

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
