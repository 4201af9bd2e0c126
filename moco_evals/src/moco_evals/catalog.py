"""The datasets this plugin registers: light specs, loaded only when a run asks for one."""

from __future__ import annotations

from moco_core.registry import DatasetSpec

_LOADER = "moco_evals.benchmarks:load_benchmark"

# key, task type, domain, (dev, test) sizes, summary
_BENCHMARKS: tuple[tuple[str, str, str, tuple[int, int], str], ...] = (
    ("gsm8k", "exact_match", "math", (200, 1000), "grade-school maths word problems, numeric answers"),
    ("mmlu_redux", "multiple_choice", "qa", (1000, 1000), "MMLU-Redux: re-annotated MMLU, 57 subjects, 4 options"),
    ("agieval_tiny", "multiple_choice", "qa", (40, 40), "small AGIEval sample for smoke runs"),
)


def dataset_specs() -> list[DatasetSpec]:
    """Fresh specs (registration stamps each with its distribution)."""
    return [
        DatasetSpec(
            key=key,
            task_type=task_type,
            loader=_LOADER,
            domain=domain,
            source=f"benchmark file {key}.json",
            summary=summary,
            sizes=sizes,
        )
        for key, task_type, domain, sizes, summary in _BENCHMARKS
    ]
