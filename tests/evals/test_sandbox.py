"""The sandbox against hostile programs: each attack must end in a failed result, leave the host
untouched and let the test run go on.

Every attack runs twice where the host allows: with namespaces (the normal case) and without
(``namespaces=False``, what a host that forbids them gets), so the fallback is tested too. The
fallback relies on running as another user, so it is only exercised as root (CI, containers).
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from moco_evals import sandbox
from moco_evals.sandbox import SandboxResult, run_program, run_programs

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox is Linux-only")

IS_ROOT = os.geteuid() == 0


def run(source: str, **limits: object) -> SandboxResult:
    limits.setdefault("timeout_s", 5)
    return run_program(textwrap.dedent(source), **limits)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def namespaced_isolation() -> tuple[str, ...]:
    result = run("print('ok')")
    assert result.passed, result
    return result.isolation


@pytest.fixture(params=[True, False], ids=["namespaces", "no-namespaces"])
def namespaces(request: pytest.FixtureRequest, namespaced_isolation: tuple[str, ...]) -> bool:
    """Both modes where they differ; the fallback only where it protects (as root)."""
    if not request.param and not IS_ROOT:
        pytest.skip("without namespaces only a root supervisor can isolate the program (as another user)")
    if request.param and not {"pid", "net"} <= set(namespaced_isolation):
        pytest.skip(f"this host allows no PID/network namespace: {namespaced_isolation}")
    return request.param


def _run_uid(result: SandboxResult) -> int:
    return next(int(item.split(":", 1)[1]) for item in result.isolation if item.startswith("uid:"))


def _live_processes_of(uid: int) -> list[int]:
    """Processes of ``uid`` that are not zombies (zombies are dead, waiting to be reaped)."""
    live = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.stat(f"/proc/{name}").st_uid != uid:
                continue
            with open(f"/proc/{name}/stat") as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            live.append(int(name))
    return live


def assert_no_process_left(result: SandboxResult) -> None:
    if not IS_ROOT:
        return  # the program ran as our own user: its processes cannot be told from ours
    uid = _run_uid(result)
    deadline = time.monotonic() + 3
    while _live_processes_of(uid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _live_processes_of(uid) == []


@pytest.fixture()
def sentinel() -> Iterator[subprocess.Popen[bytes]]:
    """A process of the test's own user that programs try to kill."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process
    process.kill()
    process.wait()


# --- normal runs ---------------------------------------------------------------------------


def test_runs_a_program_and_captures_its_output(namespaces: bool) -> None:
    result = run("import sys\nprint('hello')\nprint('oops', file=sys.stderr)", namespaces=namespaces)
    assert result.passed and result.returncode == 0
    assert result.stdout == "hello\n" and "oops" in result.stderr
    assert not result.timed_out and result.killed_reason is None
    assert "rlimits" in result.isolation and "audit-hook" in result.isolation
    if IS_ROOT:
        assert _run_uid(result) != 0


def test_failures_are_results_not_exceptions() -> None:
    assert run("raise SystemExit(3)").returncode == 3
    broken = run("def f(:\n    pass")
    assert not broken.passed and "SyntaxError" in broken.stderr
    failed = run("assert 1 == 2, 'wrong'")
    assert not failed.passed and "AssertionError: wrong" in failed.stderr


def test_isolation_in_force_on_this_host(namespaced_isolation: tuple[str, ...]) -> None:
    """Documents what this host allows; as root with namespaces (CI) everything is on."""
    if IS_ROOT:
        assert any(item.startswith("uid:") and item != "uid:0" for item in namespaced_isolation)
    if "mount" in namespaced_isolation and "pid" in namespaced_isolation:
        assert {"jail", "tmpfs", "proc", "pid-init"} <= set(namespaced_isolation)


def test_weak_isolation_is_marked(namespaces: bool, namespaced_isolation: tuple[str, ...]) -> None:
    result = run("print('ok')", namespaces=namespaces)
    assert result.passed
    assert (sandbox.WEAK_ISOLATION in result.isolation) == (not set(result.isolation) >= sandbox.FULL_ISOLATION)
    if not namespaces:
        assert sandbox.WEAK_ISOLATION in result.isolation
    assert sandbox.isolation_available() == (set(namespaced_isolation) >= sandbox.FULL_ISOLATION)
    assert set(sandbox.missing_isolation()) == sandbox.FULL_ISOLATION - set(namespaced_isolation)


def test_setup_failure_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "sandbox_python", lambda: "/nonexistent/python3")
    result = run("print('never')")
    assert not result.passed and result.stdout == ""
    assert result.killed_reason is not None and result.killed_reason.startswith("sandbox setup failed")


def test_run_programs_is_parallel_and_keeps_order() -> None:
    sources = [f"import time\ntime.sleep(1)\nprint({i})" for i in range(4)]
    start = time.monotonic()
    results = run_programs(sources, workers=4, timeout_s=10)
    elapsed = time.monotonic() - start
    assert [r.stdout.strip() for r in results] == ["0", "1", "2", "3"]
    assert all(r.passed for r in results)
    assert elapsed < 3.0  # serial would take more than 4 s
    assert run_programs([]) == []


def test_working_directory_is_fresh_and_thrown_away(namespaces: bool) -> None:
    name = f"moco-left-behind-{uuid.uuid4().hex}"
    source = f"""
    import os
    print(os.getcwd())
    print(sorted(os.listdir('.')))
    open({name!r}, 'w').write('x')
    """
    result = run(source, namespaces=namespaces)
    assert result.passed, result.stderr
    cwd, listing = result.stdout.splitlines()
    assert listing == "['solution.py']"
    assert not os.path.exists(os.path.join(cwd, name))


# --- attacks -------------------------------------------------------------------------------


def test_infinite_loop_times_out_fast(namespaces: bool) -> None:
    start = time.monotonic()
    result = run("while True:\n    pass", timeout_s=2, namespaces=namespaces)
    assert time.monotonic() - start < 4
    assert not result.passed and result.timed_out and result.killed_reason == "timeout"
    assert_no_process_left(result)


def test_sleeping_program_times_out(namespaces: bool) -> None:
    result = run("import time\ntime.sleep(60)", timeout_s=1, namespaces=namespaces)
    assert not result.passed and result.timed_out


def test_cpu_limit_stops_a_spinning_program(namespaces: bool) -> None:
    start = time.monotonic()
    result = run("while True:\n    pass", timeout_s=10, cpu_s=1, namespaces=namespaces)
    assert time.monotonic() - start < 5
    assert not result.passed and not result.timed_out
    assert result.killed_reason == "cpu time limit"


BOUNDED_FORKS = """
import os, time
children = 0
for _ in range(50):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(2)
        os._exit(0)
    children += 1
print(children)
"""


def test_process_limit_holds(namespaces: bool) -> None:
    """A bounded fork loop first: fork must fail long before the loop ends."""
    result = run(BOUNDED_FORKS, max_processes=8, namespaces=namespaces)
    assert result.passed, result.stderr
    assert int(result.stdout) < 8
    assert_no_process_left(result)


@pytest.mark.parametrize(
    "bomb",
    [
        "import os\nwhile True:\n    os.fork()\n",
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
    ],
    ids=["fork-until-error", "fork-forever"],
)
def test_fork_bomb_is_contained(bomb: str, namespaces: bool) -> None:
    probe = run(BOUNDED_FORKS, max_processes=8, namespaces=namespaces)
    assert probe.passed and int(probe.stdout) < 8, "process limit does not hold: refusing to run a fork bomb"
    start = time.monotonic()
    result = run(bomb, timeout_s=3, max_processes=8, namespaces=namespaces)
    assert time.monotonic() - start < 6
    assert not result.passed
    assert_no_process_left(result)
    assert run("print('still fine')", namespaces=namespaces).passed


def test_allocating_10_gb_fails(namespaces: bool) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = run("x = bytearray(10 * 1024**3)\nprint('allocated')", namespaces=namespaces)
    assert not result.passed and "allocated" not in result.stdout
    assert result.killed_reason == "memory limit"
    big_list = run("x = [0] * (2 * 1024**3)", namespaces=namespaces)
    assert not big_list.passed
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB


def _protected_dirs(tmp_path: Path) -> list[Path]:
    """Root-owned 0755 directories, each with a file ``keep``: one under /tmp (as the brief asks)
    and, where we may create one, one outside every tmpfs the sandbox mounts."""
    dirs = [tmp_path / "protected"]
    for parent in ("/srv", "/opt", "/mnt", "/var/cache"):
        if os.access(parent, os.W_OK):
            dirs.append(Path(tempfile.mkdtemp(prefix="moco-sandbox-test-", dir=parent)))
            break
    for directory in dirs:
        directory.mkdir(exist_ok=True)
        directory.chmod(0o755)
        (directory / "keep").write_text("precious")
        (directory / "keep").chmod(0o644)
    return dirs


@pytest.mark.skipif(not IS_ROOT, reason="without root the program runs as our own user")
def test_writing_and_deleting_outside_its_directory_fails(namespaces: bool, tmp_path: Path) -> None:
    dirs = _protected_dirs(tmp_path)
    try:
        attempts = []
        for directory in dirs:
            attempts += [
                f"open({str(directory / 'owned_by_sandbox')!r}, 'w').write('x')",
                f"os.remove({str(directory / 'keep')!r})",
                f"os.rename({str(directory / 'keep')!r}, {str(directory / 'moved')!r})",
                f"os.chmod({str(directory / 'keep')!r}, 0o777)",
                f"open({str(directory / 'keep')!r}, 'a').write('overwritten')",
            ]
        attempts.append("open('/etc/moco_owned_by_sandbox', 'w').write('x')")
        attempts.append(f"open({__file__!r}, 'a').write('# owned')")
        source = "import os\n" + "".join(
            f"try:\n    {attempt}\n    print('SUCCEEDED', {attempt!r})\n"
            "except OSError as error:\n    print('refused', error)\n"
            for attempt in attempts
        )
        result = run(source, namespaces=namespaces)
        assert result.passed, result.stderr
        assert "SUCCEEDED" not in result.stdout
        for directory in dirs:
            assert sorted(p.name for p in directory.iterdir()) == ["keep"]
            assert (directory / "keep").read_text() == "precious"
            assert (directory / "keep").stat().st_mode & 0o777 == 0o644
        assert not os.path.exists("/etc/moco_owned_by_sandbox")
        assert not Path(__file__).read_text().endswith("# owned")
    finally:
        for directory in dirs[1:]:
            for child in directory.iterdir():
                child.unlink()
            directory.rmdir()


def test_files_written_to_tmp_do_not_outlive_the_run(namespaced_isolation: tuple[str, ...]) -> None:
    if "tmpfs" not in namespaced_isolation:
        pytest.skip("no mount namespace on this host")
    name = f"/tmp/moco-sandbox-{uuid.uuid4().hex}"
    result = run(f"open({name!r}, 'w').write('x')\nprint(open({name!r}).read())")
    assert result.passed and result.stdout == "x\n"
    assert not os.path.exists(name)


@pytest.fixture()
def listener() -> Iterator[socket.socket]:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.3)
    yield server
    server.close()


def _connected(server: socket.socket) -> bool:
    try:
        connection, _ = server.accept()
    except TimeoutError:
        return False
    connection.close()
    return True


def test_network_is_unreachable(namespaces: bool, listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    source = f"""
    import socket
    for target in [('127.0.0.1', {port}), ('1.1.1.1', 53)]:
        try:
            s = socket.create_connection(target, timeout=1)
            print('CONNECTED', target)
        except OSError as error:
            print('refused', target, error)
    """
    result = run(source, namespaces=namespaces)
    assert result.passed, result.stderr
    assert "CONNECTED" not in result.stdout
    assert not _connected(listener)


def test_raw_syscalls_cannot_reach_the_network_either(
    listener: socket.socket, namespaced_isolation: tuple[str, ...]
) -> None:
    """ctypes bypasses the audit hook; only the network namespace stops this."""
    if "net" not in namespaced_isolation:
        pytest.skip("no network namespace on this host: only Python-level sockets are refused")
    port = listener.getsockname()[1]
    source = f"""
    import ctypes, socket, struct
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.socket(socket.AF_INET, socket.SOCK_STREAM, 0)
    address = struct.pack('<HH4s8x', socket.AF_INET, socket.htons({port}), socket.inet_aton('127.0.0.1'))
    print(libc.connect(fd, address, len(address)))
    """
    result = run(source)
    assert result.passed, result.stderr
    assert result.stdout.strip() == "-1"
    assert not _connected(listener)


def test_environment_secrets_do_not_leak(namespaces: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = f"moco-secret-{uuid.uuid4().hex}"
    monkeypatch.setenv("MOCO_SECRET_TOKEN", secret)
    source = f"""
    import os
    print(dict(os.environ))
    for path in ['/proc/self/environ', '/proc/{os.getpid()}/environ', '/proc/1/environ']:
        try:
            print(open(path, 'rb').read())
        except OSError as error:
            print('refused', path, error)
    """
    result = run(source, namespaces=namespaces)
    assert result.passed, result.stderr
    assert secret not in result.stdout and "MOCO_SECRET_TOKEN" not in result.stdout
    assert "HF_HOME" not in result.stdout  # set by conftest: nothing of ours is inherited


def test_program_cannot_kill_its_parent_or_the_test_runner(namespaces: bool, sentinel: subprocess.Popen[bytes]) -> None:
    source = f"""
    import os, signal
    for pid in (os.getppid(), {os.getpid()}, {sentinel.pid}, -1):
        try:
            os.kill(pid, signal.SIGKILL)
            print('sent', pid)
        except OSError as error:
            print('refused', pid, error)
    print('survived')
    """
    result = run(source, namespaces=namespaces)
    assert "survived" in result.stdout
    assert sentinel.poll() is None, "the program killed a process of the test's user"
    assert run("print('next run')", namespaces=namespaces).passed  # and we are still here


def test_printing_100_mb_is_bounded(namespaces: bool) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    result = run(
        "import sys\nfor _ in range(100):\n    sys.stdout.write('x' * 1_000_000)\n",
        namespaces=namespaces,
        max_output_bytes=1_000_000,
    )
    assert time.monotonic() - start < 5
    assert not result.passed
    assert result.output_truncated and len(result.stdout) == 1_000_000
    assert result.killed_reason is not None and "output limit" in result.killed_reason
    stubborn = run(
        "import os\nfor _ in range(100):\n    try:\n        os.write(1, b'y' * 1_000_000)\n"
        "    except OSError:\n        pass\n",
        namespaces=namespaces,
        max_output_bytes=100_000,
    )
    assert len(stubborn.stdout) == 100_000 and stubborn.output_truncated
    assert len(stubborn.stderr) <= 100_000
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB


def test_a_crashing_program_is_reported(namespaces: bool) -> None:
    result = run("import ctypes\nctypes.string_at(0)", namespaces=namespaces)
    assert not result.passed and result.returncode == -signal.SIGSEGV
    assert result.killed_reason == "signal SIGSEGV"
