"""Run untrusted, model-written Python programs in a throw-away sandbox.

A generated solution may loop forever, fork without end, allocate all memory, print gigabytes,
open sockets, read secrets or files, write or delete files, detach children that outlive it, or
signal the process that scores it. Each program therefore runs in its own process tree, started
by a small trusted bootstrap (``sandbox_bootstrap.py``) that sets the cage up before the
untrusted code gets control:

* **a cgroup per run** (``sandbox_cgroup``): ``memory_mb`` bounds the program *and all its
  children together* (plus a fixed 64 MB for the trusted bootstrap and init), ``pids.max`` the
  process count, and when the run ends every process in the group is killed; the scorer then
  checks the group is empty (``SandboxResult.leftover``) before it removes it;
* **namespaces**: a network namespace (only a downed loopback; abstract Unix sockets of the host
  are out of reach too), a PID namespace whose PID 1 is a trusted init that only reaps and exits
  with the program (the kernel then kills everything left in the namespace: a child that called
  ``setsid()``, cleared its parent-death signal and ignores ``SIGTERM`` dies as well), an IPC
  namespace, and a mount namespace holding a **jail**: a fresh tmpfs with read-only binds of
  what the interpreter needs (``/usr``, ``/lib*``, ``/bin``, ``/sbin``, the interpreter's prefix),
  a few device nodes and ``/etc`` files, its own ``/proc`` and a size-limited ``/tmp``. After
  ``pivot_root`` the host's root is unmounted, so ``/run``, ``/home``, ``/var``, the project,
  the data and its Unix sockets do not exist for the program. The jail is entered by ``chroot``,
  which makes the kernel refuse the program a user namespace of its own. As root no user
  namespace is needed to set this up; otherwise one is created first;
* **an unprivileged user** when the scorer runs as root (containers, CI): the program gets a uid
  of its own per concurrent slot, no groups, and ``PR_SET_NO_NEW_PRIVS``;
* **resource limits**: CPU seconds, address space, process count, file size (which also caps
  stdout/stderr, written to files rather than pipes), open files, no core dumps; and a
  wall-clock timeout enforced by the caller;
* **a minimal environment** (no inherited variable), stdin from ``/dev/null``, a fresh working
  directory, a new session whose process group is killed at the end;
* **an audit hook** refusing IPv4/IPv6 ``connect``/``bind``/``send*`` in the program's
  interpreter: a second fence behind the network namespace.

Without a cgroup the memory bound is kept by cutting the process count: at most
``memory_mb // FALLBACK_MB_PER_PROCESS`` processes, each with ``memory_mb / count`` of address
space, so their sum still stays within ``memory_mb``.

``SandboxResult.isolation`` lists what was actually in force for a run, so a weaker host is
visible rather than silent; a run that lacked any of ``FULL_ISOLATION`` carries
``WEAK_ISOLATION``, and ``coding.score_coding`` refuses to run model code on such a host unless
the user opts in (``missing_isolation`` tells what a host lacks). Only Linux is supported; the
cgroup needs either cgroup v1 ``memory`` and ``pids`` hierarchies or a v2 group of the scorer's
that delegates the ``memory`` and ``pids`` controllers.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from moco_evals.sandbox_cgroup import RunCgroup, create_run_cgroup

NOBODY = 65534
# Sandbox uids: one block of 1024 per supervising process (by pid), one uid per concurrent slot.
# Far above any human or systemd-dynamic user, below 2**31; a host that cannot map it (a user
# namespace with a short uid map) falls back to ``nobody``.
_UID_BASE = 2_000_000_000
_UID_BLOCK = 1024
SETUP_FAILED = 125
_STDERR_TAIL_BYTES = 20_000
_MIN_PATH = "/usr/local/bin:/usr/bin:/bin"
# What a run must get to be fully contained; ``WEAK_ISOLATION`` in ``SandboxResult.isolation``
# marks a run that lacked any of it.
FULL_ISOLATION = frozenset({"net", "pid", "jail", "pid-init", "cgroup"})
WEAK_ISOLATION = "weak:missing-namespace-jail-or-cgroup"
# Without a cgroup, each process gets at least this much address space (see ``_memory_plan``).
FALLBACK_MB_PER_PROCESS = 256
# Charged to a run's cgroup besides the program: the trusted bootstrap and init interpreters.
_TRUSTED_OVERHEAD = 64 * 1024 * 1024
_DRIVEN_GRACE_S = 1.0
# ``driver(request_fd, reply_fd, deadline) -> anything`` (see ``run_program``).
Driver = Callable[[int, int, float], object]

# Runs as the program's interpreter entry point: installs the network audit hook (audit hooks
# cannot be removed from Python code) and runs the solution as ``__main__``.
_RUNNER = r"""
import sys
def _moco_no_network(event, args):
    if event in ("socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg"):
        if getattr(args[0], "family", None) in (2, 10):
            raise PermissionError("network access is disabled in the sandbox")
sys.addaudithook(_moco_no_network)
del _moco_no_network
import runpy
sys.argv = ["solution.py"]
runpy.run_path("solution.py", run_name="__main__")
"""

_BOOTSTRAP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sandbox_bootstrap.py")


@dataclass(frozen=True)
class SandboxResult:
    """What one sandboxed run did.

    ``passed`` means the program exited with status 0 within its limits and left no process
    behind; ``killed_reason`` says why it did not finish normally (timeout, cpu, memory, output,
    a signal, a failed set-up, processes left); ``isolation`` lists the mechanisms that were in
    force (namespaces, ``jail``, ``cgroup``, ``uid:N``, ...) and holds ``WEAK_ISOLATION`` where
    any of ``FULL_ISOLATION`` was missing. ``driven`` is what the run's driver returned;
    ``leftover`` counts processes of the program still alive after the scorer killed the run
    (always 0 unless containment failed).
    """

    passed: bool
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool = False
    killed_reason: str | None = None
    output_truncated: bool = False
    duration_s: float = 0.0
    isolation: tuple[str, ...] = ()
    driven: object = None
    leftover: int = 0


class _Slots:
    """Numbers for concurrent runs, so each run has a uid no other running program has.

    Released numbers are reused last (first in, first out): a killed program's zombies still
    count against its uid's ``RLIMIT_NPROC`` until they are reaped, and must not starve the
    next run that gets that uid.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._ready = threading.Condition()
        self._free: collections.deque[int] = collections.deque()
        self._next = 0

    def acquire(self) -> int:
        with self._ready:
            if self._next < self._size:
                self._next += 1
                return self._next - 1
            self._ready.wait_for(lambda: bool(self._free))
            return self._free.popleft()

    def release(self, slot: int) -> None:
        with self._ready:
            self._free.append(slot)
            self._ready.notify()


_SLOTS = _Slots(_UID_BLOCK)


def _slot_uid(slot: int) -> int:
    return _UID_BASE + (os.getpid() % 100_000) * _UID_BLOCK + slot


def _minimal_env(home: str) -> dict[str, str]:
    return {"PATH": _MIN_PATH, "HOME": home, "LANG": "C.UTF-8"}


def _run_as(uid: int, command: list[str], **options: Any) -> subprocess.CompletedProcess:
    """A trusted helper command run as ``uid`` with no groups, a minimal env and no stdin."""
    return subprocess.run(
        command,
        user=uid,
        group=uid,
        extra_groups=[],
        env=_minimal_env("/"),
        cwd="/",
        stdin=subprocess.DEVNULL,
        check=False,
        **options,
    )


@functools.lru_cache(maxsize=1)
def sandbox_python() -> str:
    """The interpreter that runs programs: ours, or one an unprivileged user can execute.

    As root the program runs as another user, who may be unable to reach our interpreter (a
    pyenv under ``/root`` is ``0700``), so candidates are tried as ``nobody``; programs need only
    the standard library, so any Python 3 will do.
    """
    if os.geteuid() != 0:
        return sys.executable
    candidates = [sys.executable, getattr(sys, "_base_executable", sys.executable)]
    candidates += [shutil.which(name, path=_MIN_PATH) or "" for name in ("python3", "python")]
    probe = "import collections, json, math, re, sys; print(sys.version_info[0])"
    for candidate in dict.fromkeys(c for c in candidates if c):
        try:
            done = _run_as(NOBODY, [candidate, "-I", "-c", probe], capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            continue
        if done.returncode == 0 and done.stdout.strip() == b"3":
            return candidate
    raise RuntimeError("no Python interpreter is executable by an unprivileged user; cannot sandbox code")


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _kill_uid(uid: int, python: str) -> None:
    """Kill every process of ``uid``: ``kill(-1)`` sent as that uid reaches exactly those.

    Only needed without a PID namespace, where a program may have left its process group.
    """
    for _ in range(3):
        try:
            _run_as(
                uid,
                [python, "-I", "-S", "-c", "import os; os.kill(-1, 9)"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=10,
            )
        except (OSError, subprocess.SubprocessError):
            return


def _read_head(path: str, limit: int) -> tuple[str, bool]:
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)
    return data[:limit].decode("utf-8", errors="replace"), len(data) > limit


def _read_tail(path: str, limit: int) -> tuple[str, bool]:
    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, size - limit))
        data = handle.read(limit)
    text = data.decode("utf-8", errors="replace")
    return ("[...truncated...]\n" + text if size > limit else text), size > limit


def _read_status(path: str) -> dict[str, object]:
    try:
        with open(path, encoding="utf-8") as handle:
            lines = [line for line in handle.read().splitlines() if line.strip()]
        status = {}
        for line in lines:
            status.update(json.loads(line))
        return status
    except (OSError, ValueError):
        return {}


def _killed_reason(
    returncode: int | None,
    timed_out: bool,
    status: dict[str, object],
    stderr: str,
    truncated: bool,
    limit: int,
    cpu_exhausted: bool,
    oom_killed: bool,
) -> str | None:
    """Why a run ended abnormally, from its exit status and what the bootstrap reported.

    The CPU limit shows as ``SIGXCPU``, or as the hard limit's ``SIGKILL`` (once ``cpu_s`` seconds
    passed) for a program that ignores the soft one; a ``SIGKILL`` while the cgroup counted an
    out-of-memory kill is the memory bound.
    """
    if "error" in status:
        return f"sandbox setup failed: {status['error']}"
    if timed_out:
        return "timeout"
    if returncode is not None and returncode < 0:
        sig = -returncode
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu_exhausted):
            return "cpu time limit"
        if sig == signal.SIGKILL and oom_killed:
            return "memory limit"
        if sig == signal.SIGXFSZ:
            return "output limit"
        try:
            return f"signal {signal.Signals(sig).name}"
        except ValueError:
            return f"signal {sig}"
    if truncated:
        return f"output limit ({limit} bytes)"
    if returncode and ("MemoryError" in stderr[-2000:] or oom_killed):
        return "memory limit"
    return None


def _memory_plan(memory_mb: int, max_processes: int, cgroup: bool) -> tuple[int, int]:
    """(address-space limit per process, process count) that keep the whole program within
    ``memory_mb``: the cgroup bounds the sum; without one the count is cut so that count x
    per-process limit stays within it (at least 256 MB per process)."""
    if cgroup:
        return memory_mb * 1024 * 1024, max_processes
    processes = max(1, min(max_processes, memory_mb // FALLBACK_MB_PER_PROCESS))
    return memory_mb * 1024 * 1024 // processes, processes


def run_program(
    source: str,
    *,
    timeout_s: float = 10.0,
    cpu_s: int = 10,
    memory_mb: int = 1024,
    max_processes: int = 16,
    max_output_bytes: int = 1_000_000,
    disk_mb: int = 64,
    namespaces: bool = True,
    driver: Driver | None = None,
) -> SandboxResult:
    """Run ``source`` as ``__main__`` in a sandbox and report how it ended.

    Never raises for anything the program does; ``passed`` is exit status 0 within the limits.
    ``memory_mb`` bounds the program and all its children together (see ``_memory_plan``);
    ``max_processes`` counts the program's processes and threads; ``max_output_bytes`` caps
    stdout, stderr and every file the program writes. ``namespaces=False`` runs without any
    namespace or cgroup, as on a host that forbids them (the tests check that fallback).

    ``driver``, when given, talks to the running program: it is called with the write end of a
    pipe the program reads as fd 3, the read end of one it writes as fd 4, and the run's
    deadline (``time.monotonic()``); what it returns is ``SandboxResult.driven``. Once it
    returns, the program's pipes close and it has ``_DRIVEN_GRACE_S`` to exit.
    """
    slot = _SLOTS.acquire()
    try:
        limits = _Limits(timeout_s, cpu_s, memory_mb, max_processes, max_output_bytes, disk_mb)
        return _run(source, _slot_uid(slot), limits, namespaces, driver)
    finally:
        _SLOTS.release(slot)


@dataclass(frozen=True)
class _Limits:
    timeout_s: float
    cpu_s: int
    memory_mb: int
    max_processes: int
    max_output_bytes: int
    disk_mb: int


def _drive(driver: Driver, request: int, reply: int, deadline: float) -> object:
    try:
        return driver(request, reply, deadline)
    finally:
        os.close(request)
        os.close(reply)


def _wait(process: subprocess.Popen, deadline: float) -> tuple[int, bool]:
    """The bootstrap's exit status, and whether the deadline passed first (then it is killed)."""
    try:
        return process.wait(timeout=max(0.0, deadline - time.monotonic())), False
    except subprocess.TimeoutExpired:
        _kill_group(process.pid)
        return process.wait(), True
    finally:
        _kill_group(process.pid)


def _program_returncode(status: dict[str, object], bootstrap_returncode: int) -> int:
    """The program's own exit status as the trusted init saw it (the bootstrap only mirrors the
    init, which cannot die by a signal it sends itself), else the bootstrap's."""
    raw = status.get("wait_status")
    if not isinstance(raw, int):
        return bootstrap_returncode
    return -os.WTERMSIG(raw) if os.WIFSIGNALED(raw) else os.WEXITSTATUS(raw)


def _run(source: str, uid: int, limits: _Limits, namespaces: bool, driver: Driver | None) -> SandboxResult:
    """One run: files in a private temporary folder, its cgroup, the bootstrap, cleanup."""
    python = os.path.realpath(sandbox_python())
    cgroup = create_run_cgroup(limits.memory_mb * 1024 * 1024 + _TRUSTED_OVERHEAD, limits.max_processes + 2)
    if cgroup is not None and not namespaces:
        cgroup.remove()
        cgroup = None
    memory, nproc = _memory_plan(limits.memory_mb, limits.max_processes, cgroup is not None)
    tmp = tempfile.mkdtemp(prefix="moco-sandbox-")
    channel: list[int] = []
    try:
        os.chmod(tmp, 0o711)  # without a mount namespace the program's uid must reach work/
        source_path = os.path.join(tmp, "source.py")
        with open(os.open(source_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as handle:
            handle.write(source)
        workdir, jail = os.path.join(tmp, "work"), os.path.join(tmp, "jail")
        os.mkdir(workdir, 0o700)
        os.mkdir(jail, 0o700)
        out_path, err_path, status_path = (os.path.join(tmp, name) for name in ("stdout", "stderr", "status"))
        if driver is not None:
            request_read, request_write = os.pipe()
            reply_read, reply_write = os.pipe()
            channel = [request_write, reply_read, request_read, reply_write]
        config = {
            "parent": os.getpid(),
            "source": source_path,
            "status": status_path,
            "workdir": workdir,
            "jail": jail,
            "uid": uid,
            "fallback_uid": NOBODY,
            "python": python,
            "runner": _RUNNER,
            "path": _MIN_PATH,
            "disk_mb": int(limits.disk_mb),
            "namespaces": bool(namespaces),
            "cgroups": cgroup.directories if cgroup is not None else [],
            "channel": channel[2:],
            "setup_failed": SETUP_FAILED,
            "limits": {
                "memory": memory,
                "fsize": int(limits.max_output_bytes) + 1,
                "nproc": nproc,
                "nofile": 256,
                "cpu": max(1, int(limits.cpu_s)),
            },
        }
        start = time.monotonic()
        deadline = start + limits.timeout_s
        driven: object = None
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-I", "-S", _BOOTSTRAP, json.dumps(config)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=_minimal_env(tmp),
                cwd=tmp,
                start_new_session=True,
                close_fds=True,
                pass_fds=channel[2:],
            )
            try:
                if driver is not None:
                    for fd in channel[2:]:
                        os.close(fd)
                    request_write, reply_read = channel[:2]
                    channel = []
                    driven = _drive(driver, request_write, reply_read, deadline)
                    deadline = min(deadline, time.monotonic() + _DRIVEN_GRACE_S)
            finally:
                returncode, timed_out = _wait(process, deadline)
        duration = time.monotonic() - start
        leftover = _reap_leftovers(cgroup, uid, python)
        status = _read_status(status_path)
        returncode = _program_returncode(status, returncode)
        isolation = tuple(str(item) for item in status.get("isolation", ()))  # type: ignore[union-attr]
        if isolation and not set(isolation) >= FULL_ISOLATION:
            isolation = (*isolation, WEAK_ISOLATION)
        stdout, truncated = _read_head(out_path, limits.max_output_bytes)
        stderr, _ = _read_tail(err_path, _STDERR_TAIL_BYTES)
        over = truncated or os.path.getsize(err_path) > limits.max_output_bytes
        cpu_exhausted = duration >= limits.cpu_s
        oom = cgroup is not None and cgroup.oom_killed()
        reason = _killed_reason(
            returncode, timed_out, status, stderr, over, limits.max_output_bytes, cpu_exhausted, oom
        )
        if leftover:
            reason = f"{len(leftover)} processes of the program outlived it"
        return SandboxResult(
            passed=returncode == 0 and not timed_out and "error" not in status and not leftover,
            returncode=returncode,
            stdout=stdout,
            stderr=stderr,
            timed_out=timed_out,
            killed_reason=reason,
            output_truncated=truncated,
            duration_s=duration,
            isolation=isolation,
            driven=driven,
            leftover=len(leftover),
        )
    finally:
        for fd in channel:
            with contextlib.suppress(OSError):
                os.close(fd)
        if cgroup is not None:
            cgroup.kill_all()
            cgroup.remove()
        _unmount_quietly(os.path.join(tmp, "jail"))
        shutil.rmtree(tmp, ignore_errors=True)


def _reap_leftovers(cgroup: RunCgroup | None, uid: int, python: str) -> set[int]:
    """Kill whatever of the run is still alive and return what survived even that.

    With a cgroup, its process list is the check (a program cannot leave its cgroup). Without
    one, a root scorer kills and then looks for processes of the run's own uid."""
    if cgroup is not None:
        return cgroup.kill_all()
    if os.geteuid() != 0 or uid == NOBODY:
        return set()  # nothing that tells the program's processes from others'
    if _processes_of(uid):
        _kill_uid(uid, python)
    deadline = time.monotonic() + 3
    while _processes_of(uid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return _processes_of(uid)


def _processes_of(uid: int) -> set[int]:
    """Live (not zombie) processes of ``uid``, from ``/proc``."""
    found = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.stat(f"/proc/{name}").st_uid != uid:
                continue
            with open(f"/proc/{name}/stat", encoding="utf-8", errors="replace") as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            found.add(int(name))
    return found


def _unmount_quietly(path: str) -> None:
    """The jail's tmpfs lives in the run's own mount namespace; this only matters where the
    namespace was missing and nothing was mounted, so failure is the normal case."""
    with contextlib.suppress(OSError):
        os.rmdir(path)


@functools.lru_cache(maxsize=1)
def isolation_available() -> bool:
    """Whether programs get the full cage on this host (probed once): network, PID and mount
    namespaces with the file-system jail, and a cgroup bounding memory and processes."""
    return not missing_isolation()


@functools.lru_cache(maxsize=1)
def missing_isolation() -> tuple[str, ...]:
    """What of ``FULL_ISOLATION`` a probe run on this host did not get."""
    result = run_program("pass", timeout_s=30)
    return tuple(sorted(FULL_ISOLATION - set(result.isolation)))


def run_programs(
    sources: Sequence[str],
    *,
    workers: int | None = None,
    drivers: Sequence[Driver | None] | None = None,
    **limits: object,
) -> list[SandboxResult]:
    """Run each source with ``run_program`` in parallel (threads, each waiting on a process).

    Results come back in the order of ``sources``; ``drivers`` (one per source) and ``limits``
    are ``run_program``'s keywords.
    """
    if not sources:
        return []
    plan = list(drivers) if drivers is not None else [None] * len(sources)
    if len(plan) != len(sources):
        raise ValueError(f"{len(sources)} sources but {len(plan)} drivers")
    workers = max(1, min(workers or os.cpu_count() or 1, len(sources)))

    def one(index: int) -> SandboxResult:
        return run_program(sources[index], driver=plan[index], **limits)  # type: ignore[arg-type]

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="moco-sandbox") as pool:
        return list(pool.map(one, range(len(sources))))
