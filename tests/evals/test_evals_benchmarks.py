"""The registered datasets against the real benchmark files, and the file loader's errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from moco_core.data import load_benchmark_file
from moco_core.errors import MocoError
from moco_core.types import Dataset, Example
from moco_evals.benchmarks import load_benchmark
from moco_evals.catalog import dataset_specs
from moco_evals.exact_match import score_exact_match
from moco_evals.normalize import parse_number
from moco_evals.prompts import exact_match_prompt
from moco_evals.quirks import count_unscorable

SPECS = {spec.key: spec for spec in dataset_specs()}


def load(key: str, bench_dir: Path) -> Dataset:
    return load_benchmark(SPECS[key], str(bench_dir))


def items(dataset: Dataset) -> list[Example]:
    return dataset.test + dataset.dev


FILE_SPECS = sorted(key for key, spec in SPECS.items() if spec.loader)


@pytest.mark.parametrize("key", FILE_SPECS)
def test_specs_match_the_files(key: str, bench_dir: Path) -> None:
    spec = SPECS[key]
    dataset = load(key, bench_dir)
    assert (dataset.name, dataset.task_type, dataset.domain) == (key, spec.task_type, spec.domain)
    assert (len(dataset.dev), len(dataset.test)) == spec.sizes
    assert dataset.source == str(bench_dir / f"{key}.json")
    assert spec.loader == "moco_evals.benchmarks:load_benchmark"
    assert load_benchmark_file(bench_dir / f"{key}.json").task_type == spec.task_type


def test_every_shared_file_is_registered(bench_dir: Path) -> None:
    assert {path.stem for path in bench_dir.glob("*.json")} <= set(FILE_SPECS)


def test_loader_repairs_quirks(bench_dir: Path) -> None:
    popqa = load("popqa", bench_dir)
    assert popqa.test[0].answer == ["Toulon", "Port-la-Montagne", "Tolon"]
    culture = load("culturebench", bench_dir)
    assert culture.name == "culturebench"  # the file calls itself culturebench_hard
    tablemwp = load("tablemwp_multiple_choice", bench_dir)
    with_id = [ex for ex in tablemwp.dev + tablemwp.test if ex.choices and "id" in ex.choices]
    assert with_id and all(list(ex.choices or {}) == ["A", "B", "C", "id"] for ex in with_id)
    assert sum(count_unscorable(load("math", bench_dir)).values()) == 12


def test_gsm8k_gold_scores_one_and_gold_plus_one_zero(bench_dir: Path) -> None:
    examples = items(load("gsm8k", bench_dir))
    assert len(examples) == 1200
    for ex in examples:
        gold = str(ex.answer)
        value = parse_number(gold)
        assert value is not None and value.denominator == 1, ex.key
        plain, off = str(value.numerator), f"{value.numerator + 1:,}"
        right = [
            f"Each ride costs money; adding it up, so the answer is \\boxed{{{gold}}}.",
            f"Each ride costs money; adding it up, so the answer is \\boxed{{{plain}}}.",
            f"Step 1: 3 + 4 = 7.\nStep 2: 7 * 2 = 14.\nThe answer is {gold}.",
            f"We get ${plain}.00 in total.\nFinal answer: ${gold}",
            f"First guess \\boxed{{{off}}}, but corrected: \\boxed{{{gold}}}",
            f"Working: 2 * 3 = 6\n#### {plain}",
        ]
        wrong = [
            f"Each ride costs money; adding it up, so the answer is \\boxed{{{off}}}.",
            f"The answer is {value.numerator + 1}.",
            f"First guess \\boxed{{{gold}}}, but corrected: \\boxed{{{off}}}",
        ]
        scores = score_exact_match([ex] * (len(right) + len(wrong)), right + wrong)
        assert scores == [1.0] * len(right) + [0.0] * len(wrong), (ex.key, scores)


def test_gsm8k_prompt(bench_dir: Path) -> None:
    ex = load("gsm8k", bench_dir).test[0]
    assert exact_match_prompt(ex) == f"{ex.question.strip()}\n\nPut your final answer in \\boxed{{}}."


def test_data_dir_from_environment(bench_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOCO_DATA_DIR", str(bench_dir))
    dataset = SPECS["agieval_tiny"].load()
    assert dataset.name == "agieval_tiny"
    assert len(dataset.test) == 40


def test_data_dir_argument_beats_environment(bench_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOCO_DATA_DIR", str(tmp_path))
    assert SPECS["agieval_tiny"].load(str(bench_dir)).name == "agieval_tiny"


def test_no_data_dir_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOCO_DATA_DIR", raising=False)
    with pytest.raises(MocoError, match=r"^dataset gsm8k: .*set MOCO_DATA_DIR") as info:
        SPECS["gsm8k"].load()
    assert "\n" not in str(info.value)


def test_missing_file_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOCO_DATA_DIR", str(tmp_path))
    with pytest.raises(MocoError) as info:
        SPECS["gsm8k"].load()
    message = str(info.value)
    assert message == (
        f"dataset gsm8k: benchmark file gsm8k.json not found in {tmp_path}; "
        "set MOCO_DATA_DIR to the folder holding the benchmark files"
    )


def test_malformed_file_is_a_moco_error(tmp_path: Path) -> None:
    (tmp_path / "gsm8k.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(MocoError, match="malformed JSON"):
        SPECS["gsm8k"].load(str(tmp_path))
