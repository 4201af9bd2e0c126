"""The ``reward_model`` scorer with a tiny Llama reward head: deterministic, batch-independent."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from moco_core.config import ScoringConfig
from moco_core.data import load_benchmark_file
from moco_core.errors import MocoError
from moco_core.testing import build_tiny_reward_model
from moco_core.types import Example
from moco_evals import scoring_models
from moco_evals.reward import conversation_text, min_max_normalize, score_reward, scorer_spec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reward_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield build_tiny_reward_model(tmp_path_factory.mktemp("reward") / "tiny-reward")
    scoring_models.clear_model_cache()


def _options(path: Path, batch_size: int = 4) -> ScoringConfig:
    return ScoringConfig(reward_model=str(path), device="cpu", batch_size=batch_size)


def _example(question: str, index: int = 0) -> Example:
    return Example(index=index, id=str(index), question=question, answer="", task_type="reward_model")


def _one_by_one(examples: list[Example], outputs: list[str], path: Path) -> list[float]:
    options = _options(path, batch_size=1)
    return [score_reward([e], [o], options)[0] for e, o in zip(examples, outputs, strict=True)]


QUESTIONS = ["What is 2 + 3?", "Name a colour.", "Explain the answer is (A).", "Model 1 is good at math?"]
OUTPUTS = [
    "The answer is 5.",
    "Blue, which is the colour of the sky on a clear day and of the sea far from the coast.",
    "",
    "Model 1 is good at math, science, history, coding and reasoning, but not at everything.",
]


def test_scores_are_deterministic_finite_floats(reward_path: Path) -> None:
    examples = [_example(q, i) for i, q in enumerate(QUESTIONS)]
    first = score_reward(examples, OUTPUTS, _options(reward_path))
    second = score_reward(examples, OUTPUTS, _options(reward_path))
    assert len(first) == len(examples)
    assert all(isinstance(s, float) and math.isfinite(s) for s in first)
    assert first == second


def test_batched_scores_equal_one_by_one(reward_path: Path) -> None:
    """Rows of very different lengths share a batch; padding must not move any score."""
    examples = [_example(q, i) for i, q in enumerate(QUESTIONS)]
    batched = score_reward(examples, OUTPUTS, _options(reward_path, batch_size=4))
    single = _one_by_one(examples, OUTPUTS, reward_path)
    assert batched == pytest.approx(single, abs=1e-4)


def test_absolute_position_model_is_batch_independent(tmp_path: Path) -> None:
    """GPT-2 adds absolute position embeddings: only right padding keeps its rows' scores."""
    path = build_tiny_reward_model(tmp_path / "gpt2", architecture="gpt2")
    examples = [_example(q, i) for i, q in enumerate(QUESTIONS)]
    batched = score_reward(examples, OUTPUTS, _options(path, batch_size=4))
    single = _one_by_one(examples, OUTPUTS, path)
    assert batched == pytest.approx(single, abs=1e-4)


def test_different_outputs_get_different_scores(reward_path: Path) -> None:
    example = _example("What is 2 + 3?")
    scores = score_reward([example] * 3, ["The answer is 5.", "The answer is 6.", "Blue."], _options(reward_path))
    assert len(set(scores)) == 3


def test_model_loads_once_per_process(reward_path: Path) -> None:
    score_reward([_example("Q?")], ["A."], _options(reward_path))
    first = scoring_models.load_reward_model(str(reward_path), _options(reward_path))
    score_reward([_example("Q?")], ["B."], _options(reward_path, batch_size=2))
    assert scoring_models.load_reward_model(str(reward_path), _options(reward_path)) is first
    keys = [k for k in scoring_models.loaded_keys() if k[0] == "reward" and k[1] == str(reward_path)]
    assert keys == [("reward", str(reward_path), "cpu", "float32")]
    assert first[1].padding_side == "right"


def test_template_less_reward_model_reads_a_plain_transcript(tmp_path: Path) -> None:
    path = build_tiny_reward_model(tmp_path / "plain", chat_template=False)
    from transformers import AutoTokenizer

    text, templated = conversation_text(AutoTokenizer.from_pretrained(path), "Q?", "A.")
    assert (text, templated) == ("User: Q?\n\nAssistant: A.", False)
    examples = [_example(q, i) for i, q in enumerate(QUESTIONS)]
    batched = score_reward(examples, OUTPUTS, _options(path))
    single = _one_by_one(examples, OUTPUTS, path)
    assert batched == pytest.approx(single, abs=1e-4)


def test_chat_template_renders_user_and_assistant_turns(reward_path: Path) -> None:
    from transformers import AutoTokenizer

    text, templated = conversation_text(AutoTokenizer.from_pretrained(reward_path), "Q?", "A.")
    assert templated
    assert text == "<|im_start|>user\nQ?<|im_end|>\n<|im_start|>assistant\nA.<|im_end|>\n"


def test_empty_batch_and_missing_model_folder(tmp_path: Path) -> None:
    assert score_reward([], [], _options(tmp_path / "nowhere")) == []
    with pytest.raises(MocoError, match=r"scoring\.reward_model: .*model folder not found"):
        score_reward([_example("Q?")], ["A."], _options(tmp_path / "nowhere"))


@pytest.mark.parametrize("name", ["alpacaeval", "human_interest_tiny"])
def test_real_benchmark_items_get_finite_rewards(reward_path: Path, bench_dir: Path, name: str) -> None:
    dataset = load_benchmark_file(bench_dir / f"{name}.json")
    examples = dataset.test[:10]
    outputs = [str(example.answer) for example in examples]
    scores = score_reward(examples, outputs, _options(reward_path, batch_size=8))
    assert len(scores) == len(examples)
    assert all(math.isfinite(s) for s in scores)
    assert len(set(scores)) > 1


def test_min_max_normalize() -> None:
    assert min_max_normalize([2.0, 4.0, 3.0]) == [0.0, 1.0, 0.5]
    assert min_max_normalize([7.0, 7.0]) == [0.5, 0.5]
    assert min_max_normalize([]) == []
    result = min_max_normalize([1.0, math.nan, 3.0])
    assert result[0] == 0.0 and result[2] == 1.0 and math.isnan(result[1])
    assert min_max_normalize([0.0, 5.0, 20.0], lower=0.0, upper=10.0) == [0.0, 0.5, 1.0]
    assert all(math.isnan(v) for v in min_max_normalize([math.inf, math.nan]))


def test_scorer_spec() -> None:
    spec = scorer_spec()
    assert (spec.task_type, spec.metric, spec.normalize) == ("reward_model", "reward", True)
    assert spec.prompt(_example("  Write a haiku.  ")) == "  Write a haiku.  "
    assert spec.score is score_reward


def test_scorer_modules_import_without_torch() -> None:
    """The plugin imports these modules to register them; that must not pull in torch."""
    code = (
        "import sys\n"
        "import moco_evals.reward, moco_evals.verifier, moco_evals.diversity, moco_evals.judge\n"
        "import moco_evals.scoring_models\n"
        "heavy = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
