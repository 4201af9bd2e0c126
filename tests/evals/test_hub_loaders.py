"""Public-source loaders on tiny local copies in each hub's own schema: nothing is downloaded.

Each source is saved with ``save_to_disk`` and ``moco_evals.hub.fetch_split`` is replaced by a
``load_from_disk`` reader, so the mapping, the split rule and the seed are what is tested.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from moco_core import plugins
from moco_core.config import parse_config
from moco_core.data import load_registered
from moco_core.errors import MocoError
from moco_core.types import Dataset
from moco_core.validation import load_dataset
from moco_evals import hub
from moco_evals.catalog import dataset_specs

SPECS = {spec.key: spec for spec in dataset_specs()}
Rows = dict[str, list[dict[str, Any]]]


class LocalHub:
    """Hub datasets saved under a folder, served to ``fetch_split`` the way the hub would."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.calls: list[tuple[str, str | None, str, str | None, int | None]] = []

    def folder(self, path: str, config: str | None) -> Path:
        return self.root / path.replace("/", "__") / (config or "default")

    def add(self, path: str, splits: Rows, config: str | None = None) -> None:
        import datasets

        saved = datasets.DatasetDict({name: datasets.Dataset.from_list(rows) for name, rows in splits.items()})
        saved.save_to_disk(str(self.folder(path, config)))

    def fetch(
        self, path: str, config: str | None, split: str, revision: str | None = None, head: int | None = None
    ) -> list[dict[str, Any]]:
        import datasets

        self.calls.append((path, config, split, revision, head))
        rows = datasets.load_from_disk(str(self.folder(path, config)))[split].to_list()
        return rows if head is None else rows[:head]


@pytest.fixture()
def local_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalHub:
    store = LocalHub(tmp_path / "hub")
    monkeypatch.setattr(hub, "fetch_split", store.fetch)
    return store


def load(key: str, seed: int = 0, cap: int = hub.CAP) -> Dataset:
    return hub.load_hub(SPECS[key], seed, cap)


def numbered(make: Callable[[int], dict[str, Any]], count: int) -> list[dict[str, Any]]:
    return [make(i) for i in range(count)]


def gsm8k_row(i: int) -> dict[str, Any]:
    return {"question": f"What is {i} + 1000?", "answer": f"{i} + 1000 = {i + 1000}\n#### {i + 1000:,}"}


# ---- mappings -------------------------------------------------------------------------------


def test_gsm8k_answer_after_hashes_and_train_test_rule(local_hub: LocalHub) -> None:
    local_hub.add("openai/gsm8k", {"train": numbered(gsm8k_row, 10), "test": numbered(gsm8k_row, 10)}, "main")
    dataset = load("gsm8k", cap=3)
    assert (len(dataset.dev), len(dataset.test)) == (3, 3)
    for example in dataset.dev + dataset.test:
        number = int(example.question.split()[2])
        assert example.answer == str(number + 1000)
        assert example.task_type == "exact_match"
    assert {e.id.split("/")[0] for e in dataset.dev} == {"train"}
    assert {e.id.split("/")[0] for e in dataset.test} == {"test"}
    assert dataset.source == "hub:openai/gsm8k (main) seed=0 dev=train shuffled[:3] test=test shuffled[:3]"
    assert (dataset.name, dataset.domain) == ("gsm8k", "math")
    assert {call[:3] for call in local_hub.calls} == {
        ("openai/gsm8k", "main", "train"),
        ("openai/gsm8k", "main", "test"),
    }


def test_math_500_answer_and_competition_math_boxed_solution(local_hub: LocalHub) -> None:
    rows = [
        {
            "problem": "p0",
            "solution": "so \\boxed{3}",
            "answer": "3",
            "subject": "Algebra",
            "level": 1,
            "unique_id": "u0",
        },
        {
            "problem": "p1",
            "solution": "x",
            "answer": "\\frac{1}{2}",
            "subject": "Algebra",
            "level": 2,
            "unique_id": "u1",
        },
    ]
    local_hub.add("HuggingFaceH4/MATH-500", {"test": rows})
    dataset = load("math")
    by_id = {e.id: e for e in dataset.dev + dataset.test}
    assert by_id["u1"].answer == "\\frac{1}{2}" and by_id["u1"].extra == {"subject": "Algebra", "level": 2}
    competition = [
        {"problem": "p", "level": "Level 5", "type": "Geometry", "solution": "Thus $\\boxed{\\frac{\\sqrt{3}}{2}}$."},
        {"problem": "q", "level": "Level 1", "type": "Algebra", "solution": "no box here"},
    ]
    assert hub._math(competition[0], hub.RowRef(None, "test", 0), None)["output"] == "\\frac{\\sqrt{3}}{2}"
    assert hub._math(competition[1], hub.RowRef(None, "test", 1), None) is None


def test_mmlu_redux_letters_subjects_and_only_ok_rows(local_hub: LocalHub, monkeypatch: pytest.MonkeyPatch) -> None:
    subjects = ("anatomy", "virology")
    source = hub.HubSource("edinburgh-dawg/mmlu-redux", hub._mmlu_redux, configs=subjects)
    monkeypatch.setitem(hub.SOURCES, "mmlu_redux", source)
    for subject in subjects:
        rows = [
            {"question": f"{subject} q{i}", "choices": ["w", "x", "y", "z"], "answer": i % 4, "error_type": "ok"}
            for i in range(4)
        ]
        rows.append(
            {"question": "bad", "choices": ["a", "b", "c", "d"], "answer": 0, "error_type": "wrong_groundtruth"}
        )
        local_hub.add("edinburgh-dawg/mmlu-redux", {"test": rows}, subject)
    dataset = load("mmlu_redux")
    examples = dataset.dev + dataset.test
    assert len(examples) == 8 and (len(dataset.dev), len(dataset.test)) == (4, 4)
    for example in examples:
        subject, _, index = example.id.split("/")
        assert example.extra == {"subject": subject}
        assert example.choices == {"A": "w", "B": "x", "C": "y", "D": "z"}
        assert example.answer == "ABCD"[int(index) % 4]
    assert (
        "(2 configs)" in dataset.source
        and "pool=test shuffled dev=pool[:4][:1000] test=pool[4:][:1000]" in dataset.source
    )


def test_arc_numeric_labels_become_letters_validation_is_dev(local_hub: LocalHub) -> None:
    def row(i: int, labels: list[str]) -> dict[str, Any]:
        return {
            "id": f"arc{i}",
            "question": f"q{i}",
            "choices": {"text": ["t1", "t2", "t3", "t4"], "label": labels},
            "answerKey": labels[2],
        }

    local_hub.add(
        "allenai/ai2_arc",
        {
            "train": [row(0, ["A", "B", "C", "D"])],
            "validation": [row(1, ["1", "2", "3", "4"])],
            "test": [row(2, list("ABCD"))],
        },
        "ARC-Challenge",
    )
    dataset = load("arc_challenge")
    assert [e.id for e in dataset.dev] == ["arc1"] and [e.id for e in dataset.test] == ["arc2"]
    for example in dataset.dev + dataset.test:
        assert example.choices == {"A": "t1", "B": "t2", "C": "t3", "D": "t4"}
        assert example.answer == "C"


def test_humaneval_prompt_tests_and_entry_point(local_hub: LocalHub) -> None:
    rows = [
        {
            "task_id": f"HumanEval/{i}",
            "prompt": f"def f{i}(x):\n    '''Return x.'''\n",
            "canonical_solution": "    return x\n",
            "test": "def check(candidate):\n    assert candidate(1) == 1\n",
            "entry_point": f"f{i}",
        }
        for i in range(4)
    ]
    local_hub.add("openai/openai_humaneval", {"test": rows})
    dataset = load("humaneval")
    assert (len(dataset.dev), len(dataset.test)) == (4, 0)  # dev_count 50 of a 4-row pool
    example = next(e for e in dataset.dev if e.id == "HumanEval/2")
    assert example.question == "Complete the following code\n\ndef f2(x):\n    '''Return x.'''\n"
    assert example.extra == {"test": rows[2]["test"], "entry_point": "f2", "language": "python"}
    assert example.answer is None and example.task_type == "coding"


def test_mbpp_check_function_from_test_list(local_hub: LocalHub) -> None:
    row = {
        "task_id": 11,
        "text": "Write a python function to remove first and last occurrence of a given character.",
        "code": "def helper(s):\n    return s\n\ndef remove_Occ(s, ch):\n    return helper(s).replace(ch, '')",
        "test_list": ['assert remove_Occ("hello","l") == "heo"', 'assert remove_Occ("abcda","a") == "bcd"'],
        "test_setup_code": "",
        "challenge_test_list": [],
    }
    local_hub.add("google-research-datasets/mbpp", {s: [row] for s in ("train", "validation", "test", "prompt")})
    dataset = load("mbpp")
    assert (len(dataset.dev), len(dataset.test)) == (2, 2)
    example = dataset.test[0]
    assert example.question == (
        "You are an expert Python programmer, and here is your task: " + row["text"] + "\n"
        "Your code should pass this test case: " + row["test_list"][0]
    )
    assert example.extra["entry_point"] == "remove_Occ"
    assert example.extra["test"] == (
        "def check(candidate):\n"
        '    assert candidate("hello","l") == "heo"\n'
        '    assert candidate("abcda","a") == "bcd"\n'
    )
    namespace: dict[str, Any] = {}
    exec(compile(row["code"] + "\n" + example.extra["test"], "mbpp", "exec"), namespace)  # our own fixture code
    namespace["check"](namespace["remove_Occ"])


def test_truthfulqa_mc1_shuffled_per_row_with_seed(local_hub: LocalHub) -> None:
    rows = [
        {
            "question": f"q{i}",
            "mc1_targets": {"choices": [f"true{i}", "f1", "f2", "f3"], "labels": [1, 0, 0, 0]},
            "mc2_targets": {"choices": [f"true{i}"], "labels": [1]},
        }
        for i in range(12)
    ]
    local_hub.add("truthfulqa/truthful_qa", {"validation": rows}, "multiple_choice")
    dataset = load("truthfulqa")
    assert (len(dataset.dev), len(dataset.test)) == (12, 0)  # the first 200 of the pool are dev
    for example in dataset.dev:
        assert example.choices[example.answer] == f"true{example.question[1:]}"
        assert sorted(example.choices) == ["A", "B", "C", "D"]
    assert len({e.answer for e in dataset.dev}) > 1
    again = load("truthfulqa")
    assert [(e.id, e.choices, e.answer) for e in again.dev] == [(e.id, e.choices, e.answer) for e in dataset.dev]


@pytest.mark.parametrize("key", ["gpqa_diamond", "gpqa_main", "gpqa_extended"])
def test_gpqa_correct_plus_three_incorrect_shuffled_deterministically(local_hub: LocalHub, key: str) -> None:
    rows = [
        {
            "Question": f" Q{i}? ",
            "Correct Answer": f"right{i}",
            "Incorrect Answer 1": "w1",
            "Incorrect Answer 2": "w2",
            "Incorrect Answer 3": "w3",
            "Record ID": f"rec{i}",
        }
        for i in range(10)
    ]
    local_hub.add("Idavidrein/gpqa", {"train": rows}, key)
    first, second, other = load(key, seed=0), load(key, seed=0), load(key, seed=1)
    assert (len(first.dev), len(first.test)) == (5, 5)
    for example in first.dev + first.test:
        index = example.id[3:]
        assert example.question == f"Q{index}?"
        assert example.choices[example.answer] == f"right{index}"
        assert sorted(example.choices.values()) == sorted([f"right{index}", "w1", "w2", "w3"])
    assert len({e.answer for e in first.dev + first.test}) > 1
    assert [(e.id, e.choices) for e in first.test] == [(e.id, e.choices) for e in second.test]
    assert [(e.id, e.choices) for e in first.dev + first.test] != [(e.id, e.choices) for e in other.dev + other.test]
    assert local_hub.calls[0][:3] == ("Idavidrein/gpqa", key, "train")


def test_bbh_targets_and_task_domain(local_hub: LocalHub, monkeypatch: pytest.MonkeyPatch) -> None:
    tasks = ("hyperbaton", "object_counting")
    monkeypatch.setitem(hub.SOURCES, "bbh", hub.HubSource("lukaemon/bbh", hub._bbh, configs=tasks, revision="r"))
    local_hub.add(
        "lukaemon/bbh", {"test": [{"input": "Which order?\nOptions:\n(A) x\n(B) y", "target": "(B)"}]}, tasks[0]
    )
    local_hub.add("lukaemon/bbh", {"test": [{"input": "How many?", "target": "7"}]}, tasks[1])
    dataset = load("bbh")
    by_domain = {e.extra["domain"]: e for e in dataset.dev + dataset.test}
    assert by_domain["hyperbaton"].answer == "B" and by_domain["object_counting"].answer == "7"
    assert {call[3] for call in local_hub.calls} == {"r"}


def test_medqa_medmcqa_pubmedqa(local_hub: LocalHub) -> None:
    options = {"A": "Indomethacin", "B": "Thiazide", "C": "Aspirin", "D": "Penicillin"}
    medqa = [
        {"question": "Which drug?", "answer": "Aspirin", "options": options, "meta_info": "step1", "answer_idx": "C"}
    ]
    local_hub.add("GBaker/MedQA-USMLE-4-options", {"train": medqa, "test": medqa * 2})
    dataset = load("medqa")
    assert (len(dataset.dev), len(dataset.test)) == (1, 1)
    assert dataset.test[0].choices == options and dataset.test[0].answer == "C"

    mcq = [
        {"id": "m1", "question": "RNAi causes?", "opa": "in", "opb": "out", "opc": "down", "opd": "up", "cop": 2},
        {"id": "m2", "question": "unlabelled", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": -1},
    ]
    for row in mcq:
        row.update({"choice_type": "single", "exp": None, "subject_name": "Biochemistry", "topic_name": None})
    local_hub.add("openlifescienceai/medmcqa", {"validation": mcq})
    examples = load("medmcqa").dev + load("medmcqa").test
    assert len(examples) == 1
    assert (
        examples[0].answer == "C"
        and examples[0].choices["C"] == "down"
        and examples[0].extra == {"subject": "Biochemistry"}
    )

    pubmed = [
        {
            "pubid": 12630042,
            "question": "Does BMI matter?",
            "context": {"contexts": ["First part.", "Second part."], "labels": ["B", "M"], "meshes": ["x"]},
            "long_answer": "Maybe.",
            "final_decision": "maybe",
        }
    ]
    local_hub.add("qiaojin/PubMedQA", {"train": pubmed * 2}, "pqa_labeled")
    example = load("pubmedqa").test[0]
    assert example.question == (
        "Question: Does BMI matter?\n\nContext: First part., Second part.\n\nAnswer 'yes', 'no', or 'maybe'."
    )
    assert example.answer == "maybe" and example.extra == {"pubid": 12630042}


def test_popqa_aliases_from_json_list(local_hub: LocalHub) -> None:
    rows = [
        {
            "id": 375943,
            "subj": "Var",
            "prop": "capital",
            "obj": "Toulon",
            "question": "What is the capital of Var?",
            "possible_answers": json.dumps(["Toulon", "Port-la-Montagne"]),
            "s_pop": 3724,
            "o_pop": 11249,
        }
    ]
    local_hub.add("akariasai/PopQA", {"test": rows * 2})
    example = load("popqa").test[0]
    assert example.answer == ["Toulon", "Port-la-Montagne"] and example.task_type == "f1_match"
    assert example.extra == {"aliases": ["Toulon", "Port-la-Montagne"], "s_pop": 3724, "o_pop": 11249}


def test_alpacaeval_wildchat_coconot_theoremqa(local_hub: LocalHub) -> None:
    alpaca = [{"instruction": "Design a bike", "output": "A bike...", "generator": "gpt4", "dataset": "helpful_base"}]
    local_hub.add("tatsu-lab/alpaca_eval", {"eval": alpaca * 2}, "alpaca_eval")
    example = load("alpacaeval").test[0]
    assert (example.question, example.answer, example.extra) == ("Design a bike", "A bike...", {"generator": "gpt4"})
    assert local_hub.calls[-1][3] == "refs/convert/parquet"

    def chat(i: int, toxic: bool = False) -> dict[str, Any]:
        turns = [
            {"role": "user", "content": f"hello {i}", "language": "English"},
            {"role": "assistant", "content": "hi", "language": "English"},
            {"role": "user", "content": "second turn", "language": "English"},
        ]
        return {"conversation_hash": f"h{i}", "conversation": turns, "language": "English", "toxic": toxic, "turn": 2}

    local_hub.add("allenai/WildChat-1M", {"train": [chat(0), chat(1, toxic=True), chat(2), chat(3)]})
    wildchat = load("wildchat")
    assert sorted(e.question for e in wildchat.dev + wildchat.test) == ["hello 0", "hello 2", "hello 3"]
    assert all(e.answer is None and e.task_type == "reward_model" for e in wildchat.test)
    assert local_hub.calls[-1][4] == 20_000 and "first 20000 rows each" in wildchat.source

    coconot = [
        {
            "id": f"c{i}",
            "category": "Unsupported requests",
            "subcategory": "modality",
            "prompt": f"p{i}",
            "response": "",
        }
        for i in range(3)
    ]
    local_hub.add("allenai/coconot", {"train": coconot[:1], "test": coconot[1:]}, "original")
    dataset = load("coconot")
    assert [e.id for e in dataset.dev] == ["c0"] and sorted(e.id for e in dataset.test) == ["c1", "c2"]
    assert dataset.test[0].extra == {"category": "Unsupported requests", "subcategory": "modality"}

    theorem = [{"Question": "Does aliasing occur?", "Answer": "False", "Answer_type": "bool", "Picture": None}]
    local_hub.add("TIGER-Lab/TheoremQA", {"test": theorem * 2})
    example = load("theoremqa").test[0]
    assert (example.answer, example.extra) == ("False", {"answer_type": "bool"})


# ---- split rule, seed, errors --------------------------------------------------------------


def test_pooled_cut_is_disjoint_capped_and_seeded(local_hub: LocalHub) -> None:
    rows = [{"problem": f"p{i}", "solution": "", "answer": str(i), "unique_id": f"u{i}"} for i in range(10)]
    local_hub.add("HuggingFaceH4/MATH-500", {"test": rows})
    dataset = load("math", cap=3)
    assert (len(dataset.dev), len(dataset.test)) == (3, 3)
    assert not {e.id for e in dataset.dev} & {e.id for e in dataset.test}
    assert dataset.source == "hub:HuggingFaceH4/MATH-500 seed=0 pool=test shuffled dev=pool[:5][:3] test=pool[5:][:3]"
    assert [e.index for e in dataset.test] == [0, 1, 2]
    same, other = load("math", cap=3), load("math", seed=7, cap=3)
    assert [e.id for e in same.dev + same.test] == [e.id for e in dataset.dev + dataset.test]
    assert [e.id for e in other.dev + other.test] != [e.id for e in dataset.dev + dataset.test]
    assert other.source.startswith("hub:HuggingFaceH4/MATH-500 seed=7 ")
    full = load("math")
    assert sorted(e.id for e in full.dev + full.test) == sorted(f"u{i}" for i in range(10))


def test_missing_field_names_source_split_index_and_field(local_hub: LocalHub) -> None:
    renamed = [{"question": row["question"], "solution": row["answer"]} for row in numbered(gsm8k_row, 3)]
    local_hub.add("openai/gsm8k", {"train": numbered(gsm8k_row, 3), "test": renamed}, "main")
    with pytest.raises(MocoError) as info:
        load("gsm8k")
    assert str(info.value) == "dataset gsm8k: hub:openai/gsm8k test/0: missing field 'answer'"


def test_unusable_value_is_one_line(local_hub: LocalHub) -> None:
    bad = {"question": "q", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "E", "id": "x"}
    local_hub.add("allenai/ai2_arc", {"validation": [bad], "test": [bad]}, "ARC-Challenge")
    with pytest.raises(MocoError, match=r"^dataset arc_challenge: hub:allenai/ai2_arc validation/0: field 'answerKey'"):
        load("arc_challenge")


def test_fetch_failure_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        raise ConnectionError("Couldn't reach the Hugging Face Hub\n(offline mode)")

    monkeypatch.setattr(hub, "fetch_split", offline)
    with pytest.raises(MocoError) as info:
        load("gsm8k")
    assert str(info.value) == (
        "dataset gsm8k: could not load openai/gsm8k (main) split train from the Hugging Face hub: "
        "ConnectionError: Couldn't reach the Hugging Face Hub"
    )


def test_offline_fetch_really_fails_without_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from huggingface_hub import constants

    if not constants.HF_HUB_OFFLINE:
        pytest.skip("the real fetch is only exercised when the hub client is offline")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(MocoError, match=r"^dataset gsm8k: could not load openai/gsm8k \(main\)") as info:
        load("gsm8k")
    assert "\n" not in str(info.value)


def test_unmapped_dataset_is_a_clear_error() -> None:
    with pytest.raises(MocoError, match=r"^dataset blend: no public-source mapping; use the benchmark file$"):
        hub.load_hub(SPECS["blend"])
    with pytest.raises(MocoError, match="no public-source mapping"):
        SPECS["blend"].load_hub()


def test_datasets_is_imported_lazily() -> None:
    code = "import sys, moco_evals.hub, moco_evals.catalog, moco_evals.plugin; print('datasets' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# ---- choosing the source -------------------------------------------------------------------


def test_auto_prefers_the_benchmark_file(local_hub: LocalHub, bench_dir: Path) -> None:
    dataset = load_registered(SPECS["gsm8k"], "auto", str(bench_dir))
    assert dataset.source == str(bench_dir / "gsm8k.json") and not local_hub.calls


def test_auto_without_file_uses_the_hub(local_hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOCO_DATA_DIR", str(tmp_path / "empty"))
    local_hub.add("openai/gsm8k", {"train": numbered(gsm8k_row, 4), "test": numbered(gsm8k_row, 4)}, "main")
    dataset = load_registered(SPECS["gsm8k"], "auto", None, seed=3)
    assert dataset.source.startswith("hub:openai/gsm8k (main) seed=3 ")


def test_source_hub_ignores_the_file_and_file_never_tries_the_hub(
    local_hub: LocalHub, bench_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    local_hub.add("openai/gsm8k", {"train": numbered(gsm8k_row, 4), "test": numbered(gsm8k_row, 4)}, "main")
    assert load_registered(SPECS["gsm8k"], "hub", None).source.startswith("hub:")
    monkeypatch.delenv("MOCO_DATA_DIR", raising=False)
    with pytest.raises(MocoError, match=r"^dataset gsm8k: no data folder given; set MOCO_DATA_DIR"):
        load_registered(SPECS["gsm8k"], "file", None)
    assert len(local_hub.calls) == 2


def test_wrong_source_for_the_dataset(monkeypatch: pytest.MonkeyPatch, bench_dir: Path) -> None:
    with pytest.raises(MocoError, match=r"^dataset.source: wildchat has no benchmark file; use source 'hub'"):
        load_registered(SPECS["wildchat"], "file", str(bench_dir))
    with pytest.raises(MocoError, match=r"^dataset.source: blend has no public-source mapping; use its benchmark file"):
        load_registered(SPECS["blend"], "hub", None)
    with pytest.raises(MocoError, match=r"^dataset wildchat: no benchmark file exists"):
        SPECS["wildchat"].load(str(bench_dir))


def test_auto_hub_failure_mentions_the_missing_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def offline(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        raise OSError("offline")

    monkeypatch.setattr(hub, "fetch_split", offline)
    monkeypatch.delenv("MOCO_DATA_DIR", raising=False)
    with pytest.raises(MocoError) as info:
        load_registered(SPECS["gsm8k"], "auto", None)
    hint = "set MOCO_DATA_DIR or dataset.data_dir to the folder holding the benchmark files)"
    assert str(info.value).endswith(f"OSError: offline (and no data folder is given: {hint}")
    with pytest.raises(MocoError) as info:
        load_registered(SPECS["gsm8k"], "auto", str(tmp_path))
    assert str(info.value).endswith(f"(and {tmp_path} has no gsm8k.json: {hint}")


def test_run_config_hub_source_reaches_the_loader(local_hub: LocalHub, evals_only: None) -> None:
    local_hub.add("openai/gsm8k", {"train": numbered(gsm8k_row, 6), "test": numbered(gsm8k_row, 6)}, "main")
    base = {"method": "single_model", "models": [{"name": "a", "path": "p"}]}
    config = parse_config({**base, "dataset": {"name": "gsm8k", "source": "hub", "split_seed": 5, "limit": 2}})
    dataset, scorer = load_dataset(config.dataset, plugins.get_registry())
    assert dataset.source == "hub:openai/gsm8k (main) seed=5 dev=train shuffled[:1000] test=test shuffled[:1000]"
    assert (len(dataset.dev), len(dataset.test)) == (2, 2)
    assert dataset.test[0].prompt.startswith(dataset.test[0].question) and scorer.task_type == "exact_match"
