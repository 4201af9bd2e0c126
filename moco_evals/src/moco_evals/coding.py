"""The ``coding`` task type: run the model's code against the dataset's tests in a sandbox.

Items arrive in two shapes. HumanEval gives the function stub (imports, signature, docstring,
sometimes helper functions) in the question and a ``check(candidate)`` test; MBPP gives a prose
task whose example ``assert name(...)`` names the function, and the same kind of
``check(candidate)`` test (or, from the public source, a list of plain asserts). Neither file
says which function ``check`` must be called with, so the entry point is found: an explicit
``entry_point`` field, else the last function of the stub, else the function the question's
asserts call.

The program is the stub (so the imports and helpers the model was shown exist; a stub whose
body is only a docstring is a valid function that the model's definition then replaces),
the extracted code, the tests, and ``check(entry_point)``. An item without tests scores 0 and
is reported as unscorable, never run.

Exit status 0 alone is not a pass: the solution runs before the tests, so ``sys.exit(0)``,
``exit()``, ``unittest.main()`` or an ``atexit`` hook calling ``os._exit(0)`` would otherwise
make any answer pass. The program therefore runs inside a guard (``guard_program``): solution
and tests execute with ``exec`` in a fresh namespace, any ``BaseException`` (``SystemExit``
included) before the tests finish is a failure, and only after the check returns does the
guard write a random per-run nonce, chosen by the scorer, as the last line of stdout. An item
passes when the program exits with 0 *and* that nonce is the last line of its stdout. (The
nonce is in the program's memory, so code that deliberately searches the interpreter for it
could still forge it; accidental or lazy early exits cannot.)
"""

from __future__ import annotations

import ast
import builtins
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from moco_core.errors import MocoError
from moco_core.registry import ScorerSpec
from moco_core.types import Example
from moco_evals.quirks import is_unscorable, unscorable_reason
from moco_evals.sandbox import SandboxResult, namespaces_available, run_programs

CODE_INSTRUCTION = (
    "Reply with a complete, self-contained Python solution (the full function definition and "
    "any imports it needs) in a single ```python code block."
)
DEFAULT_TIMEOUT_S = 10.0

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+.-]*)[^\n]*\n(.*?)```", re.DOTALL)
_OPEN_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+.-]*)[^\n]*\n(.*)\Z", re.DOTALL)
_PYTHON_TAGS = frozenset({"python", "py", "python3", "py3"})
_CODE_START = re.compile(r"^(?:from\s+\w|import\s+\w|def\s+\w|async\s+def\s+\w|class\s+\w|@\w)", re.MULTILINE)
_ASSERT_LINE = re.compile(r"\bassert\b[^\n]*")
_FUTURE = re.compile(r"^from\s+__future__\s+import\s+[^\n]*$", re.MULTILINE)
_BUILTINS = frozenset(dir(builtins))
_CHECK_DEF = re.compile(r"^def\s+check\s*\(", re.MULTILINE)
CHECK_FUNCTION = "_moco_check"
UNSAFE_SANDBOX_ENV = "MOCO_UNSAFE_SANDBOX"

# Runs the assembled program (solution + tests + check call) and proves the tests completed:
# the nonce is written only after the check returned without raising; any exception,
# ``SystemExit`` included, exits with 1 before it is written. ``os._exit`` skips atexit hooks
# and lingering threads, which can then change nothing. The program file is removed first.
_GUARD = """\
def _moco_guard(source, nonce):
    import builtins, os, sys
    write, exit_now = os.write, os._exit
    try:
        os.unlink(__file__)
    except BaseException:
        pass
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    try:
        exec(compile(source, "solution.py", "exec", dont_inherit=True), namespace)
    except BaseException as error:
        try:
            import traceback
            traceback.print_exception(type(error), error, error.__traceback__)
            if isinstance(error, SystemExit):
                sys.stderr.write("moco: the program exited before its tests finished\\n")
            sys.stderr.flush()
        finally:
            exit_now(1)
    try:
        sys.stdout.flush()
    except BaseException:
        pass
    write(1, ("\\n" + nonce + "\\n").encode())
    exit_now(0)


_moco_guard(%(source)s, %(nonce)s)
"""


def _parses(code: str) -> ast.Module | None:
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError):
        return None


def _top_level_functions(tree: ast.Module) -> list[str]:
    return [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]


def _defines(code: str, name: str) -> bool:
    return re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(name)}\s*\(", code, re.MULTILINE) is not None


def code_stub(question: str) -> str | None:
    """The code the question shows (HumanEval's imports, helpers and stub), or None.

    It starts at the first line that begins a Python statement (``def``, ``import``, ...) and
    must parse on its own, so prose questions (MBPP) have none.
    """
    match = _CODE_START.search(question or "")
    if match is None:
        return None
    stub = question[match.start() :].rstrip() + "\n"
    tree = _parses(stub)
    return stub if tree is not None and _top_level_functions(tree) else None


def _called_in_asserts(text: str) -> list[str]:
    """Functions called by the ``assert`` statements of ``text``, outermost first.

    Builtins come last: ``assert set(f(x)) == ...`` tests ``f``, but MBPP also has tasks whose
    function is itself named like a builtin (``assert sum(10, 15) == 6``).
    """
    names: list[str] = []
    for line in _ASSERT_LINE.findall(text or ""):
        tree = _parses(line.strip())
        if tree is None:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id not in names:
                names.append(node.func.id)
    names = [name for name in names if name != "candidate"]
    return [name for name in names if name not in _BUILTINS] + [name for name in names if name in _BUILTINS]


def entry_point(example: Example) -> str | None:
    """The function the tests exercise: ``extra["entry_point"]``, the stub's last function, or
    the first non-builtin function the question's (or plain tests') asserts call."""
    explicit = example.extra.get("entry_point")
    if isinstance(explicit, str) and explicit.strip():
        return explicit.strip()
    stub = code_stub(example.question)
    if stub is not None:
        tree = _parses(stub)
        if tree is not None:
            return _top_level_functions(tree)[-1]
    called = _called_in_asserts(example.question) or _called_in_asserts(item_tests(example))
    return called[0] if called else None


def item_tests(example: Example) -> str:
    """The item's test code: ``test``/``tests`` (a string or a list of assert lines), after any
    ``test_imports``/``test_setup_code`` the public MBPP source carries."""
    parts: list[str] = []
    for key in ("test_imports", "test_setup_code"):
        value = example.extra.get(key)
        if isinstance(value, (list, tuple)):
            parts.extend(str(item) for item in value if str(item).strip())
        elif isinstance(value, str) and value.strip():
            parts.append(value)
    tests = example.extra.get("test", example.extra.get("tests"))
    if isinstance(tests, (list, tuple)):
        tests = "\n".join(str(item) for item in tests if str(item).strip())
    if not isinstance(tests, str) or not tests.strip():
        return ""
    return "\n".join([*parts, tests])


def coding_prompt(example: Example) -> str:
    """The task, the signature the tests call, and the request for a fenced Python solution."""
    question = example.question.strip()
    name = entry_point(example)
    hint = ""
    if name is not None:
        stub = code_stub(example.question)
        signature = re.search(rf"^(?:async\s+)?def\s+{re.escape(name)}\s*\(.*$", stub or "", re.MULTILINE)
        if signature is not None:
            hint = f"Keep the signature `{signature.group(0).strip()}`."
        else:
            call = re.search(rf"\b{re.escape(name)}\s*\([^\n]*?\)", question)
            usage = f" (the tests call it as `{call.group(0)}`)" if call else ""
            hint = f"Name the function `{name}`{usage}."
    return "\n\n".join(part for part in (question, hint, CODE_INSTRUCTION) if part)


def extract_code(output: str, entry: str | None = None) -> str:
    """The code in a model's reply.

    The last fenced Python block, preferring the last one that defines ``entry`` (a reply often
    ends with a usage example block); else the last fenced block of any language; else an
    unterminated fence (a truncated generation); else the text from its first code line, or
    the whole text.
    """
    text = output or ""
    blocks = [(tag.lower(), body) for tag, body in _FENCE.findall(text)]
    python = [body for tag, body in blocks if tag in _PYTHON_TAGS or tag == ""]
    tagged = [body for tag, body in blocks if tag in _PYTHON_TAGS]
    for candidates in (tagged, python, [body for _, body in blocks]):
        if candidates:
            if entry is not None:
                defining = [body for body in candidates if _defines(body, entry)]
                if defining:
                    return defining[-1]
            return candidates[-1]
    unterminated = _OPEN_FENCE.search(text)
    if unterminated is not None:
        return unterminated.group(2)
    start = _CODE_START.search(text)
    if start is not None and _parses(text[start.start() :]) is not None and _parses(text) is None:
        return text[start.start() :]
    return text


def _calls_check(tests: str) -> bool:
    tree = _parses(tests)
    if tree is None:
        return re.search(r"^check\s*\(", tests, re.MULTILINE) is not None
    return any(
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Name)
        and node.value.func.id == "check"
        for node in tree.body
    )


def _defines_check(tests: str) -> bool:
    return _defines(tests, "check")


def build_program(example: Example, code: str) -> str:
    """Stub + solution + tests + ``check(entry_point)`` as one script.

    The tests' ``check`` is renamed ``CHECK_FUNCTION`` first, so a solution function that is
    itself named ``check`` (four MBPP tasks) is not replaced by it.

    ``from __future__`` imports are hoisted to the top, where Python requires them. When the
    entry point cannot be found, the solution's last function is checked.
    """
    tests = item_tests(example)
    stub = code_stub(example.question) or ""
    name = entry_point(example)
    if name is None:
        tree = _parses(code)
        functions = _top_level_functions(tree) if tree is not None else []
        name = functions[-1] if functions else None
    body = "\n\n".join(part.rstrip("\n") for part in (stub, code) if part.strip())
    futures = _FUTURE.findall(body)
    body = _FUTURE.sub("", body)
    if _defines_check(tests) and not _calls_check(tests) and name is not None:
        # Renamed: MBPP has tasks whose function is itself called ``check``.
        tests = _CHECK_DEF.sub(f"def {CHECK_FUNCTION}(", tests)
        tests = f"{tests.rstrip()}\n\n\n{CHECK_FUNCTION}({name})"
    parts = [*dict.fromkeys(futures), body, tests.rstrip("\n")]
    return "\n\n".join(parts) + "\n"


def guard_program(program: str, nonce: str) -> str:
    """``program`` wrapped so that it prints ``nonce`` as its last line only once its tests
    ran to the end (see the module docstring)."""
    return _GUARD % {"source": repr(program), "nonce": repr(nonce)}


def proves_completion(result: SandboxResult, nonce: str) -> bool:
    """Exit status 0 within the limits and ``nonce`` as the last line of stdout."""
    lines = result.stdout.rstrip("\n").split("\n")
    return result.passed and not result.output_truncated and lines[-1] == nonce


def require_isolation() -> None:
    """Refuse to run model code where the sandbox has no network/PID namespace, unless the
    user opted in with ``MOCO_UNSAFE_SANDBOX=1``.

    Without them the program can reach the network through raw syscalls (ctypes) that the
    audit hook never sees, and signal processes of its own uid.
    """
    if os.environ.get(UNSAFE_SANDBOX_ENV, "").strip() == "1":
        return
    if not namespaces_available():
        raise MocoError(
            "code sandbox: network/pid namespaces unavailable; model code could reach the network or "
            f"signal other processes (run as root or enable user namespaces, or set {UNSAFE_SANDBOX_ENV}=1 "
            "to accept weak isolation)"
        )


@dataclass(frozen=True)
class CodingOutcome:
    """One scored item: its score, why it could not be scored, and the sandbox result."""

    score: float
    unscorable: str | None = None
    result: SandboxResult | None = None


def _unscorable(example: Example) -> str | None:
    if is_unscorable(example):
        return str(example.extra.get("unscorable"))
    reason = unscorable_reason(example, "coding")
    if reason is None and not item_tests(example):
        reason = "no tests"
    return reason


def _sandbox_limits(options: Any) -> dict[str, Any]:
    """Sandbox keywords from the run's scoring options, where it names any (``code_*``)."""
    limits: dict[str, Any] = {"timeout_s": DEFAULT_TIMEOUT_S}
    for option, keyword in (
        ("code_timeout_s", "timeout_s"),
        ("code_cpu_s", "cpu_s"),
        ("code_memory_mb", "memory_mb"),
        ("code_workers", "workers"),
    ):
        value = getattr(options, option, None)
        if value is not None:
            limits[keyword] = value
    return limits


def run_coding(examples: Sequence[Example], outputs: Sequence[str], options: Any = None) -> list[CodingOutcome]:
    """Score every output in the sandbox, in parallel; unscorable items are never run."""
    if len(examples) != len(outputs):
        raise ValueError(f"{len(examples)} examples but {len(outputs)} outputs")
    outcomes: list[CodingOutcome | None] = [None] * len(examples)
    programs: list[str] = []
    positions: list[int] = []
    for position, (example, output) in enumerate(zip(examples, outputs, strict=True)):
        reason = _unscorable(example)
        if reason is not None:
            outcomes[position] = CodingOutcome(0.0, unscorable=reason)
            continue
        code = extract_code(output or "", entry_point(example))
        programs.append(build_program(example, code))
        positions.append(position)
    if programs:
        require_isolation()
    nonces = [secrets.token_hex(16) for _ in programs]
    guarded = [guard_program(program, nonce) for program, nonce in zip(programs, nonces, strict=True)]
    limits = _sandbox_limits(options)
    workers = limits.pop("workers", None)
    results = run_programs(guarded, workers=workers, **limits)
    for position, result, nonce in zip(positions, results, nonces, strict=True):
        outcomes[position] = CodingOutcome(float(proves_completion(result, nonce)), result=result)
    return [outcome for outcome in outcomes if outcome is not None]


def score_coding(examples: Sequence[Example], outputs: Sequence[str], options: Any = None) -> list[float]:
    """1.0 where the extracted code passes the item's tests in the sandbox, else 0.0."""
    return [outcome.score for outcome in run_coding(examples, outputs, options)]


def scorer_spec() -> ScorerSpec:
    """The ``coding`` task type: fenced Python solution, run with the tests, pass@1."""
    return ScorerSpec(task_type="coding", prompt=coding_prompt, score=score_coding, extract=None, metric="pass@1")
