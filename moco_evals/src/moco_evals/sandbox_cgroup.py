"""One control group per sandboxed run: a memory bound for the program and all its children
together, a process-count bound, and a way to kill and count everything the run started.

Works with cgroup v2 (``memory.max``, ``pids.max``, ``cgroup.kill``) and with the v1/hybrid
layout (``memory.limit_in_bytes`` and ``pids.max`` in their own hierarchies, plus v2's
``cgroup.kill`` where the unified hierarchy is mounted). The groups are created under the
scorer's own cgroup, so they count against whatever bounds the scorer itself has.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import signal
import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class _Hierarchies:
    """The scorer's own cgroup directories: v1 ``memory``/``pids`` and v2 (unified)."""

    memory_v1: str | None = None
    pids_v1: str | None = None
    unified: str | None = None


def _own_paths() -> dict[str, str]:
    paths: dict[str, str] = {}
    with open("/proc/self/cgroup", encoding="utf-8") as handle:
        for line in handle:
            parts = line.rstrip("\n").split(":", 2)
            if len(parts) == 3:
                for controller in parts[1].split(",") if parts[1] else [""]:
                    paths[controller] = parts[2]
    return paths


@functools.lru_cache(maxsize=1)
def _hierarchies() -> _Hierarchies:
    try:
        own = _own_paths()
        with open("/proc/self/mountinfo", encoding="utf-8") as handle:
            mounts = [line.split() for line in handle]
    except OSError:
        return _Hierarchies()
    found: dict[str, str] = {}
    for fields in mounts:
        separator = fields.index("-")
        fstype, options = fields[separator + 1], fields[separator + 3].split(",")
        root, point = fields[3], fields[4]
        keys = [""] if fstype == "cgroup2" else [c for c in ("memory", "pids") if c in options]
        for key in keys if fstype in ("cgroup", "cgroup2") else []:
            path = own.get(key)
            if path is not None and (root == "/" or path == root or path.startswith(root + "/")):
                relative = path if root == "/" else path[len(root) :]
                found.setdefault(key, os.path.normpath(point + "/" + relative.lstrip("/")))
    return _Hierarchies(found.get("memory"), found.get("pids"), found.get(""))


def _write(directory: str, name: str, value: str) -> None:
    with open(os.path.join(directory, name), "w", encoding="utf-8") as handle:
        handle.write(value)


def _read(directory: str, name: str) -> str:
    with open(os.path.join(directory, name), encoding="utf-8") as handle:
        return handle.read()


@dataclass
class RunCgroup:
    """The groups of one run. ``directories`` are joined by the run's bootstrap."""

    directories: list[str] = field(default_factory=list)
    memory_events: tuple[str, str] | None = None  # (directory, file) counting OOM kills

    def processes(self) -> set[int]:
        pids: set[int] = set()
        for directory in self.directories:
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(line) for line in _read(directory, "cgroup.procs").split())
        return pids

    def kill_all(self, wait_s: float = 3.0) -> set[int]:
        """Kill every process of the run; returns those still there after ``wait_s``."""
        deadline = time.monotonic() + wait_s
        while True:
            left = self.processes()
            if not left or time.monotonic() > deadline:
                return left
            for directory in self.directories:
                if os.path.exists(os.path.join(directory, "cgroup.kill")):
                    with contextlib.suppress(OSError):
                        _write(directory, "cgroup.kill", "1")
            for pid in left:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    def oom_killed(self) -> bool:
        if self.memory_events is None:
            return False
        try:
            text = _read(*self.memory_events)
        except OSError:
            return False
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name in ("oom_kill", "under_oom") and value.strip() not in ("", "0"):
                return True
        return False

    def remove(self) -> None:
        for directory in self.directories:
            for _ in range(50):
                try:
                    os.rmdir(directory)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)


def _make(parent: str) -> str:
    directory = os.path.join(parent, f"moco-sandbox-{os.getpid()}-{secrets.token_hex(6)}")
    os.mkdir(directory, 0o755)
    return directory


def _v2_controllers(directory: str) -> set[str]:
    wanted = {"memory", "pids"}
    with contextlib.suppress(OSError):
        enabled = set(_read(directory, "cgroup.subtree_control").split())
        if wanted - enabled:
            _write(directory, "cgroup.subtree_control", " ".join("+" + name for name in sorted(wanted - enabled)))
    try:
        return set(_read(directory, "cgroup.subtree_control").split()) & wanted
    except OSError:
        return set()


def create_run_cgroup(memory_bytes: int, max_pids: int) -> RunCgroup | None:
    """Groups bounding a run's memory (all processes together) and process count, or None where
    this host cannot give both (no cgroup mounted, no permission, no memory/pids controller)."""
    hierarchies = _hierarchies()
    group = RunCgroup()
    try:
        memory = pids = False
        if hierarchies.unified is not None and os.access(hierarchies.unified, os.W_OK):
            controllers = _v2_controllers(hierarchies.unified)
            directory = _make(hierarchies.unified)
            group.directories.append(directory)
            if "memory" in controllers:
                _write(directory, "memory.max", str(memory_bytes))
                with contextlib.suppress(OSError):
                    _write(directory, "memory.swap.max", "0")
                group.memory_events = (directory, "memory.events")
                memory = True
            if "pids" in controllers:
                _write(directory, "pids.max", str(max_pids))
                pids = True
        if not memory and hierarchies.memory_v1 is not None:
            directory = _make(hierarchies.memory_v1)
            group.directories.append(directory)
            _write(directory, "memory.limit_in_bytes", str(memory_bytes))
            with contextlib.suppress(OSError):
                _write(directory, "memory.memsw.limit_in_bytes", str(memory_bytes))
            group.memory_events = (directory, "memory.oom_control")
            memory = True
        if not pids and hierarchies.pids_v1 is not None:
            directory = _make(hierarchies.pids_v1)
            group.directories.append(directory)
            _write(directory, "pids.max", str(max_pids))
            pids = True
        if memory and pids:
            return group
    except OSError:
        pass
    group.remove()
    return None
