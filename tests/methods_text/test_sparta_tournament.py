from __future__ import annotations

import random

import numpy as np
import pytest

from moco_methods_text.sparta_tournament import (
    Exp3Leader,
    Ratings,
    choose_opponent,
    parse_score,
    plain_schedule,
)


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ('{"score": 7}', 7.0),
        ('Sure! {"score": 9}', 9.0),
        ("Score: 3", 3.0),
        ("8/10", 8.0),
        ("great", None),
        ('{"score": 11}', None),
    ],
)
def test_parse_score(reply, score):
    assert parse_score(reply) == score


def test_ratings_move_toward_the_winner_and_k_decays_across_updates():
    ratings = Ratings.start(["a", "b", "c"], 10.0, 5.0, 0.9)
    assert ratings.weighted_scores({"c": (8.0, 2.0)}) == (8.0, 2.0)
    ratings.score["c"] = 300.0
    assert ratings.weighted_scores({"c": (8.0, 2.0), "b": (2.0, 8.0)}) == pytest.approx((6.5, 3.5))
    ratings.update("a", "b", 6.0)
    assert ratings.score["a"] > 100.0 > ratings.score["b"]
    assert ratings.score["a"] - 100.0 == pytest.approx(100.0 - ratings.score["b"])
    first_k = ratings.k
    for _ in range(30):
        ratings.update("a", "b", 1.0)
    assert first_k > ratings.k >= 5.0 and ratings.updates == 31


def test_opponent_selection_rules():
    ratings = Ratings.start(list("mabcd"), 10.0, 5.0, 0.9)
    ratings.score.update({"m": 100.0, "a": 101.0, "b": 110.0, "c": 150.0, "d": 200.0})
    names = list("mabcd")

    def pick(selection, progress=0.0, opponents=1):
        draw = random.Random(0)
        return {
            choose_opponent("m", names, ratings, draw, 0.0, opponents, selection, progress, 0.15) for _ in range(20)
        }

    assert pick("closest") == pick("lowest_diff") == {"a"}
    assert pick("highest_diff") == {"d"}
    assert pick("closest", opponents=2) == {"a", "b"}
    assert pick("schedule", progress=0.0) == {"d"}  # early: the widest gap
    assert pick("schedule", progress=1.0) <= {"a", "b"}  # late: the narrowest
    always_random = {
        choose_opponent("m", names, ratings, random.Random(k), 1.0, 1, "closest", 0, 0.15) for k in range(40)
    }
    assert always_random == set("abcd")


def test_plain_schedule_uses_every_instruction_once_and_every_member_per_loop():
    duels = plain_schedule(7, ["x", "y", "z"], random.Random(1))
    assert [i for i, _ in duels] == list(range(7))
    assert sorted(m for _, m in duels[:3]) == ["x", "y", "z"] and sorted(m for _, m in duels[3:6]) == ["x", "y", "z"]


def test_exp3_moves_weight_to_rewarded_instructions():
    leader = Exp3Leader.start(["*"], 4, gamma=0.2)
    duels = [{"instruction": 2, "models": ["a", "b"], "scores": (6.0, 2.5), "probability": 0.25}]
    leader.update(duels, progress=0.0)
    weights = leader.weights["*"]
    assert weights[2] == weights.max() and weights[0] == weights[1] == weights[3] < weights[2]
    index, probability = leader.draw("a", np.random.default_rng(0))
    assert 0 <= index < 4 and 0.05 <= probability <= 1
    per_model = Exp3Leader.start(["a", "b"], 3, gamma=0.0)
    per_model.update([{"instruction": 1, "models": ["a", "b"], "scores": (4.0, 4.0), "probability": 1 / 3}], 0.0)
    assert per_model.weights["a"][1] > per_model.weights["a"][0] and np.all(per_model.weights["b"] == 1.0)
