"""nudging's hand-over rule on scripted distributions: who writes each token, and why."""

from __future__ import annotations

import pytest
import torch

from moco_methods_api.nudging import NudgingPolicy

PIECES = ["ab", " cd", "ef", " gh", "\nij", "kl"]
"""The text each token id adds: ids 1, 3 and 4 hold whitespace (they start a new word)."""


class ScriptedView:
    """One row; at step i the base's top-1 probability is ``base_top[i]`` and the nudging
    model's next token is ``nudger_next[i]`` (greedy)."""

    def __init__(self, base_top: list[float], nudger_next: list[int]) -> None:
        self.base_top = base_top
        self.nudger_next = nudger_next
        self.step = 0
        self.active = [0]
        self.asked: list[tuple[int, int]] = []

    def log_probs(self, model: int, positions: list[int]) -> torch.Tensor:
        if positions:
            self.asked.append((self.step, model))
        size = len(PIECES)
        if model == 0:
            top = self.base_top[self.step]
            probs = torch.full((size,), (1 - top) / (size - 1))
            probs[0] = top
        else:
            probs = torch.full((size,), 0.01)
            probs[self.nudger_next[self.step]] = 1 - 0.01 * (size - 1)
        return probs.log().expand(len(positions), size)

    def sample(self, positions: list[int], log_probs: torch.Tensor) -> list[int]:
        return log_probs.argmax(dim=-1).tolist()

    def piece(self, position: int, model: int, token: int) -> str:
        return PIECES[token]

    def generated(self, position: int) -> int:
        return self.step

    def prompt_index(self, position: int) -> int:
        return position


def writers(base_top: list[float], nudger_next: list[int], gamma: float = 0.4) -> tuple[list[str], NudgingPolicy]:
    view = ScriptedView(base_top, nudger_next)
    policy = NudgingPolicy(0, 1, gamma)
    who = []
    for step in range(len(base_top)):
        view.step = step
        choice = policy(view)[0]
        who.append("base" if choice.model == 0 else f"nudger:{PIECES[choice.token]!r}")
    return who, policy


def test_the_nudging_model_finishes_its_word_before_a_sure_base_takes_over():
    who, policy = writers([0.9] * 6, [1, 2, 0, 3, 0, 0])
    assert who == ["nudger:' cd'", "nudger:'ef'", "nudger:'ab'", "base", "base", "base"]
    assert policy.log[0] == [{"at_token": 3, "base_top1": pytest.approx(0.9), "to": "base"}]


def test_an_unsure_base_leaves_the_next_word_to_the_nudging_model_too():
    who, _ = writers([0.9, 0.3, 0.9, 0.9], [0, 3, 4, 2])
    assert who == ["nudger:'ab'", "nudger:' gh'", "base", "base"]  # " gh" starts a word, but the base is unsure


def test_the_base_writes_while_sure_and_hands_over_under_gamma_whatever_the_next_token():
    who, policy = writers([0.9, 0.9, 0.5, 0.39, 0.9, 0.9], [1, 1, 1, 1, 0, 3], gamma=0.4)
    # step 0 the nudging model's first token; step 1 its next starts a word and the base is sure
    assert who == ["nudger:' cd'", "base", "base", "nudger:' cd'", "nudger:'ab'", "base"]
    assert [(e["at_token"], e["to"]) for e in policy.log[0]] == [(1, "base"), (3, "nudging"), (5, "base")]
    assert [e["base_top1"] for e in policy.log[0]] == pytest.approx([0.9, 0.39, 0.9])


def test_the_base_is_asked_at_every_step_and_the_nudging_model_only_where_it_may_write():
    view = ScriptedView([0.9, 0.9, 0.9, 0.2], [0, 1, 1, 1])
    policy = NudgingPolicy(0, 1, 0.4)
    for step in range(4):
        view.step = step
        policy(view)
    assert sorted(view.asked) == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (3, 0), (3, 1)]
