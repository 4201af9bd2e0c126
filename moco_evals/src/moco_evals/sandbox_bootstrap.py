"""Trusted set-up of one sandboxed run; executed as a script (``python -I -S this_file CONFIG``).

It has privileges (root, or full capabilities inside its own user namespace) only until the
untrusted program is exec'd, and never imports anything outside the standard library. Process
tree with namespaces::

    bootstrap (outside, mirrors the end)  ->  init (PID 1 of the new PID namespace, trusted,
    stays privileged, only reaps)  ->  program (PID 2, unprivileged, exec'd)

The init exits as soon as the program does, and the kernel then kills every process left in
the namespace: a child that called ``setsid()``, cleared its parent-death signal and ignores
``SIGTERM`` dies with it. The program cannot signal the init (another uid, and an init ignores
signals it has no handler for).

The file system the program sees is a jail: a tmpfs holding read-only bind mounts of what the
interpreter needs (``/usr``, ``/lib*``, ``/bin``, ``/sbin``, the interpreter's own prefix), a
few device nodes, a handful of ``/etc`` files, its own ``/proc`` and a size-limited ``/tmp``;
the host's root is unmounted after ``pivot_root``. The jail is entered with an extra ``chroot``,
which makes the kernel refuse the program a user namespace of its own (``unshare(CLONE_NEWUSER)``
fails with ``EPERM`` for a chrooted process), and escaping that chroot needs ``CAP_SYS_CHROOT``.
"""

import contextlib
import ctypes
import fcntl
import json
import os
import platform
import resource
import signal
import sys

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = (
    0x00020000,
    0x08000000,
    0x10000000,
    0x20000000,
    0x40000000,
)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
# statvfs flags that equal their MS_* counterpart and must be kept when remounting a bind mount.
_KEPT_FLAGS = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | 1024 | 2048 | 4096
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "ppc64le": 203, "s390x": 217}.get(platform.machine())
ROOT_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
DEVICES = ("null", "zero", "full", "random", "urandom")
ETC_FILES = ("ld.so.cache", "ld.so.conf", "localtime", "nsswitch.conf")
CHANNEL_FDS = (3, 4)  # the program's request and reply pipes, when the scorer passes them

# Set by the ``__main__`` block below; importing this module does nothing.
cfg: dict = {}
status_fd = -1
channel: list = []
PIVOTED: list = []  # set once the host's root is gone: from then on a failure must end the run
libc = ctypes.CDLL(None, use_errno=True)


def high_fd(fd):
    """``fd`` moved to 100 or above (close-on-exec), out of the way of the channel numbers."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100)
    os.close(fd)
    return moved


def report(**fields):
    os.write(status_fd, (json.dumps(fields) + "\n").encode())


def die_with_parent(expected_parent):
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != expected_parent:
        os._exit(137)


def mount(source, target, fstype, flags, data=None):
    args = [None if a is None else a.encode() for a in (source, target, fstype, data)]
    if libc.mount(args[0], args[1], args[2], flags, args[3]) != 0:
        raise OSError(ctypes.get_errno(), "mount " + target)


def write_file(path, text):
    with open(path, "w") as handle:
        handle.write(text)


def join_cgroups():
    """Move the bootstrap into the run's cgroups: every process it starts is counted there."""
    for directory in cfg["cgroups"]:
        write_file(os.path.join(directory, "cgroup.procs"), str(os.getpid()))
    return ["cgroup"] if cfg["cgroups"] else []


def unshare_namespaces(root):
    done = []
    if not root:
        uid, gid = os.getuid(), os.getgid()
        if libc.unshare(CLONE_NEWUSER) != 0:
            return done
        try:
            write_file("/proc/self/setgroups", "deny")
            write_file("/proc/self/uid_map", f"{uid} {uid} 1")
            write_file("/proc/self/gid_map", f"{gid} {gid} 1")
        except OSError:
            return done
        done.append("user")
    for name, flag in (("net", CLONE_NEWNET), ("mount", CLONE_NEWNS), ("pid", CLONE_NEWPID), ("ipc", CLONE_NEWIPC)):
        if libc.unshare(flag) == 0:
            done.append(name)
    return done


def wait_status(pid):
    while True:
        try:
            return os.waitpid(pid, 0)[1]
        except InterruptedError:
            continue


def supervise(child):
    """The bootstrap, outside the PID namespace: wait for the init and end the same way."""
    os.close(status_fd)
    for fd in channel:
        os.close(fd)
    status = wait_status(child)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        with contextlib.suppress(OSError, ValueError):
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def reap(program):
    """The trusted init: reap orphans until the program ends, then report how it ended and exit,
    which makes the kernel kill whatever the program left in the namespace."""
    for fd in channel:
        os.close(fd)
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except InterruptedError:
            continue
        except ChildProcessError:
            os._exit(1)
        if pid == program:
            report(wait_status=status)
            if os.WIFSIGNALED(status):
                os._exit(128 + os.WTERMSIG(status))
            os._exit(os.WEXITSTATUS(status))


def bind(source, target, extra_flags=0):
    """A read-only bind mount of ``source`` on ``target`` (created as a dir or an empty file)."""
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        write_file(target, "")
    mount(source, target, None, MS_BIND | MS_REC)
    kept = os.statvfs(target).f_flag & _KEPT_FLAGS
    mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | kept | extra_flags)


def populate(jail, python):
    for name in ROOT_DIRS:
        host = "/" + name
        if os.path.islink(host):
            os.symlink(os.readlink(host), os.path.join(jail, name))
        elif os.path.isdir(host):
            bind(host, os.path.join(jail, name), MS_NOSUID | MS_NODEV)
    prefix = os.path.dirname(os.path.dirname(python))
    if not any(prefix == "/" + name or prefix.startswith("/" + name + "/") for name in ROOT_DIRS):
        bind(prefix, jail + prefix, MS_NOSUID | MS_NODEV)
    os.mkdir(os.path.join(jail, "etc"), 0o755)
    for name in ETC_FILES:
        host = "/etc/" + name
        if os.path.islink(host):
            os.symlink(os.readlink(host), os.path.join(jail, "etc", name))
        elif os.path.isfile(host):
            bind(host, os.path.join(jail, "etc", name), MS_NOSUID | MS_NODEV)
    uid = cfg["uid"]
    write_file(os.path.join(jail, "etc", "passwd"), f"sandbox:x:{uid}:{uid}::/tmp/sandbox:/bin/false\n")
    write_file(os.path.join(jail, "etc", "group"), f"sandbox:x:{uid}:\n")
    dev = os.path.join(jail, "dev")
    os.mkdir(dev, 0o755)
    for name in DEVICES:
        bind("/dev/" + name, os.path.join(dev, name), MS_NOSUID)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1")):
        os.symlink(target, os.path.join(dev, name))
    os.symlink("/proc/self/fd/2", os.path.join(dev, "stderr"))
    for path, size in (("tmp", cfg["disk_mb"]), ("dev/shm", 16)):
        os.makedirs(os.path.join(jail, path), exist_ok=True)
        options = f"size={size}m,nr_inodes=4096,mode=1777"
        mount("tmpfs", os.path.join(jail, path), "tmpfs", MS_NOSUID | MS_NODEV, options)
    os.mkdir(os.path.join(jail, "proc"), 0o555)
    mount("proc", os.path.join(jail, "proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)


def enter_jail(python):
    """Build the jail on a fresh tmpfs, pivot into it, drop the host's root, chroot inside."""
    if SYS_PIVOT_ROOT is None:
        raise OSError("pivot_root: unknown architecture " + platform.machine())
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    base = cfg["jail"]
    mount("tmpfs", base, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=256,mode=0755")
    jail = os.path.join(base, "root")
    os.mkdir(jail, 0o755)
    mount(jail, jail, None, MS_BIND)
    populate(jail, python)
    os.mkdir(os.path.join(base, "old"), 0o700)
    os.chdir(base)
    if libc.syscall(SYS_PIVOT_ROOT, b".", b"old") != 0:
        raise OSError(ctypes.get_errno(), "pivot_root")
    PIVOTED.append(True)
    os.chdir("/")
    if libc.umount2(b"/old", MNT_DETACH) != 0:
        raise OSError(ctypes.get_errno(), "umount old root")
    os.rmdir("/old")
    mount(None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.chroot("/root")
    os.chdir("/")
    mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
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
    isolation = join_cgroups()
    with open(cfg["source"], encoding="utf-8") as handle:
        source = handle.read()
    isolation += unshare_namespaces(root) if cfg["namespaces"] else []
    expected_parent = cfg["parent"]
    if "pid" in isolation:
        init = os.fork()
        if init:
            supervise(init)
        die_with_parent(0)  # PID 1 of the new namespace: its parent is outside it
    python = cfg["python"]
    workdir = cfg["workdir"]
    if "mount" in isolation and "pid" in isolation:
        try:
            workdir = enter_jail(python)
            isolation += ["jail", "proc", "tmpfs"]
        except OSError:
            if PIVOTED:
                raise  # half inside the jail: refuse rather than guess
            os.chdir("/")  # no jail on this host: the run is marked weak
    if "pid" in isolation:
        program = os.fork()
        if program:
            reap(program)
        isolation.append("pid-init")
        expected_parent = 1
    uid = cfg["uid"] if root else os.getuid()
    path = os.path.join(workdir, "solution.py")
    write_file(path, source)
    if root:
        for target in (workdir, path):
            os.chown(target, uid, uid)
    limits = cfg["limits"]
    for name, value in (
        ("RLIMIT_AS", limits["memory"]),
        ("RLIMIT_FSIZE", limits["fsize"]),
        ("RLIMIT_NPROC", limits["nproc"]),
        ("RLIMIT_NOFILE", limits["nofile"]),
    ):
        resource.setrlimit(getattr(resource, name), (value, value))
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu"], limits["cpu"] + 1))
    isolation.append("rlimits")
    if root:
        uid = drop_privileges(uid)
    isolation.append(f"uid:{os.getuid()}")
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    die_with_parent(expected_parent)
    isolation.append("audit-hook")
    report(isolation=isolation)  # status_fd is close-on-exec: a failed exec is still reported
    os.chdir(workdir)
    for fd, number in zip(channel, CHANNEL_FDS, strict=False):
        os.dup2(fd, number, inheritable=True)
    env = {"PATH": cfg["path"], "HOME": workdir, "LANG": "C.UTF-8", "TMPDIR": workdir}
    os.execve(python, [python, "-I", "-c", cfg["runner"], "solution.py"], env)


if __name__ == "__main__":
    cfg = json.loads(sys.argv[1])
    status_fd = high_fd(os.open(cfg["status"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    channel = [high_fd(fd) for fd in cfg["channel"]]
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:
        main()
    except BaseException as error:
        try:
            report(error=f"{type(error).__name__}: {error}")
        finally:
            os._exit(cfg["setup_failed"])
