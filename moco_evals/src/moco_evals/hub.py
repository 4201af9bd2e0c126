"""Registered datasets from their public Hugging Face source, mapped to the benchmark schema.

The shared benchmark files are one fixed sample; the public source lets anyone rebuild a sample
without them. Each source is data: hub id, configs, which splits feed dev and test, and a row
mapper to ``question``/``choices``/``answer`` or ``input``/``output`` plus extras. ``fetch_split``
is the one function that touches the network, so tests swap it for ``datasets.load_from_disk``
on a tiny copy in the hub's own schema, and ``datasets`` is imported only inside it.

Split rule: the mapped rows of the dev splits and of the test splits are each shuffled with
``random.Random(seed)`` and capped at 1,000. A source with one usable split is pooled instead:
the shuffled pool is cut after ``dev_count`` rows (default half), the head is dev, the rest test,
each capped. ``Dataset.source`` spells the rule out so the run's metrics record it.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from moco_core.data import LETTERS, build_split
from moco_core.errors import MocoError
from moco_core.registry import DatasetSpec
from moco_core.types import Dataset
from moco_evals.latex import last_boxed
from moco_evals.quirks import normalize_items

CAP = 1000
Row = dict[str, Any]


class RowRef(NamedTuple):
    """Where a row came from; its text is the id of a row that has none of its own."""

    config: str | None
    split: str
    index: int

    def __str__(self) -> str:
        return "/".join(str(part) for part in self if part is not None)


Mapper = Callable[[Row, RowRef, random.Random], Row | None]


class _BadRow(Exception):
    """A row whose ``field`` holds a value the mapping cannot use."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"field {field!r} {problem}")


@dataclass(frozen=True)
class HubSource:
    """One public source: ``dev`` None means dev and test are cut from the pooled ``test`` splits.

    ``revision`` pins a branch (``refs/convert/parquet`` for sources still published as loading
    scripts, which ``datasets`` no longer runs); ``head`` streams only the first rows of each
    split, for sources too large to download whole.
    """

    path: str
    mapper: Mapper
    test: tuple[str, ...] = ("test",)
    dev: tuple[str, ...] | None = None
    configs: tuple[str | None, ...] = (None,)
    dev_count: int | None = None
    revision: str | None = None
    head: int | None = None

    def describe_configs(self) -> str:
        if self.configs == (None,):
            return ""
        return f" ({self.configs[0]})" if len(self.configs) == 1 else f" ({len(self.configs)} configs)"


def fetch_split(
    path: str, config: str | None, split: str, revision: str | None = None, head: int | None = None
) -> list[Row]:
    """The rows of one split of a hub dataset: the only network access in this module."""
    import datasets

    if head is not None:
        stream = datasets.load_dataset(path, config, split=split, revision=revision, streaming=True)
        return list(itertools.islice(stream, head))
    return datasets.load_dataset(path, config, split=split, revision=revision).to_list()


def _lettered(options: list[Any]) -> dict[str, str]:
    return {LETTERS[i]: str(text).strip() for i, text in enumerate(options)}


def _shuffled_options(options: list[Any], correct: int, rng: random.Random) -> tuple[dict[str, str], str]:
    """Options in a seeded per-row order, so the gold letter is not always the same one."""
    order = list(range(len(options)))
    rng.shuffle(order)
    return _lettered([options[i] for i in order]), LETTERS[order.index(correct)]


def _index_letter(value: Any, count: int, field: str) -> str:
    if isinstance(value, str) and value.strip().upper() in LETTERS[:count]:
        return value.strip().upper()
    try:
        index = int(value)
    except (TypeError, ValueError):
        raise _BadRow(field, f"is {value!r}, not an option index") from None
    if not 0 <= index < count:
        raise _BadRow(field, f"is {index}, outside the {count} options")
    return LETTERS[index]


def _gsm8k(row: Row, ref: RowRef, rng: random.Random) -> Row | None:
    solution = str(row["answer"])
    if "####" not in solution:
        raise _BadRow("answer", "has no '####' final answer")
    return {"id": str(ref), "input": row["question"], "output": solution.rsplit("####", 1)[1].strip().replace(",", "")}


def _math(row: Row, ref: RowRef, rng: random.Random) -> Row | None:
    """MATH-500 carries ``answer``; the original competition_math only the boxed solution."""
    answer = row.get("answer") or last_boxed(str(row["solution"]))
    if not answer:
        return None
    item: Row = {"id": str(row.get("unique_id") or ref), "input": row["problem"], "output": str(answer).strip()}
    item.update({key: row[key] for key in ("subject", "type", "level") if key in row})
    return item


def _mmlu_redux(row: Row, ref: RowRef, rng: random.Random) -> Row | None:
    """Only the rows the re-annotation judged correct (``error_type`` ok) are kept."""
    if row.get("error_type", "ok") != "ok":
        return None
    choices = list(row["choices"])
    answer = _index_letter(row["answer"], len(choices), "answer")
    return {
        "id": str(ref),
        "question": row["question"],
        "choices": _lettered(choices),
        "answer": answer,
        "subject": ref.config,
    }


def _arc(row: Row, ref: RowRef, rng: random.Random) -> Row | None:
    """Labels are letters or "1"-"4"; both become A, B, C... in their listed order."""
    labels = [str(label) for label in row["choices"]["label"]]
    key = str(row["answerKey"])
    if key not in labels:
        raise _BadRow("answerKey", f"is {key!r}, not one of the labels {labels}")
    choices = _lettered(list(row["choices"]["text"]))
    return {
        "id": row.get("id") or str(ref),
        "question": row["question"],
        "choices": choices,
        "answer": LETTERS[labels.index(key)],
    }


def _humaneval(row: Row, ref: RowRef, rng: random.Random) -> Row | None:
    return {
        "id": row["task_id"],
        "input": f"Complete the following code\n\n{row['prompt']}",
        "test": row["test"],
        "entry_point": row["entry_point"],
        "language": "python",
    }


def _entry_point(code: str, tests: list[str]) -> str:
    """The function the tests call: the first one ``code`` defines that a test calls."""
    called = set(re.findall(r"(\w+)\s*\(", "\n".join(tests)))
    for name in re.findall(r"^def\s+(\w+)\s*\(", code, flags=re.M):
        if name in called:
            return name
    match = re.search(r"assert\s+(?:not\s+)?\(?\s*(\w+)\s*\(", tests[0])
    if match is None:
        raise _BadRow("test_list", "calls no function")
    return match.group(1)


def _mbpp(row: Row, ref: RowRef, rng: random.Random) -> Row | None:
    """Tests become a HumanEval-style ``check(candidate)``, like the benchmark file's."""
    tests = [str(test) for test in row["test_list"]]
    if not tests:
        return None
    name = _entry_point(str(row.get("code", "")), tests)
    calls = re.compile(rf"\b{re.escape(name)}\s*\(")
    body = "\n".join(f"    {calls.sub('candidate(', test)}" for test in tests)
    setup = "\n".join([*row.get("test_imports", []), row.get("test_setup_code") or ""]).strip()
    task = row.get("text") or row["prompt"]
    return {
        "id": row.get("task_id", str(ref)),
        "input": f"You are an expert Python programmer, and here is your task: {task}\n"
        f"Your code should pass this test case: {tests[0]}",
        "test": f"{setup}\n\n\ndef check(candidate):\n{body}\n".lstrip("\n"),
        "entry_point": name,
        "language": "python",
    }


def _truthfulqa(row: Row, ref: RowRef, rng: random.Random) -> Row | None:
    """``mc1_targets`` lists the one true answer first; the options are shuffled per row."""
    targets = row["mc1_targets"]
    labels = list(targets["labels"])
    if labels.count(1) != 1:
        raise _BadRow("mc1_targets", "must mark exactly one choice correct")
    choices, answer = _shuffled_options(list(targets["choices"]), labels.index(1), rng)
    return {"id": str(ref), "question": row["question"], "choices": choices, "answer": answer}


def _gpqa(row: Row, ref: RowRef, rng: random.Random) -> Row | None:
    """The correct answer and three distractors, shuffled per row with the seed."""
    options = [row["Correct Answer"], row["Incorrect Answer 1"], row["Incorrect Answer 2"], row["Incorrect Answer 3"]]
    choices, answer = _shuffled_options(options, 0, rng)
    return {
        "id": row.get("Record ID") or str(ref),
        "question": str(row["Question"]).strip(),
        "choices": choices,
        "answer": answer,
    }


def _bbh(row: Row, ref: RowRef, rng: random.Random) -> Row | None:
    """Option targets "(B)" become "B", as in the benchmark file."""
    target = str(row["target"]).strip()
    option = re.fullmatch(r"\(([A-Z])\)", target)
    return {
        "id": str(ref),
        "input": row["input"],
        "output": option.group(1) if option else target,
        "domain": ref.config,
    }


def _medqa(row: Row, ref: RowRef, rng: random.Random) -> Row | None:
    options = row["options"]
    if isinstance(options, list):
        options = {option["key"]: option["value"] for option in options}
    choices = {str(key): str(text) for key, text in options.items()}
    answer = row.get("answer_idx") or next((k for k, text in choices.items() if text == row.get("answer")), None)
    if answer not in choices:
        raise _BadRow("answer_idx", f"is {answer!r}, not an option key")
    return {"id": str(ref), "question": row["question"], "choices": choices, "answer": answer}


def _medmcqa(row: Row, ref: RowRef, rng: random.Random) -> Row | None:
    """``cop`` is the 0-based correct option; -1 (the unlabelled test split) is dropped."""
    if row["cop"] is None or int(row["cop"]) < 0:
        return None
    options = [row["opa"], row["opb"], row["opc"], row["opd"]]
    item: Row = {"id": row.get("id") or str(ref), "question": row["question"], "choices": _lettered(options)}
    item["answer"] = _index_letter(row["cop"], len(options), "cop")
    if row.get("subject_name"):
        item["subject"] = row["subject_name"]
    return item


def _pubmedqa(row: Row, ref: RowRef, rng: random.Random) -> Row | None:
    """The prompt layout of the benchmark file: question, joined abstract contexts, the three labels."""
    contexts = ", ".join(str(text) for text in row["context"]["contexts"])
    prompt = f"Question: {row['question']}\n\nContext: {contexts}\n\nAnswer 'yes', 'no', or 'maybe'."
    return {"id": str(ref), "input": prompt, "output": row["final_decision"], "pubid": row.get("pubid")}


def _popqa(row: Row, ref: RowRef, rng: random.Random) -> Row | None:
    """``possible_answers`` is a JSON list of aliases; every alias is a gold answer."""
    aliases = row["possible_answers"]
    if isinstance(aliases, str):
        try:
            aliases = json.loads(aliases)
        except json.JSONDecodeError:
            raise _BadRow("possible_answers", "is not a JSON list") from None
    if not isinstance(aliases, list) or not aliases:
        raise _BadRow("possible_answers", "is not a non-empty list of aliases")
    aliases = [str(alias) for alias in aliases]
    item: Row = {"id": row.get("id", str(ref)), "input": row["question"], "output": aliases, "aliases": aliases}
    item.update({key: row[key] for key in ("s_pop", "o_pop") if key in row})
    return item


def _alpacaeval(row: Row, ref: RowRef, rng: random.Random) -> Row | None:
    return {"id": str(ref), "input": row["instruction"], "output": row["output"], "generator": row.get("generator")}


def _wildchat(row: Row, ref: RowRef, rng: random.Random) -> Row | None:
    """The first user turn is the prompt; toxic conversations are left out."""
    if row.get("toxic"):
        return None
    first = next((turn for turn in row["conversation"] if turn.get("role") == "user"), None)
    if first is None or not str(first.get("content", "")).strip():
        return None
    return {"id": row.get("conversation_hash") or str(ref), "input": first["content"], "language": row.get("language")}


def _coconot(row: Row, ref: RowRef, rng: random.Random) -> Row | None:
    item: Row = {"id": row.get("id") or str(ref), "input": row["prompt"], "category": row["category"]}
    if row.get("subcategory"):
        item["subcategory"] = row["subcategory"]
    return item


def _theoremqa(row: Row, ref: RowRef, rng: random.Random) -> Row | None:
    return {
        "id": row.get("id") or str(ref),
        "input": row["Question"],
        "output": str(row["Answer"]),
        "answer_type": row.get("Answer_type"),
    }


_MMLU_REDUX_SUBJECTS = (
    "anatomy", "astronomy", "business_ethics", "clinical_knowledge", "college_chemistry",
    "college_computer_science", "college_mathematics", "college_medicine", "college_physics", "conceptual_physics",
    "econometrics", "electrical_engineering", "formal_logic", "global_facts", "high_school_chemistry",
    "high_school_geography", "high_school_macroeconomics", "high_school_mathematics", "high_school_physics",
    "high_school_statistics", "high_school_us_history", "human_aging", "logical_fallacies", "machine_learning",
    "miscellaneous", "philosophy", "professional_accounting", "professional_law", "public_relations", "virology",
)  # fmt: skip
_BBH_TASKS = (
    "boolean_expressions", "causal_judgement", "date_understanding", "disambiguation_qa", "dyck_languages",
    "formal_fallacies", "geometric_shapes", "hyperbaton", "logical_deduction_five_objects",
    "logical_deduction_seven_objects", "logical_deduction_three_objects", "movie_recommendation",
    "multistep_arithmetic_two", "navigate", "object_counting", "penguins_in_a_table",
    "reasoning_about_colored_objects", "ruin_names", "salient_translation_error_detection", "snarks",
    "sports_understanding", "temporal_sequences", "tracking_shuffled_objects_five_objects",
    "tracking_shuffled_objects_seven_objects", "tracking_shuffled_objects_three_objects", "web_of_lies",
    "word_sorting",
)  # fmt: skip
_PARQUET = "refs/convert/parquet"

SOURCES: dict[str, HubSource] = {
    "gsm8k": HubSource("openai/gsm8k", _gsm8k, test=("test",), dev=("train",), configs=("main",)),
    "math": HubSource("HuggingFaceH4/MATH-500", _math),
    "mmlu_redux": HubSource("edinburgh-dawg/mmlu-redux", _mmlu_redux, configs=_MMLU_REDUX_SUBJECTS),
    "arc_challenge": HubSource("allenai/ai2_arc", _arc, dev=("validation",), configs=("ARC-Challenge",)),
    "humaneval": HubSource("openai/openai_humaneval", _humaneval, dev_count=50),
    "mbpp": HubSource("google-research-datasets/mbpp", _mbpp, test=("train", "validation", "test", "prompt")),
    "truthfulqa": HubSource(
        "truthfulqa/truthful_qa", _truthfulqa, test=("validation",), configs=("multiple_choice",), dev_count=200
    ),
    "gpqa_diamond": HubSource("Idavidrein/gpqa", _gpqa, test=("train",), configs=("gpqa_diamond",)),
    "gpqa_main": HubSource("Idavidrein/gpqa", _gpqa, test=("train",), configs=("gpqa_main",)),
    "gpqa_extended": HubSource("Idavidrein/gpqa", _gpqa, test=("train",), configs=("gpqa_extended",)),
    "bbh": HubSource("lukaemon/bbh", _bbh, configs=_BBH_TASKS, revision=_PARQUET),
    "medqa": HubSource("GBaker/MedQA-USMLE-4-options", _medqa),
    "medmcqa": HubSource("openlifescienceai/medmcqa", _medmcqa, test=("validation",)),
    "pubmedqa": HubSource("qiaojin/PubMedQA", _pubmedqa, test=("train",), configs=("pqa_labeled",)),
    "popqa": HubSource("akariasai/PopQA", _popqa),
    "alpacaeval": HubSource(
        "tatsu-lab/alpaca_eval", _alpacaeval, test=("eval",), configs=("alpaca_eval",), revision=_PARQUET
    ),
    "wildchat": HubSource("allenai/WildChat-1M", _wildchat, test=("train",), head=20_000),
    "coconot": HubSource("allenai/coconot", _coconot, dev=("train",), configs=("original",)),
    "theoremqa": HubSource("TIGER-Lab/TheoremQA", _theoremqa),
}


def _rows(key: str, source: HubSource, splits: tuple[str, ...], seed: int) -> list[Row]:
    """Mapped rows of ``splits`` across the source's configs, in source order."""
    items: list[Row] = []
    for config, split in itertools.product(source.configs, splits):
        try:
            rows = fetch_split(source.path, config, split, source.revision, source.head)
        except Exception as exc:  # network, authentication, missing config: all reported as one line
            detail = str(exc).splitlines()[0] if str(exc) else ""
            raise MocoError(
                f"dataset {key}: could not load {source.path}{f' ({config})' if config else ''} split {split} "
                f"from the Hugging Face hub: {type(exc).__name__}: {detail}"
            ) from None
        for index, row in enumerate(rows):
            ref = RowRef(config if len(source.configs) > 1 else None, split, index)
            try:
                item = source.mapper(row, ref, random.Random(f"{seed}:{ref}"))
            except KeyError as exc:
                raise MocoError(f"dataset {key}: hub:{source.path} {ref}: missing field {exc.args[0]!r}") from None
            except (_BadRow, TypeError, ValueError, AttributeError) as exc:
                raise MocoError(f"dataset {key}: hub:{source.path} {ref}: {exc}") from None
            if item is not None:
                items.append(item)
    return items


def _shuffled(items: list[Row], seed: int) -> list[Row]:
    items = list(items)
    random.Random(seed).shuffle(items)
    return items


def _head_note(source: HubSource) -> str:
    return f" (first {source.head} rows each)" if source.head else ""


def load_hub(spec: DatasetSpec, seed: int = 0, cap: int = CAP) -> Dataset:
    """The ``DatasetSpec.hub_loader`` of the built-in datasets: a seeded sample of the public source.

    Raises a one-line ``MocoError`` for a dataset without a mapping, a source that cannot be
    loaded, or a row the mapping cannot read (naming source, config, split, index and field).
    """
    source = SOURCES.get(spec.key)
    if source is None:
        raise MocoError(f"dataset {spec.key}: no public-source mapping; use the benchmark file")
    test_names = "+".join(source.test) + _head_note(source)
    label = f"hub:{source.path}{source.describe_configs()} seed={seed}"
    if source.dev is None:
        pool = _shuffled(_rows(spec.key, source, source.test, seed), seed)
        cut = len(pool) // 2 if source.dev_count is None else min(source.dev_count, len(pool))
        dev_items, test_items = pool[:cut][:cap], pool[cut:][:cap]
        rule = f"{label} pool={test_names} shuffled dev=pool[:{cut}][:{cap}] test=pool[{cut}:][:{cap}]"
    else:
        dev_items = _shuffled(_rows(spec.key, source, source.dev, seed), seed)[:cap]
        test_items = _shuffled(_rows(spec.key, source, source.test, seed), seed)[:cap]
        dev_names = "+".join(source.dev) + _head_note(source)
        rule = f"{label} dev={dev_names} shuffled[:{cap}] test={test_names} shuffled[:{cap}]"
    where = f"hub:{source.path}"
    dataset = Dataset(
        name=spec.key,
        task_type=spec.task_type,
        dev=build_split(dev_items, "dev", spec.task_type, where),
        test=build_split(test_items, "test", spec.task_type, where),
        domain=spec.domain,
        source=rule,
        group_by=spec.group_by,
    )
    return normalize_items(dataset)
