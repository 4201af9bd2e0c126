"""The files of a run directory: written atomically, read with one-line errors, locked while in use.

A run file is either the old version or the new one, never half of each: it is written to a
temporary file in the same folder, flushed to disk and renamed over the old one. The lock keeps
a second run out of a directory for the first run's whole lifetime; the kernel releases it when
the process ends, however it ends, so a killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from moco_core.errors import MocoError

LOCK_FILE = ".moco.lock"


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``: temporary file, fsync, rename, then fsync the folder."""
    path = Path(path)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def read_json_file(path: Path, what: str = "run file") -> Any:
    """A JSON run file's content; a damaged one is a one-line error naming it."""
    try:
        return json.loads(Path(path).read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise MocoError(f"{path}: damaged {what}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise MocoError(f"{path}: damaged {what}: malformed JSON ({exc.msg} at line {exc.lineno})") from None


def check_writable_file(path: Path, label: str) -> None:
    """Refuse, before any work, an output file that is a directory or whose folder cannot be written."""
    if path.is_dir():
        raise MocoError(f"{label}: {path} is a directory")
    if not path.parent.is_dir():
        raise MocoError(f"{label}: {path.parent} is not an existing directory")
    try:
        tempfile.TemporaryFile(dir=path.parent).close()
    except OSError as exc:
        raise MocoError(f"{label}: {path.parent} is not writable ({exc.strerror or exc})") from None
    if path.exists() and not os.access(path, os.W_OK):
        raise MocoError(f"{label}: {path} is not writable")


def prepare_output_dir(output_dir: Path) -> None:
    """Create ``output_dir``, or refuse one that is a file or cannot be written, in one line."""
    if output_dir.exists() and not output_dir.is_dir():
        raise MocoError(f"output_dir: {output_dir} is an existing file, not a directory")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MocoError(f"output_dir: {output_dir} cannot be created ({exc.strerror or exc})") from None


class RunLock:
    """An exclusive ``flock`` on ``output_dir/.moco.lock`` holding the owner's pid.

    Acquiring it fails at once, naming the other process, when another run holds it.
    """

    def __init__(self, output_dir: Path) -> None:
        self.path = Path(output_dir) / LOCK_FILE
        self._descriptor: int | None = None

    def acquire(self) -> None:
        try:
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise MocoError(f"output_dir: {self.path.parent} is not writable ({exc.strerror or exc})") from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            owner = os.pread(descriptor, 64, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(descriptor)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise MocoError(
                    f"output_dir: {self.path.parent} is in use by another moco run (pid {owner}); "
                    "wait for it to finish or choose another output_dir"
                ) from None
            raise MocoError(f"output_dir: {self.path} cannot be locked ({exc.strerror or exc})") from None
        try:
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:
            os.close(descriptor)
            raise MocoError(f"output_dir: {self.path.parent} is not writable ({exc.strerror or exc})") from None
        self._descriptor = descriptor

    def release(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
