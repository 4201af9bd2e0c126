"""The ``general_verifier`` scorer: prompt format, decision parsing, and generation plumbing."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from moco_core.config import ScoringConfig
from moco_core.errors import MocoError
from moco_core.types import Example
from moco_evals import scoring_models
from moco_evals.verifier import (
    extract_verifier_answer,
    gold_text,
    parse_final_decision,
    score_verifier,
    scorer_spec,
    student_answer,
    verifier_prompt,
)


def _example(question: str, answer: object, index: int = 0) -> Example:
    return Example(index=index, id=str(index), question=question, answer=answer, task_type="general_verifier")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Final Decision: Yes", True),
        ("Final Decision: No", False),
        ("final decision: yes", True),
        ("FINAL DECISION:YES", True),
        ("The student's answer matches.\n\nFinal Decision: Yes", True),
        ("**Final Decision:** Yes", True),
        ("**Final Decision: No**", False),
        ('Final Decision: "Yes"', True),
        ("Final Decision - Yes.", True),
        ("Final Decision: \\boxed{Yes}", True),
        ("Final   Decision :  No", False),
        ("Final\nDecision: Yes", True),
        ('I should output "Final Decision: Yes" or "Final Decision: No". Final Decision: No', False),
        ("Final Decision: No ... wait, Final Decision: Yes", True),
        ("Yes", None),
        ("The answers are equivalent.", None),
        ("", None),
        ("Final Decision: Yesterday", None),
        ("Final Decision: Nope", None),
        ("Final Decision: Maybe", None),
        ("Final Decision:", None),
    ],
)
def test_parse_final_decision(text: str, expected: bool | None) -> None:
    assert parse_final_decision(text) is expected


def test_prompt_follows_the_general_verifier_format() -> None:
    prompt = verifier_prompt("  What is 1+1?  ", "2", "It is 2.")
    assert prompt.startswith("User: ### Question: What is 1+1?\n\n### Ground Truth Answer: 2\n\n")
    assert "### Student Answer: It is 2.\n\n" in prompt
    assert 'output "Final Decision: Yes". If the student\'s answer is incorrect, output "Final Decision: No".' in prompt
    assert prompt.endswith(" Assistant:")


def test_student_answer_and_gold_text() -> None:
    example = _example("Q?", "2")
    assert student_answer(example, "so we get \\boxed{\\frac{1}{2}}.") == "\\frac{1}{2}"
    assert student_answer(example, "  The answer is 4.  ") == "The answer is 4."
    assert len(student_answer(example, "x" * 10_000)) == 4000
    assert extract_verifier_answer(example, "reasoning\n\nThe answer is 4.\n") == "The answer is 4."
    assert extract_verifier_answer(example, "  ") is None
    assert gold_text(["2", "two", ""]) == "2 or two"
    assert gold_text(None) is None
    assert gold_text("  ") is None
    assert gold_text(3.5) == "3.5"


class _FakeVerifier:
    """Stands in for ``generate_texts``: records its calls and answers from a rule."""

    def __init__(self, answer: str | None = None) -> None:
        self.calls: list[tuple[str, list[str], bool]] = []
        self.answer = answer

    def __call__(
        self, name: str, prompts: Sequence[str], options: ScoringConfig | None, role: str, raw: bool = False
    ) -> list[str]:
        self.calls.append((name, list(prompts), raw))
        if self.answer is not None:
            return [self.answer] * len(prompts)
        # accept exactly the prompts whose student answer equals the ground truth
        texts = []
        for prompt in prompts:
            gold = prompt.split("### Ground Truth Answer: ")[1].split("\n\n")[0]
            answer = prompt.split("### Student Answer: ")[1].split("\n\n")[0]
            texts.append("Equivalent.\nFinal Decision: Yes" if gold == answer else "Final Decision: No")
        return texts


def test_decisions_map_to_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeVerifier()
    monkeypatch.setattr(scoring_models, "generate_texts", fake)
    examples = [_example("1+1?", "2", 0), _example("2+2?", "4", 1), _example("3+3?", None, 2), _example("x?", "y", 3)]
    outputs = ["\\boxed{2}", "5", "6", ""]
    options = ScoringConfig(verifier_model="some/verifier", batch_size=2)
    assert score_verifier(examples, outputs, options) == [1.0, 0.0, 0.0, 0.0]
    # items without a gold or without an answer are never sent to the verifier
    ((name, prompts, raw),) = fake.calls
    assert name == "some/verifier" and raw is True and len(prompts) == 2


def test_unparseable_verifier_reply_scores_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scoring_models, "generate_texts", _FakeVerifier("I think they match."))
    assert score_verifier([_example("Q?", "1")], ["1"], None) == [0.0]
    assert score_verifier([], [], None) == []


def test_scorer_spec() -> None:
    spec = scorer_spec()
    assert (spec.task_type, spec.metric, spec.normalize) == ("general_verifier", "accuracy", False)
    assert spec.prompt(_example("Raw question?", "a")) == "Raw question?"
    assert spec.extract is extract_verifier_answer


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from moco_core.testing import build_tiny_model

    yield build_tiny_model(tmp_path_factory.mktemp("verifier") / "tiny-verifier", seed=3)
    scoring_models.clear_model_cache()


@pytest.mark.slow
def test_tiny_verifier_runs_batched_raw_generation(tiny_lm: Path) -> None:
    examples = [_example(f"What is {i} + {i}?", str(2 * i), i) for i in range(5)]
    outputs = ["The answer is (A).", "\\boxed{2}", "4", "Model 1 is good at math.", "10"]
    options = ScoringConfig(verifier_model=str(tiny_lm), device="cpu", batch_size=2, max_new_tokens=6)
    scores = score_verifier(examples, outputs, options)
    assert len(scores) == 5 and all(s in (0.0, 1.0) for s in scores)
    assert score_verifier(examples, outputs, options) == scores
    handle = scoring_models.load_generator(str(tiny_lm), options, "verifier_model")
    assert handle.tokenizer.chat_template, "raw prompting must restore the chat template"
    texts = scoring_models.generate_texts(str(tiny_lm), ["User: hi Assistant:"] * 3, options, "verifier_model", True)
    assert len(texts) == 3 and len(set(texts)) == 1


@pytest.mark.slow
def test_raw_prompts_bypass_the_chat_template(tiny_lm: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from moco_core.backends.hf import HFBackend

    seen: list[list[str]] = []
    original = HFBackend._generate_batch

    def spy(self, handle, requests, texts, settings):  # type: ignore[no-untyped-def]
        seen.append(list(texts))
        return original(self, handle, requests, texts, settings)

    monkeypatch.setattr(HFBackend, "_generate_batch", spy)
    options = ScoringConfig(device="cpu", batch_size=4, max_new_tokens=2)
    scoring_models.generate_texts(str(tiny_lm), ["User: q Assistant:"], options, "verifier_model", raw=True)
    scoring_models.generate_texts(str(tiny_lm), ["q"], options, "judge_model")
    assert seen[0] == ["User: q Assistant:"]  # this tokenizer adds no BOS of its own
    assert seen[1] == ["<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n"]


class _BosTokenizer:
    bos_token, bos_token_id = "<s>", 1

    def __call__(self, text: str) -> dict[str, list[int]]:
        return {"input_ids": [1, 7]}


def test_raw_prompts_keep_a_bos_the_tokenizer_would_add(tiny_lm: Path) -> None:
    """The backend tokenizes without special tokens; a raw prompt must not lose its BOS."""
    assert scoring_models._adds_bos(_BosTokenizer())
    from transformers import AutoTokenizer

    assert not scoring_models._adds_bos(AutoTokenizer.from_pretrained(tiny_lm))


def test_missing_verifier_folder_is_one_line(tmp_path: Path) -> None:
    options = ScoringConfig(verifier_model=str(tmp_path / "absent"), device="cpu")
    with pytest.raises(MocoError, match=r"scoring\.verifier_model: .*model folder not found"):
        score_verifier([_example("Q?", "1")], ["1"], options)
