from __future__ import annotations

import random

from moco_core.testing import first_letter
from moco_core.types import Example
from moco_methods_text.multiagent_finetuning import build_data, mix

EXAMPLE = Example(0, "q", "question", "A", "letter", choices={"A": "a", "B": "b"}, prompt="Q?")


def test_generation_and_critic_rows_follow_the_consensus():
    rounds = [
        {"x": "A first x", "y": "B first y", "z": "A first z"},
        {"x": "A final", "y": "A final", "z": "B final z"},
    ]
    rounds = [{n: [t] for n, t in r.items()} for r in rounds]
    prompts = {n: [f"critic prompt of {n}"] for n in "xyz"}
    data = build_data(first_letter, [EXAMPLE], rounds, prompts, {"x": "sys", "y": None, "z": None})
    assert data.consensus == ["A"]
    assert data.generation == {
        "x": [{"prompt": "Q?", "completion": "A first x", "system": "sys"}],
        "y": [],
        "z": [{"prompt": "Q?", "completion": "A first z"}],
    }
    assert data.critic_right["x"] == [{"prompt": "critic prompt of x", "completion": "A final", "system": "sys"}]
    assert data.critic_wrong["y"] == [{"prompt": "critic prompt of y", "completion": "A final"}]
    assert data.critic_right["z"] == data.critic_wrong["z"] == []  # its final answer disagrees


def test_mix_keeps_the_wrong_to_right_ratio():
    wrong, right = [{"w": i} for i in range(2)], [{"r": i} for i in range(10)]
    half = mix(wrong, right, 0.5, random.Random(0))
    assert sum("w" in row for row in half) == 2 and sum("r" in row for row in half) == 2
    quarter = mix(wrong, right, 0.25, random.Random(0))
    assert sum("w" in row for row in quarter) == 2 and sum("r" in row for row in quarter) == 6
    assert mix([], right, 0.5, random.Random(0)) == right
    assert mix(wrong, right, 1.0, random.Random(0)) == wrong
