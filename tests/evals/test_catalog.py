"""The catalog against the spec (DATASETS.md) and the shared benchmark files it describes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from moco_core.cli import app
from moco_evals.catalog import dataset_specs
from moco_evals.hub import SOURCES

SPECS = {spec.key: spec for spec in dataset_specs()}
SPEC_FILE = Path(__file__).resolve().parents[2].parent / "shared" / "spec" / "DATASETS.md"

DOMAINS = {
    "qa": {"agieval", "agieval_tiny", "arc_challenge", "mmlu_redux", "gpqa_diamond", "gpqa_main", "gpqa_extended"},
    "math": {"gsm8k", "math"},
    "reasoning": {"bbh", "tablemwp_free_text", "tablemwp_multiple_choice", "theoremqa"},
    "knowledge": {"wikidyk", "popqa"},
    "culture": {"blend", "culturebench", "culturalbench_hard", "kaleidoscope"},
    "science": {"sciencemeter", "sciriff"},
    "safety": {"truthfulqa", "coconot"},
    "code": {"humaneval", "mbpp"},
    "medical": {"medqa", "medmcqa", "pubmedqa"},
    "instruction_following": {"alpacaeval", "human_interest", "human_interest_tiny", "wildchat"},
    "diversity": {"infinite_chat_diversity"},
}
HUB_MAPPED = {
    "gsm8k", "math", "mmlu_redux", "arc_challenge", "humaneval", "mbpp", "truthfulqa", "gpqa_diamond", "gpqa_main",
    "gpqa_extended", "bbh", "medqa", "medmcqa", "pubmedqa", "popqa", "alpacaeval", "wildchat", "coconot", "theoremqa",
}  # fmt: skip


@pytest.fixture(scope="module")
def spec_text() -> str:
    if not SPEC_FILE.is_file():
        pytest.skip(f"{SPEC_FILE} not found")
    return SPEC_FILE.read_text(encoding="utf-8")


def files(bench_dir: Path) -> dict[str, dict]:
    return {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in sorted(bench_dir.glob("*.json"))}


def test_every_key_of_the_spec_is_registered(spec_text: str) -> None:
    section = spec_text.split("## Built-in datasets", 1)[1].split("Public sources", 1)[0]
    assert set(re.findall(r"`([a-z0-9_]+)`", section)) == set(SPECS)


def test_every_shared_file_is_registered_with_its_task_type_and_sizes(bench_dir: Path) -> None:
    documents = files(bench_dir)
    assert set(documents) == {key for key, spec in SPECS.items() if spec.loader}
    for key, data in documents.items():
        spec = SPECS[key]
        assert spec.task_type == data["task_type"], key
        assert spec.sizes == (len(data["dev"]), len(data["test"])), key
        assert spec.benchmark_file(bench_dir) == bench_dir / f"{key}.json"
        assert spec.loader == "moco_evals.benchmarks:load_benchmark"


def test_domains_follow_the_spec_grouping() -> None:
    assert {key: spec.domain for key, spec in SPECS.items()} == {
        key: domain for domain, keys in DOMAINS.items() for key in keys
    }


def test_task_types_named_in_the_brief() -> None:
    expected = {
        "popqa": "f1_match",
        "wikidyk": "f1_match",
        "coconot": "noncompliance",
        "alpacaeval": "reward_model",
        "human_interest": "reward_model",
        "human_interest_tiny": "reward_model",
        "wildchat": "reward_model",
        "humaneval": "coding",
        "mbpp": "coding",
        "infinite_chat_diversity": "generation_diversity",
        "culturebench": "exact_match",
    }
    assert {key: SPECS[key].task_type for key in expected} == expected


def test_grouping_only_for_culturebench() -> None:
    assert {key: spec.group_by for key, spec in SPECS.items() if spec.group_by} == {"culturebench": "question_id"}


def test_wildchat_has_no_file_only_the_hub() -> None:
    spec = SPECS["wildchat"]
    assert (spec.loader, spec.sizes, spec.hub) == ("", None, "allenai/WildChat-1M")
    assert spec.source == "hub allenai/WildChat-1M"


def test_hub_sources_are_the_public_sources_of_the_spec(spec_text: str) -> None:
    public = spec_text.split("Public sources", 1)[1]
    assert {key for key, spec in SPECS.items() if spec.hub_loader} == HUB_MAPPED == set(SOURCES)
    for key in HUB_MAPPED:
        spec = SPECS[key]
        assert spec.hub_loader == "moco_evals.hub:load_hub"
        assert spec.hub == SOURCES[key].path and f"`{spec.hub}`" in public, key
        assert spec.hub in spec.source
    for key in set(SPECS) - HUB_MAPPED:
        assert SPECS[key].hub is None and SPECS[key].hub_loader is None


def test_every_spec_is_described() -> None:
    for key, spec in SPECS.items():
        assert spec.summary and spec.source, key
        assert spec.source.startswith(f"file {key}.json") == bool(spec.loader), key


def test_list_datasets_shows_every_key(evals_only: None) -> None:
    result = CliRunner().invoke(app, ["list-datasets"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.output.splitlines()[2:] if line.strip()}
    assert set(SPECS) <= set(rows)
    gsm8k = rows["gsm8k"]
    assert gsm8k[1:4] == ["exact_match", "math", "200/1000"] and "openai/gsm8k" in gsm8k
    assert rows["wildchat"][1:3] == ["reward_model", "instruction_following"]
    assert "allenai/WildChat-1M" in rows["wildchat"]
    assert rows["culturebench"][3] == "2454/2454"
