"""Each escape a hostile review used, run through the coding scorer: it must score 0 and leave
the host untouched.

Most hostile solutions answer correctly only if their attack worked, so a score of 0 proves the
attack failed; the same probe with the answer the other way round scores 1, which proves the
probe itself ran. These tests need the full cage (namespaces, the file-system jail, cgroups);
on a host without it they are skipped (the scorer refuses such hosts unless told it is unsafe).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from moco_core.types import Example
from moco_evals import sandbox
from moco_evals.code_harness import decode_value
from moco_evals.coding import CodingOutcome, run_coding

if not sys.platform.startswith("linux"):
    pytest.skip("the sandbox is Linux-only", allow_module_level=True)

REPO = Path(__file__).resolve().parents[2]
STUB = 'def add(xs: list) -> int:\n    """Sum of xs."""\n'
CHECK = "def check(candidate):\n    assert candidate([1, 2]) == 3\n    assert candidate([]) == 0\n"
QUICK = SimpleNamespace(code_timeout_s=8)


@pytest.fixture(scope="module", autouse=True)
def full_cage() -> None:
    missing = sandbox.missing_isolation()
    if missing:
        pytest.skip(f"this host cannot give the sandbox {', '.join(missing)}: the scorer refuses to run code here")


def humaneval_like() -> Example:
    return Example(0, "h0", "Complete the code.\n\n" + STUB, None, "coding", extra={"test": CHECK})


def mbpp_like() -> Example:
    question = "Write a function to add numbers.\nYour code should pass this test case: assert add([1, 2]) == 3"
    return Example(1, "m0", question, None, "coding", extra={"test": CHECK})


def score(solutions: list[str], options: Any = QUICK) -> list[CodingOutcome]:
    items = [humaneval_like() if index % 2 == 0 else mbpp_like() for index in range(len(solutions))]
    return run_coding(items, [textwrap.dedent(solution) for solution in solutions], options)


def answer_if(probe: str) -> list[str]:
    """A solution that is right only if ``probe`` (code setting ``escaped``) found a way out,
    and its mirror image, right only if it did not."""
    right_if_escaped = f"{textwrap.dedent(probe)}\ndef add(xs):\n    return sum(xs) if escaped else -1\n"
    right_if_contained = f"{textwrap.dedent(probe)}\ndef add(xs):\n    return -1 if escaped else sum(xs)\n"
    return [right_if_escaped, right_if_contained]


def assert_contained(outcomes: list[CodingOutcome]) -> None:
    """The attack scored 0 and its mirror 1 (the probe ran), and nothing of either was left."""
    assert [outcome.score for outcome in outcomes] == [0.0, 1.0], [o.verdict for o in outcomes]
    assert all(outcome.result is not None and outcome.result.leftover == 0 for outcome in outcomes)


# --- the verdict cannot be forged ----------------------------------------------------------


FRAME_WALK = """
import gc, os, re, sys
secrets = set()
frame = sys._getframe()
while frame is not None:
    for scope in (frame.f_locals, frame.f_globals):
        secrets.update(v for v in list(scope.values()) if isinstance(v, str) and re.fullmatch(r"[0-9a-f]{32}", v))
    frame = frame.f_back
secrets.update(o for o in gc.get_objects() if isinstance(o, str) and re.fullmatch(r"[0-9a-f]{32}", o))
for secret in secrets:
    print(secret)
sys.stdout.flush()
os._exit(0)
"""


def test_frame_and_gc_walking_cannot_forge_a_pass() -> None:
    outcomes = score([FRAME_WALK, FRAME_WALK, "def add(xs):\n    return None\n" + FRAME_WALK])
    assert [outcome.score for outcome in outcomes] == [0.0, 0.0, 0.0]


def test_the_tests_are_not_in_the_programs_reach() -> None:
    """The expected answers live only in the scorer: memory and files of the sandbox lack them."""
    probe = """
    import gc, os, sys
    needles = ["".join(["candi", "date("]), "".join(["assert ", "add("])]  # not literals: not in our code
    def _seen(text):
        return not any(text is needle for needle in needles) and any(needle in text for needle in needles)
    escaped = any(isinstance(o, str) and _seen(o) for o in gc.get_objects())
    frame = sys._getframe()
    while frame is not None:
        escaped = escaped or any(isinstance(v, str) and _seen(v) for v in list(frame.f_globals.values()))
        frame = frame.f_back
    for folder, _, files in os.walk("/tmp"):
        for name in files:
            try:
                escaped = escaped or _seen(open(os.path.join(folder, name), errors="replace").read())
            except OSError:
                pass
    """
    assert_contained(score(answer_if(probe)))


ALWAYS_EQUAL = """
class Anything:
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False
    def __abs__(self):
        return 0
    def __sub__(self, other):
        return self
    __rsub__ = __sub__
    def __lt__(self, other):
        return True
    def __hash__(self):
        return 0
"""


@pytest.mark.parametrize(
    "returned",
    ["Anything()", "[Anything()]", "{'k': Anything()}", "Sneaky(7)", "iter([3])", "lambda: 3"],
    ids=["object", "in-a-list", "in-a-dict", "int-subclass", "iterator", "function"],
)
def test_values_that_compare_equal_to_anything_fail(returned: str) -> None:
    sneaky = "class Sneaky(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n"
    solution = f"{ALWAYS_EQUAL}\n{sneaky}\ndef add(xs):\n    return {returned}\n"
    outcomes = score([solution, solution])
    assert [outcome.score for outcome in outcomes] == [0.0, 0.0], [o.verdict for o in outcomes]


def test_forged_replies_on_the_channel_fail() -> None:
    """A program that bypasses the server and writes its own frames gets plain data or nothing."""
    forged = """
    import json, os, struct
    def frame(message):
        data = json.dumps(message).encode()
        return struct.pack(">I", len(data)) + data
    os.write(4, frame({"ready": True}))
    os.write(4, frame({"ok": {"__class__": "Anything"}}))
    os.write(4, frame({"ok": ["Anything", 3]}))
    os.write(4, b"\\xff\\xff\\xff\\xff garbage")
    os._exit(0)
    """
    exits_cleanly = "import os\nos.write(4, b'\\x00\\x00\\x00\\x10{\"ready\": true}')\nos._exit(0)\n"
    outcomes = score([forged, forged, exits_cleanly])
    assert [outcome.score for outcome in outcomes] == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError):
        decode_value(json.dumps({"__class__": "x"}).encode())


# --- no process outlives the verdict -------------------------------------------------------


DETACHED_CHILD = """
import ctypes, os, signal, time
libc = ctypes.CDLL(None, use_errno=True)
if os.fork() == 0:
    os.setsid()
    libc.prctl(1, 0, 0, 0, 0)  # PR_SET_PDEATHSIG 0: do not die with the parent
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    if os.fork() == 0:
        os.setsid()
        libc.prctl(1, 0, 0, 0, 0)
    while True:
        time.sleep(0.1)
time.sleep(0.2)
"""


def _live_processes_of(uid: int) -> list[int]:
    found = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{name}").st_uid != uid:
                continue
            with open(f"/proc/{name}/stat") as handle:
                if handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X"):
                    found.append(int(name))
        except (OSError, IndexError):
            continue
    return found


def _uid(result: sandbox.SandboxResult) -> int:
    return next(int(item[4:]) for item in result.isolation if item.startswith("uid:"))


def _sandbox_processes() -> list[int]:
    """Live processes with one of this scorer's sandbox uids (one block per supervising pid)."""
    first, last = sandbox._slot_uid(0), sandbox._slot_uid(sandbox._UID_BLOCK - 1)
    return [pid for pid in _all_live_processes() if first <= _owner(pid) <= last]


def _all_live_processes() -> list[int]:
    found = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{name}/stat") as handle:
                if handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X"):
                    found.append(int(name))
        except (OSError, IndexError):
            continue
    return found


def _owner(pid: int) -> int:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return -1


@pytest.mark.skipif(os.geteuid() != 0, reason="the program's processes are told apart by their uid, given as root")
def test_detached_children_do_not_outlive_the_verdict() -> None:
    seen_during_run: list[int] = []

    def watch(request: int, reply: int, deadline: float) -> None:
        time.sleep(1.0)
        seen_during_run.extend(_sandbox_processes())

    # Positive control: while the program runs, its detached children are visible by uid.
    control = sandbox.run_program(DETACHED_CHILD + "time.sleep(5)\n", timeout_s=3, driver=watch)
    assert len(seen_during_run) >= 3, seen_during_run
    assert control.timed_out and control.leftover == 0
    assert _live_processes_of(_uid(control)) == []

    right = DETACHED_CHILD + "def add(xs):\n    return sum(xs)\n"
    hanging = DETACHED_CHILD + "def add(xs):\n    while True:\n        pass\n"
    outcomes = score([right, right, hanging], SimpleNamespace(code_timeout_s=3))
    assert [outcome.score for outcome in outcomes] == [1.0, 1.0, 0.0]
    for outcome in outcomes:
        assert outcome.result is not None and outcome.result.leftover == 0
        assert _live_processes_of(_uid(outcome.result)) == []


# --- the host is out of reach --------------------------------------------------------------


@pytest.fixture()
def host_unix_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    """A listening Unix socket outside any temporary folder where we may create one (``/run``)."""
    folder = Path("/run") if os.access("/run", os.W_OK) else tmp_path
    path = str(folder / f"moco-test-{uuid.uuid4().hex[:12]}.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(4)
    server.settimeout(0.2)
    yield path, server
    server.close()
    os.unlink(path)


def test_host_files_and_unix_sockets_are_out_of_reach(
    host_unix_socket: tuple[str, socket.socket], bench_dir: Path
) -> None:
    path, server = host_unix_socket
    abstract = f"\0moco-test-{uuid.uuid4().hex[:12]}"
    abstract_server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    abstract_server.bind(abstract)
    abstract_server.listen(4)
    abstract_server.settimeout(0.2)
    visible = ["/run", "/home", "/var", "/root", "/srv", "/opt", "/mnt", "/sys", "/boot", str(REPO), str(bench_dir)]
    visible += [str(bench_dir / "humaneval.json"), str(bench_dir / "mbpp.json"), "/etc/shadow", "/etc/hostname"]
    probe = f"""
    import os, socket
    escaped = any(os.path.exists(p) for p in {visible!r})
    escaped = escaped or bool(set(os.listdir("/")) - {{"bin", "dev", "etc", "lib", "lib32", "lib64", "libx32",
                                                     "proc", "sbin", "tmp", "usr"}} - {{p.split("/")[1] for p in
                                                     {[os.path.realpath(sandbox.sandbox_python())]!r}}})
    for target in ({path!r}, {abstract!r}):
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(target)
            escaped = True
        except OSError:
            pass
    """
    try:
        assert_contained(score(answer_if(probe)))
        for listener in (server, abstract_server):
            with pytest.raises(TimeoutError):
                listener.accept()
    finally:
        abstract_server.close()


def test_the_program_cannot_create_a_user_namespace() -> None:
    probe = """
    import ctypes, os, subprocess
    libc = ctypes.CDLL(None, use_errno=True)
    escaped = libc.unshare(0x10000000) == 0  # CLONE_NEWUSER
    pid = os.fork()
    if pid == 0:
        os._exit(0 if libc.unshare(0x10000000 | 0x00020000) == 0 else 1)
    escaped = escaped or os.waitpid(pid, 0)[1] == 0
    try:
        escaped = escaped or subprocess.run(["unshare", "--user", "--map-root-user", "true"]).returncode == 0
    except OSError:
        pass
    """
    assert_contained(score(answer_if(probe)))


def test_memory_is_bounded_for_the_program_and_its_children_together() -> None:
    """Four children of 200 MB each (each within the per-process limit) against a 256 MB bound:
    they cannot all hold their memory at once."""
    probe = """
    import os, select, time
    read_end, write_end = os.pipe()
    for _ in range(4):
        if os.fork() == 0:
            try:
                block = b"x" * (200 * 1024 * 1024)
                os.write(write_end, b"1")
                time.sleep(3)
            finally:
                os._exit(0)
    held, deadline = b"", time.monotonic() + 4
    while len(held) < 4 and time.monotonic() < deadline:
        if select.select([read_end], [], [], 0.2)[0]:
            held += os.read(read_end, 4)
    escaped = len(held) >= 4
    """
    outcomes = score(answer_if(probe), SimpleNamespace(code_timeout_s=15, code_memory_mb=256))
    assert_contained(outcomes)
