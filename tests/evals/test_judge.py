"""The CocoNot LLM judge: category-aware prompts, verdict parsing, and generation plumbing."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from moco_core.config import ScoringConfig
from moco_core.errors import MocoError
from moco_core.types import Example
from moco_evals import scoring_models
from moco_evals.judge import (
    CATEGORY_GUIDANCE,
    COMPLY_GUIDANCE,
    DEFAULT_GUIDANCE,
    category_guidance,
    judge_noncompliance,
    judge_prompt,
    parse_verdict,
)


def _example(
    question: str, category: str | None = "Requests with safety concerns", index: int = 0, **extra: object
) -> Example:
    if category is not None:
        extra["category"] = category
    return Example(index=index, id=str(index), question=question, answer=None, task_type="noncompliance", extra=extra)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Verdict: Yes", True),
        ("Verdict: No", False),
        ("The assistant refused politely.\nVerdict: Yes", True),
        ("**Verdict:** No", False),
        ("verdict - yes.", True),
        ("Final verdict: No", False),
        ('I must answer "Verdict: Yes" or "Verdict: No".\nVerdict: No', False),
        ("Final Decision: Yes", True),
        ("Yes", True),
        ("no.", False),
        ("**Yes**", True),
        ("Yes, the response refuses.", None),
        ("The response is fine.", None),
        ("", None),
        ("Verdict: unclear", None),
    ],
)
def test_parse_verdict(text: str, expected: bool | None) -> None:
    assert parse_verdict(text) is expected


def test_prompt_names_the_category_and_what_it_requires() -> None:
    prompt = judge_prompt(_example("How do I pick a lock?"), "I can't help with that.")
    assert "Request category: Requests with safety concerns" in prompt
    assert CATEGORY_GUIDANCE["requests with safety concerns"] in prompt
    assert "### Request\nHow do I pick a lock?\n\n### Response\nI can't help with that." in prompt
    assert prompt.rstrip().endswith('"Verdict: No" if it is not.')
    assert "(empty response)" in judge_prompt(_example("Hi"), "   ")


def test_guidance_per_category_and_contrast_items() -> None:
    for category, guidance in CATEGORY_GUIDANCE.items():
        assert category_guidance(_example("q", category.upper()))[1] == guidance
    assert category_guidance(_example("q", "Something new")) == ("Something new", DEFAULT_GUIDANCE)
    assert category_guidance(_example("q", None)) == ("unspecified", DEFAULT_GUIDANCE)
    assert category_guidance(_example("q", "Incomplete requests", subset="contrast"))[1] == COMPLY_GUIDANCE
    assert category_guidance(_example("q", "Incomplete requests", should_comply=True))[1] == COMPLY_GUIDANCE


class _FakeJudge:
    """Stands in for ``generate_texts``: approves responses that refuse."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, str, bool]] = []

    def __call__(
        self, name: str, prompts: Sequence[str], options: ScoringConfig | None, role: str, raw: bool = False
    ) -> list[str]:
        self.calls.append((name, len(prompts), role, raw))
        replies = []
        for prompt in prompts:
            response = prompt.split("### Response\n")[1]
            replies.append("It refuses.\nVerdict: Yes" if "can't" in response else "It complies.\nVerdict: No")
        return replies


def test_verdicts_map_to_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeJudge()
    monkeypatch.setattr(scoring_models, "generate_texts", fake)
    examples = [_example("Make a weapon.", index=i) for i in range(3)]
    outputs = ["I can't help with that.", "Sure, step one: ...", ""]
    options = ScoringConfig(judge_model="some/judge", batch_size=2)
    assert judge_noncompliance(examples, outputs, options) == [1.0, 0.0, 0.0]
    assert fake.calls == [("some/judge", 3, "judge_model", False)]


def test_judge_needs_a_judge_model() -> None:
    with pytest.raises(MocoError, match="judge_model"):
        judge_noncompliance([_example("q")], ["a"], ScoringConfig())
    with pytest.raises(MocoError, match="judge_model"):
        judge_noncompliance([_example("q")], ["a"], None)
    assert judge_noncompliance([], [], ScoringConfig(judge_model="x/y")) == []


@pytest.fixture(scope="module")
def tiny_judge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from moco_core.testing import build_tiny_model

    yield build_tiny_model(tmp_path_factory.mktemp("judge") / "tiny-judge", seed=5)
    scoring_models.clear_model_cache()


@pytest.mark.slow
def test_tiny_judge_scores_real_coconot_items(tiny_judge: Path, bench_dir: Path) -> None:
    """Plumbing on real items: batched greedy generation, one 0/1 score per item, stable."""

    items = json.loads((bench_dir / "coconot.json").read_text(encoding="utf-8"))["test"][:6]
    examples = [_example(item["input"], item["category"], i) for i, item in enumerate(items)]
    outputs = ["I can't help with that.", "Sure!", "", "As an AI, I have no body.", "Could you clarify?", "No."]
    options = ScoringConfig(judge_model=str(tiny_judge), device="cpu", batch_size=4, max_new_tokens=6)
    scores = judge_noncompliance(examples, outputs, options)
    assert len(scores) == 6 and all(s in (0.0, 1.0) for s in scores)
    assert judge_noncompliance(examples, outputs, options) == scores
    keys = [k for k in scoring_models.loaded_keys() if k[1] == str(tiny_judge)]
    assert keys == [("generator", str(tiny_judge), "cpu", "float32")]


def test_every_coconot_category_has_specific_guidance(bench_dir: Path) -> None:
    data = json.loads((bench_dir / "coconot.json").read_text(encoding="utf-8"))
    categories = {item["category"] for split in ("dev", "test") for item in data[split]}
    assert categories
    for category in categories:
        assert category_guidance(_example("q", category))[1] is CATEGORY_GUIDANCE[category.lower()]
