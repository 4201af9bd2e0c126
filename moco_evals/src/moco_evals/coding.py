"""The ``coding`` task type: run the model's code against the dataset's tests in a sandbox.

Items arrive in two shapes. HumanEval gives the function stub (imports, signature, docstring,
sometimes helper functions) in the question and a ``check(candidate)`` test; MBPP gives a prose
task whose example ``assert name(...)`` names the function, and the same kind of
``check(candidate)`` test (or, from the public source, a list of plain asserts). Neither file
says which function ``check`` must be called with, so the entry point is found: an explicit
``entry_point`` field, else the last function of the stub, else the function the question's
asserts call. An item without tests scores 0 and is reported as unscorable, never run.

The verdict never depends on anything the untrusted program can read or write. The sandbox
runs only the stub (so the imports and helpers the model was shown exist; a stub whose body is
only a docstring is a valid function that the model's definition then replaces), the test
setup code and the extracted code, and then serves calls (``code_harness.server_program``).
The tests run in the scorer itself (``code_harness.run_tests``), against the trusted stub, with
the entry point (and any other function the model defined that the stub does not) replaced by
a proxy that sends the arguments to the sandbox and gets back plain data only. The program's
exit status and output do not count: an item passes when the whole test ran without an
exception, the candidate answered at least once, every answer was plain data, and the sandbox
confirmed that no process of the program was left.
"""

from __future__ import annotations

import ast
import builtins
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from moco_core.errors import MocoError
from moco_core.registry import ScorerSpec
from moco_core.types import Example
from moco_evals.code_harness import Channel, Verdict, run_tests, server_program
from moco_evals.quirks import is_unscorable, unscorable_reason
from moco_evals.sandbox import Driver, SandboxResult, missing_isolation, run_programs

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


def _parses(code: str) -> ast.Module | None:
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # model code may be pathological
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
    tests = _test_body(example)
    return "\n".join(part for part in (_test_setup(example), tests) if part) if tests else ""


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


def _test_setup(example: Example) -> str:
    """``test_imports``/``test_setup_code`` of the public MBPP source (run on both sides)."""
    parts: list[str] = []
    for key in ("test_imports", "test_setup_code"):
        value = example.extra.get(key)
        if isinstance(value, (list, tuple)):
            parts.extend(str(item) for item in value if str(item).strip())
        elif isinstance(value, str) and value.strip():
            parts.append(value)
    return "\n".join(parts)


def _test_body(example: Example) -> str:
    tests = example.extra.get("test", example.extra.get("tests"))
    if isinstance(tests, (list, tuple)):
        tests = "\n".join(str(item) for item in tests if str(item).strip())
    return tests if isinstance(tests, str) and tests.strip() else ""


def _hoisted(*parts: str) -> str:
    """``parts`` joined, with their ``from __future__`` imports moved to the top."""
    body = "\n\n".join(part.rstrip("\n") for part in parts if part.strip())
    futures = _FUTURE.findall(body)
    return "\n\n".join([*dict.fromkeys(futures), _FUTURE.sub("", body)]).lstrip("\n") + "\n"


def _defined_names(code: str) -> set[str]:
    tree = _parses(code)
    if tree is None:
        return set()
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
    return names


@dataclass(frozen=True)
class CodingPlan:
    """One item, split between the sandbox and the scorer.

    ``program``: what the sandbox runs (stub, test setup, the model's code). ``setup`` and
    ``tests``: what the scorer runs (stub and test setup; then the tests with their check call).
    ``proxied``: the names bound to the candidate's functions in the scorer's namespace;
    ``constructors``: its classes the tests may build arguments with (``RemoteConstructor``).
    """

    program: str
    setup: str
    tests: str
    proxied: tuple[str, ...]
    constructors: tuple[str, ...] = ()


def plan_item(example: Example, code: str) -> CodingPlan:
    """Split one item and the model's ``code`` into the sandboxed and the trusted half.

    The tests' ``check`` is renamed ``CHECK_FUNCTION`` (and called with the entry point) unless
    they call it themselves, so a solution function that is itself named ``check`` (four MBPP
    tasks) is not shadowed by it. When the entry point cannot be found, the solution's last
    function is checked.
    """
    stub = code_stub(example.question) or ""
    setup = _test_setup(example)
    tests = _test_body(example)
    name = entry_point(example)
    if name is None:
        tree = _parses(code)
        functions = _top_level_functions(tree) if tree is not None else []
        name = functions[-1] if functions else None
    if _defines_check(tests) and not _calls_check(tests) and name is not None:
        tests = _CHECK_DEF.sub(f"def {CHECK_FUNCTION}(", tests)
        tests = f"{tests.rstrip()}\n\n\n{CHECK_FUNCTION}({name})\n"
    trusted_setup = _hoisted(stub, setup)
    tree = _parses(code)
    own = _top_level_functions(tree) if tree is not None else []
    classes = [node.name for node in tree.body if isinstance(node, ast.ClassDef)] if tree is not None else []
    known = _defined_names(trusted_setup) | _defined_names(tests)
    proxied = [name] if name is not None else []
    proxied += [function for function in own if function not in known and function not in proxied]
    constructors = tuple(dict.fromkeys(c for c in classes if c not in known and c not in proxied))
    return CodingPlan(_hoisted(stub, setup, code), trusted_setup, tests, tuple(proxied), constructors)


def require_isolation(options: Any = None) -> None:
    """Refuse to run model code where the sandbox is not fully in force (namespaces, jail,
    cgroup), unless the user opted in with ``MOCO_UNSAFE_SANDBOX=1`` or the scoring option
    ``code_allow_unsafe``.

    Without them the program may reach the network through raw syscalls, see the host's
    files and sockets, signal processes, leave processes behind or exceed the memory bound.
    """
    if os.environ.get(UNSAFE_SANDBOX_ENV, "").strip() == "1" or getattr(options, "code_allow_unsafe", False) is True:
        return
    missing = missing_isolation()
    if missing:
        raise MocoError(
            f"code sandbox: this host gives no {', '.join(missing)} isolation; model code could reach the "
            f"network, host files or other processes (run as root on Linux with namespaces and cgroups, or set "
            f"{UNSAFE_SANDBOX_ENV}=1 / scoring.code_allow_unsafe: true to accept that)"
        )


@dataclass(frozen=True)
class CodingOutcome:
    """One scored item: its score, why it could not be scored, the sandbox result and the
    trusted tests' verdict."""

    score: float
    unscorable: str | None = None
    result: SandboxResult | None = None
    verdict: Verdict | None = None


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


def _driver(plan: CodingPlan) -> Driver:
    def drive(request_fd: int, reply_fd: int, deadline: float) -> Verdict:
        channel = Channel(request_fd, reply_fd, deadline)
        return run_tests(channel, plan.setup, plan.tests, list(plan.proxied), plan.constructors)

    return drive


def _score(result: SandboxResult) -> float:
    verdict = result.driven
    return float(isinstance(verdict, Verdict) and verdict.passed and result.leftover == 0)


def run_coding(examples: Sequence[Example], outputs: Sequence[str], options: Any = None) -> list[CodingOutcome]:
    """Score every output, in parallel; unscorable items are never run."""
    if len(examples) != len(outputs):
        raise ValueError(f"{len(examples)} examples but {len(outputs)} outputs")
    outcomes: list[CodingOutcome | None] = [None] * len(examples)
    plans: list[CodingPlan] = []
    positions: list[int] = []
    for position, (example, output) in enumerate(zip(examples, outputs, strict=True)):
        reason = _unscorable(example)
        if reason is not None:
            outcomes[position] = CodingOutcome(0.0, unscorable=reason)
            continue
        plans.append(plan_item(example, extract_code(output or "", entry_point(example))))
        positions.append(position)
    if plans:
        require_isolation(options)
    limits = _sandbox_limits(options)
    workers = limits.pop("workers", None)
    programs = [server_program(plan.program) for plan in plans]
    results = run_programs(programs, workers=workers, drivers=[_driver(plan) for plan in plans], **limits)
    for position, result in zip(positions, results, strict=True):
        verdict = result.driven if isinstance(result.driven, Verdict) else None
        outcomes[position] = CodingOutcome(_score(result), result=result, verdict=verdict)
    return [outcome for outcome in outcomes if outcome is not None]


def score_coding(examples: Sequence[Example], outputs: Sequence[str], options: Any = None) -> list[float]:
    """1.0 where the extracted code passes the item's tests (see the module docstring), else 0.0."""
    return [outcome.score for outcome in run_coding(examples, outputs, options)]


def scorer_spec() -> ScorerSpec:
    """The ``coding`` task type: fenced Python solution, run with the tests, pass@1."""
    return ScorerSpec(task_type="coding", prompt=coding_prompt, score=score_coding, extract=None, metric="pass@1")
