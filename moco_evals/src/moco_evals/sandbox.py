"""Run untrusted, model-written Python programs in a throw-away sandbox.

A generated solution may loop forever, fork without end, allocate all memory, print gigabytes,
open sockets, read secrets from the environment, write or delete files, or signal the process
that scores it. Each program therefore runs in its own process tree, started by a small trusted
bootstrap (``_BOOTSTRAP``) that sets the cage up before the untrusted code gets control:

* **namespaces** (when the kernel allows them): a new network namespace (no interface but a
  downed loopback, so no connection can be made), a PID namespace (the program is PID 1 and
  the kernel kills every process it started when it exits), a mount namespace with fresh,
  size-limited tmpfs on ``/tmp``, ``/var/tmp``, ``/run/lock`` and ``/dev/shm`` (nothing written
  there outlives the run, and other runs' files are invisible) and its own ``/proc``, and an
  IPC namespace. As root they need no user namespace; otherwise one is created first;
* **an unprivileged user** when the scorer runs as root (containers, CI): root ignores
  ``RLIMIT_NPROC`` and may write anywhere, so the program gets a uid of its own per concurrent
  slot (a fork bomb in one run cannot eat the process budget of another) and no groups;
  ``PR_SET_NO_NEW_PRIVS`` stops set-uid binaries from giving privileges back;
* **resource limits**: CPU seconds, address space, process count, file size (which also caps
  stdout/stderr, written to files rather than pipes, so 100 MB of output never reaches memory),
  open files, no core dumps; and a wall-clock timeout enforced by the caller;
* **a minimal environment** (no inherited variable, so no secret leaks), stdin from
  ``/dev/null``, a fresh working directory, a new session whose whole process group is killed
  at the end, and ``PR_SET_PDEATHSIG`` so the program dies with its supervisor;
* **an audit hook** refusing IPv4/IPv6 ``connect``/``bind``/``send*`` in the program's
  interpreter: the only network guard left where namespaces are not allowed, and a second
  fence where they are.

``SandboxResult.isolation`` lists what was actually in force for a run, so a weaker host is
visible rather than silent. Without the network and PID namespaces (a non-root scorer on a host
without user namespaces, or ``namespaces=False``) isolation is weak: raw syscalls through
``ctypes`` reach the network without passing the audit hook, and a program running under the
scorer's own uid can signal the scorer; such runs carry ``WEAK_ISOLATION`` in ``isolation``,
and ``coding.score_coding`` refuses to run there unless ``MOCO_UNSAFE_SANDBOX=1`` is set
(``namespaces_available`` tells which case a host is). Only Linux is supported.
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
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

NOBODY = 65534
# Sandbox uids: one block of 1024 per supervising process (by pid), one uid per concurrent slot.
# Far above any human or systemd-dynamic user, below 2**31; a host that cannot map it (a user
# namespace with a short uid map) falls back to ``nobody``.
_UID_BASE = 2_000_000_000
_UID_BLOCK = 1024
SETUP_FAILED = 125
_STDERR_TAIL_BYTES = 20_000
_MIN_PATH = "/usr/local/bin:/usr/bin:/bin"
# Marks a run without network or PID namespace in ``SandboxResult.isolation``.
WEAK_ISOLATION = "weak:no-net/pid-namespace"

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

# Trusted set-up, started by the supervisor with ``-I -S``; it has privileges (root, or full
# capabilities inside its own user namespace) only until it execs the untrusted program.
_BOOTSTRAP = r"""
import ctypes, json, os, resource, signal, sys

cfg = json.loads(sys.argv[1])
status_fd = os.open(cfg["status"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = (
    0x00020000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 2, 4, 8, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38


def report(**fields):
    os.write(status_fd, (json.dumps(fields) + "\n").encode())


def die_with_parent(expected_parent):
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != expected_parent:
        os._exit(137)


def mount(source, target, fstype, flags, data):
    args = [None if a is None else a.encode() for a in (source, target, fstype, data)]
    if libc.mount(args[0], args[1], args[2], flags, args[3]) != 0:
        raise OSError(ctypes.get_errno(), "mount " + target)


def write_file(path, text):
    with open(path, "w") as handle:
        handle.write(text)


def unshare_namespaces(root):
    done = []
    if not root:
        uid, gid = os.getuid(), os.getgid()
        if libc.unshare(CLONE_NEWUSER) != 0:
            return done
        try:
            write_file("/proc/self/setgroups", "deny")
            write_file("/proc/self/uid_map", "%d %d 1" % (uid, uid))
            write_file("/proc/self/gid_map", "%d %d 1" % (gid, gid))
        except OSError:
            return done
        done.append("user")
    for name, flag in (("net", CLONE_NEWNET), ("mount", CLONE_NEWNS), ("pid", CLONE_NEWPID), ("ipc", CLONE_NEWIPC)):
        if libc.unshare(flag) == 0:
            done.append(name)
    return done


def supervise(child):
    # The bootstrap stays outside the PID namespace and mirrors the program's end.
    os.close(status_fd)
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
        os.kill(os.getpid(), sig)
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def make_private_mounts(isolation):
    mount(None, "/", None, MS_REC | MS_PRIVATE, None)
    for path, size in (("/tmp", cfg["disk_mb"]), ("/var/tmp", 16), ("/run/lock", 1), ("/dev/shm", 16)):
        if os.path.isdir(path):
            mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "size=%dm,nr_inodes=4096,mode=1777" % size)
    isolation.append("tmpfs")
    if "pid" in isolation:
        try:
            mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
            isolation.append("proc")
        except OSError:
            pass
    workdir = "/tmp/sandbox"
    os.mkdir(workdir, 0o700)
    return workdir


def drop_privileges(uid):
    os.setgroups([])
    try:
        os.setgid(uid)
        os.setuid(uid)
    except OSError:
        os.setgid(cfg["fallback_uid"])
        os.setuid(cfg["fallback_uid"])
    if os.getuid() == 0 or os.geteuid() == 0:
        raise RuntimeError("could not drop root privileges")
    return os.getuid()


def main():
    root = os.geteuid() == 0
    die_with_parent(cfg["parent"])
    with open(cfg["source"], encoding="utf-8") as handle:
        source = handle.read()
    isolation = unshare_namespaces(root) if cfg["namespaces"] else []
    expected_parent = cfg["parent"]
    if "pid" in isolation:
        child = os.fork()
        if child:
            supervise(child)
        expected_parent = 0  # PID 1 of the new namespace: its parent is outside it
    workdir = cfg["workdir"]
    if "mount" in isolation:
        try:
            workdir = make_private_mounts(isolation)
        except OSError:
            isolation.remove("mount")
    uid = cfg["uid"] if root else os.getuid()
    path = os.path.join(workdir, "solution.py")
    write_file(path, source)
    if root:
        for target in (workdir, path):
            os.chown(target, uid, uid)
    limits = cfg["limits"]
    for name, value in (("RLIMIT_AS", limits["memory"]), ("RLIMIT_FSIZE", limits["fsize"]),
                        ("RLIMIT_NPROC", limits["nproc"]), ("RLIMIT_NOFILE", limits["nofile"])):
        resource.setrlimit(getattr(resource, name), (value, value))
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu"], limits["cpu"] + 1))
    isolation.append("rlimits")
    if root:
        uid = drop_privileges(uid)
    isolation.append("uid:%d" % os.getuid())
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    die_with_parent(expected_parent)
    isolation.append("audit-hook")
    report(isolation=isolation)  # status_fd is close-on-exec: a failed exec is still reported
    os.chdir(workdir)
    env = {"PATH": cfg["path"], "HOME": workdir, "LANG": "C.UTF-8", "TMPDIR": workdir}
    python = cfg["python"]
    os.execve(python, [python, "-I", "-c", cfg["runner"], "solution.py"], env)


try:
    main()
except BaseException as error:
    try:
        report(error="%s: %s" % (type(error).__name__, error))
    finally:
        os._exit(%(setup_failed)d)
""".replace("%(setup_failed)d", str(SETUP_FAILED))


@dataclass(frozen=True)
class SandboxResult:
    """What one sandboxed run did.

    ``passed`` means the program exited with status 0 within its limits; ``killed_reason`` says
    why it did not finish normally (timeout, cpu, memory, output, a signal, a failed set-up);
    ``isolation`` lists the mechanisms that were in force (namespaces, ``uid:N``, ...); it holds
    ``WEAK_ISOLATION`` where the network or PID namespace was missing, i.e. where the program
    could open connections through raw syscalls or signal processes of the scorer's uid.
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
) -> str | None:
    """Why a run ended abnormally, from its exit status and what the bootstrap reported.

    As PID 1 of its namespace the program ignores the soft ``SIGXCPU``, so the CPU limit shows
    as the hard limit's ``SIGKILL`` once at least ``cpu_s`` seconds have passed.
    """
    if "error" in status:
        return f"sandbox setup failed: {status['error']}"
    if timed_out:
        return "timeout"
    if returncode is not None and returncode < 0:
        sig = -returncode
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu_exhausted):
            return "cpu time limit"
        if sig == signal.SIGXFSZ:
            return "output limit"
        try:
            return f"signal {signal.Signals(sig).name}"
        except ValueError:
            return f"signal {sig}"
    if truncated:
        return f"output limit ({limit} bytes)"
    if returncode and "MemoryError" in stderr[-2000:]:
        return "memory limit"
    return None


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
) -> SandboxResult:
    """Run ``source`` as ``__main__`` in a sandbox and report how it ended.

    Never raises for anything the program does; ``passed`` is exit status 0 within the limits.
    ``max_processes`` counts the program's processes and threads (``RLIMIT_NPROC``);
    ``max_output_bytes`` caps stdout, stderr and every file the program writes. ``namespaces=False``
    runs without any namespace, as on a host that forbids them (the tests check that fallback).
    """
    slot = _SLOTS.acquire()
    try:
        return _run(
            source, _slot_uid(slot), timeout_s, cpu_s, memory_mb, max_processes, max_output_bytes, disk_mb, namespaces
        )
    finally:
        _SLOTS.release(slot)


def _run(
    source: str,
    uid: int,
    timeout_s: float,
    cpu_s: int,
    memory_mb: int,
    max_processes: int,
    max_output_bytes: int,
    disk_mb: int,
    namespaces: bool,
) -> SandboxResult:
    """One run: files in a private temporary folder, the bootstrap in a new session, cleanup."""
    python = sandbox_python()
    tmp = tempfile.mkdtemp(prefix="moco-sandbox-")
    try:
        os.chmod(tmp, 0o711)  # without a mount namespace the program's uid must reach work/
        source_path = os.path.join(tmp, "source.py")
        with open(os.open(source_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as handle:
            handle.write(source)
        workdir = os.path.join(tmp, "work")
        os.mkdir(workdir, 0o700)
        out_path, err_path, status_path = (os.path.join(tmp, name) for name in ("stdout", "stderr", "status"))
        config = {
            "parent": os.getpid(),
            "source": source_path,
            "status": status_path,
            "workdir": workdir,
            "uid": uid,
            "fallback_uid": NOBODY,
            "python": python,
            "runner": _RUNNER,
            "path": _MIN_PATH,
            "disk_mb": int(disk_mb),
            "namespaces": bool(namespaces),
            "limits": {
                "memory": int(memory_mb) * 1024 * 1024,
                "fsize": int(max_output_bytes) + 1,
                "nproc": int(max_processes),
                "nofile": 256,
                "cpu": max(1, int(cpu_s)),
            },
        }
        start = time.monotonic()
        timed_out = False
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _BOOTSTRAP, json.dumps(config)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=_minimal_env(tmp),
                cwd=tmp,
                start_new_session=True,
                close_fds=True,
            )
            try:
                returncode: int | None = process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(process.pid)
                returncode = process.wait()
            finally:
                _kill_group(process.pid)
        duration = time.monotonic() - start
        status = _read_status(status_path)
        isolation = tuple(str(item) for item in status.get("isolation", ()))  # type: ignore[union-attr]
        if isolation and not {"net", "pid"} <= set(isolation):
            isolation = (*isolation, WEAK_ISOLATION)
        if os.geteuid() == 0 and "pid" not in isolation and f"uid:{NOBODY}" not in isolation:
            _kill_uid(uid, python)  # never as the shared nobody: that would hit others' processes
        stdout, truncated = _read_head(out_path, max_output_bytes)
        stderr, _ = _read_tail(err_path, _STDERR_TAIL_BYTES)
        over = truncated or os.path.getsize(err_path) > max_output_bytes
        cpu_exhausted = duration >= cpu_s
        reason = _killed_reason(returncode, timed_out, status, stderr, over, max_output_bytes, cpu_exhausted)
        return SandboxResult(
            passed=returncode == 0 and not timed_out and "error" not in status,
            returncode=returncode,
            stdout=stdout,
            stderr=stderr,
            timed_out=timed_out,
            killed_reason=reason,
            output_truncated=truncated,
            duration_s=duration,
            isolation=isolation,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@functools.lru_cache(maxsize=1)
def namespaces_available() -> bool:
    """Whether programs get network and PID namespaces on this host (probed once)."""
    result = run_program("pass", timeout_s=30)
    return {"net", "pid"} <= set(result.isolation)


def run_programs(sources: Sequence[str], *, workers: int | None = None, **limits: object) -> list[SandboxResult]:
    """Run each source with ``run_program`` in parallel (threads, each waiting on a process).

    Results come back in the order of ``sources``; ``limits`` are ``run_program``'s keywords.
    """
    if not sources:
        return []
    workers = max(1, min(workers or os.cpu_count() or 1, len(sources)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="moco-sandbox") as pool:
        return list(pool.map(lambda source: run_program(source, **limits), sources))  # type: ignore[arg-type]
