"""The datasets this plugin registers: light specs, loaded only when a run asks for one.

Sizes are the dev/test lengths of the shared benchmark files (``<data dir>/<key>.json``), so
``moco list-datasets`` shows them without reading a file. A dataset with a public-source mapping
in ``moco_evals.hub`` can also be loaded from the Hugging Face hub; ``wildchat`` has no file.
"""

from __future__ import annotations

from moco_core.registry import DatasetSpec
from moco_evals.hub import SOURCES

_FILE_LOADER = "moco_evals.benchmarks:load_benchmark"
_HUB_LOADER = "moco_evals.hub:load_hub"

# key: task type, domain, (dev, test) sizes of the benchmark file (None: no file), summary
_DATASETS: dict[str, tuple[str, str, tuple[int, int] | None, str]] = {
    "agieval": ("multiple_choice", "qa", (1156, 1156), "AGIEval: human exam questions (SAT, LSAT, Gaokao, ...)"),
    "agieval_tiny": ("multiple_choice", "qa", (40, 40), "small AGIEval sample for smoke runs"),
    "arc_challenge": ("multiple_choice", "qa", (299, 1172), "ARC-Challenge: grade-school science questions"),
    "mmlu_redux": ("multiple_choice", "qa", (1000, 1000), "MMLU-Redux: re-annotated MMLU subjects, 4 options"),
    "gpqa_diamond": ("multiple_choice", "qa", (99, 99), "GPQA diamond: graduate-level science, hardest subset"),
    "gpqa_main": ("multiple_choice", "qa", (224, 224), "GPQA main: graduate-level science questions"),
    "gpqa_extended": ("multiple_choice", "qa", (273, 273), "GPQA extended: graduate-level science questions"),
    "gsm8k": ("exact_match", "math", (200, 1000), "grade-school maths word problems, numeric answers"),
    "math": ("exact_match", "math", (956, 956), "MATH: competition mathematics, LaTeX answers"),
    "bbh": ("exact_match", "reasoning", (1000, 1000), "BIG-Bench Hard: 27 hard reasoning tasks"),
    "tablemwp_free_text": ("exact_match", "reasoning", (375, 376), "TabMWP: maths over tables, free-text answers"),
    "tablemwp_multiple_choice": ("multiple_choice", "reasoning", (124, 125), "TabMWP: maths over tables, options"),
    "theoremqa": ("exact_match", "reasoning", (400, 400), "TheoremQA: theorem-driven science and maths questions"),
    "wikidyk": ("f1_match", "knowledge", (1000, 765), "WikiDYK: recent Wikipedia 'Did you know' facts"),
    "popqa": ("f1_match", "knowledge", (1000, 1000), "PopQA: entity questions, long-tail popularity, aliases"),
    "blend": ("multiple_choice", "culture", (1000, 1000), "BLEnD: everyday cultural knowledge across countries"),
    "culturebench": ("exact_match", "culture", (2454, 2454), "CultureBench: true/false per option, grouped"),
    "culturalbench_hard": ("multiple_choice", "culture", (613, 613), "CulturalBench hard: cultural knowledge"),
    "kaleidoscope": ("multiple_choice", "culture", (1000, 1000), "Kaleidoscope: values, rights and duties"),
    "sciencemeter": ("multiple_choice", "science", (1000, 1000), "ScienceMeter: claims supported or refuted"),
    "sciriff": ("exact_match", "science", (114, 139), "SciRIFF: scientific literature understanding tasks"),
    "truthfulqa": ("multiple_choice", "safety", (200, 617), "TruthfulQA: questions that invite false beliefs"),
    "coconot": ("noncompliance", "safety", (1000, 1000), "CoCoNot: requests a model should not comply with"),
    "humaneval": ("coding", "code", (50, 114), "HumanEval: Python function completion with tests"),
    "mbpp": ("coding", "code", (487, 487), "MBPP: basic Python programming problems with tests"),
    "medqa": ("multiple_choice", "medical", (636, 637), "MedQA: USMLE-style questions, 4 options"),
    "medmcqa": ("multiple_choice", "medical", (2091, 2092), "MedMCQA: Indian medical entrance exam questions"),
    "pubmedqa": ("exact_match", "medical", (500, 500), "PubMedQA: yes/no/maybe over PubMed abstracts"),
    "alpacaeval": ("reward_model", "instruction_following", (2000, 1000), "AlpacaEval instructions"),
    "human_interest": ("reward_model", "instruction_following", (400, 400), "open questions of human interest"),
    "human_interest_tiny": ("reward_model", "instruction_following", (58, 112), "small human_interest sample"),
    "wildchat": ("reward_model", "instruction_following", None, "WildChat: first user turns of real chats"),
    "infinite_chat_diversity": ("generation_diversity", "diversity", (26, 25), "open prompts, reference answers"),
}
_GROUP_BY = {"culturebench": "question_id"}
_ORIGIN = {"agieval": "AGIEval per-subject JSONL", "agieval_tiny": "AGIEval per-subject JSONL"}


def _source(key: str, has_file: bool) -> str:
    parts = [f"file {key}.json"] if has_file else []
    if key in SOURCES:
        parts.append(f"hub {SOURCES[key].path}")
    elif key in _ORIGIN:
        parts.append(f"from {_ORIGIN[key]}")
    return "; ".join(parts)


def dataset_specs() -> list[DatasetSpec]:
    """Fresh specs (registration stamps each with its distribution)."""
    return [
        DatasetSpec(
            key=key,
            task_type=task_type,
            loader=_FILE_LOADER if sizes is not None else "",
            domain=domain,
            source=_source(key, sizes is not None),
            summary=summary,
            sizes=sizes,
            group_by=_GROUP_BY.get(key),
            hub=SOURCES[key].path if key in SOURCES else None,
            hub_loader=_HUB_LOADER if key in SOURCES else None,
        )
        for key, (task_type, domain, sizes, summary) in _DATASETS.items()
    ]
