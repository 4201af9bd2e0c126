"""Sparta's tournament: reputation ratings, opponent and instruction selection, EXP3 leader.

Pure bookkeeping (no models), so every rule is testable on its own. The rating update is the
original's: judges weighted by rating give a weighted score gap; each side moves by
``K · gap · tanh(σ) · max(|Φ(Δ/σ) − Φ(−Δ/σ)|, ε) / 20`` with K decaying per update from
``k_initial`` to ``k_min`` (``decay_rate`` every 10 updates). K and the ratings carry across
iterations (the original reset K each iteration).
"""

from __future__ import annotations

import json
import math
import random
import re
from dataclasses import dataclass, field

import numpy as np

INITIAL_RATING = 100.0
INITIAL_DEVIATION = 0.5
DECAY_STEPS = 10
SCALING = 20.0
EPSILON = 0.01
WINDOW = 10
MIN_DEVIATION = 0.1
RATING_FLOOR = 10.0
UNPARSED_SCORE = 5.0
SCORE = re.compile(r'"score"\s*:\s*(\d+(?:\.\d+)?)|score\s*[:=]\s*(\d+(?:\.\d+)?)|(\d+(?:\.\d+)?)\s*/\s*10', re.I)


def parse_score(reply: str) -> float | None:
    """A judge's 1-10 score: the JSON ``{"score": s}`` or a "score: s" / "s/10" phrase; None otherwise."""
    text = reply.strip()
    try:
        data = json.loads(text)
        if isinstance(data, dict) and isinstance(data.get("score"), int | float) and 1 <= data["score"] <= 10:
            return float(data["score"])
    except (json.JSONDecodeError, ValueError):
        pass
    for match in SCORE.finditer(text):
        value = float(next(g for g in match.groups() if g is not None))
        if 1 <= value <= 10:
            return value
    return None


@dataclass
class Ratings:
    """Reputation of every member: score (initial 100) and deviation, with the decaying K."""

    k_initial: float
    k_min: float
    decay_rate: float
    score: dict[str, float] = field(default_factory=dict)
    deviation: dict[str, float] = field(default_factory=dict)
    deltas: dict[str, list[float]] = field(default_factory=dict)
    updates: int = 0

    @classmethod
    def start(cls, names: list[str], k_initial: float, k_min: float, decay_rate: float) -> Ratings:
        return cls(
            k_initial,
            k_min,
            decay_rate,
            dict.fromkeys(names, INITIAL_RATING),
            dict.fromkeys(names, INITIAL_DEVIATION),
            {n: [] for n in names},
        )

    def weighted_scores(self, judged: dict[str, tuple[float, float]]) -> tuple[float, float] | None:
        """The two responses' scores averaged over judges weighted by the judges' ratings."""
        total = sum(self.score[j] for j in judged)
        if total <= 0:
            return None
        a = sum(self.score[j] * s[0] for j, s in judged.items()) / total
        b = sum(self.score[j] * s[1] for j, s in judged.items()) / total
        return a, b

    @property
    def k(self) -> float:
        return max(self.k_min, self.k_initial * self.decay_rate ** (self.updates / DECAY_STEPS))

    def update(self, a: str, b: str, gap: float) -> None:
        """One match: ``gap`` = weighted score of a − that of b."""
        self.updates += 1
        k = self.k
        old = {a: self.score[a], b: self.score[b]}
        for me, other, signed in ((a, b, gap), (b, a, -gap)):
            sigma = math.sqrt(self.deviation[me] ** 2 + self.deviation[other] ** 2) or 1e-6
            forward = 0.5 * (1 + math.erf((old[me] - old[other]) / (math.sqrt(2) * sigma)))
            backward = 0.5 * (1 + math.erf((old[other] - old[me]) / (math.sqrt(2) * sigma)))
            delta = k * signed * math.tanh(self.deviation[me]) * max(abs(forward - backward), EPSILON) / SCALING
            new = max(RATING_FLOOR, old[me] + delta)
            self.score[me] = new
            history = (self.deltas[me] + [new - old[me]])[-WINDOW:]
            self.deltas[me] = history
            if len(history) >= 2:
                self.deviation[me] = max(float(np.std(history)), MIN_DEVIATION)


def choose_opponent(
    me: str,
    names: list[str],
    ratings: Ratings,
    draw: random.Random,
    random_match_prob: float,
    opponents: int,
    selection: str,
    progress: float,
    gap_sigma: float,
) -> str:
    """The opponent of ``me``: random with ``random_match_prob``, else by ``selection``.

    closest / lowest_diff: one of the ``opponents`` closest in rating; highest_diff: one of the
    farthest; schedule: drawn with weight exp(−(gap − target)² / 2σ²), the normalised gap's
    target falling from 1 to 0 as ``progress`` goes from 0 to 1 (the variant's schedule_decreasing).
    """
    others = [n for n in names if n != me]
    if draw.random() < random_match_prob:
        return draw.choice(others)
    gaps = [(n, abs(ratings.score[me] - ratings.score[n])) for n in others]
    top = max(1, min(opponents, len(gaps)))
    if selection in ("closest", "lowest_diff"):
        return draw.choice([n for n, _ in sorted(gaps, key=lambda g: g[1])[:top]])
    if selection == "highest_diff":
        return draw.choice([n for n, _ in sorted(gaps, key=lambda g: -g[1])[:top]])
    widest = max(g for _, g in gaps)
    target = 1.0 - progress
    weights = [
        math.exp(-((((g / widest) if widest > 1e-12 else 0.0) - target) ** 2) / (2 * max(gap_sigma, 1e-12) ** 2))
        for _, g in gaps
    ]
    if not sum(weights) > 0:
        return draw.choice(others)
    return draw.choices([n for n, _ in gaps], weights=weights)[0]


def plain_schedule(count: int, names: list[str], draw: random.Random) -> list[tuple[int, str]]:
    """Plain Sparta: instructions in order, each loop of n given to the members in shuffled order."""
    n = len(names)
    duels = []
    for start in range(0, count - count % n, n):
        order = draw.sample(names, n)
        duels += [(start + k, order[k]) for k in range(n)]
    duels += [(i, draw.choice(names)) for i in range(count - count % n, count)]
    return duels


def exp3_probabilities(weights: np.ndarray, gamma: float) -> np.ndarray:
    probabilities = (1 - gamma) * weights / weights.sum() + gamma / len(weights)
    return probabilities / probabilities.sum()


@dataclass
class Exp3Leader:
    """The variant's EXP3 instruction selector: one weight vector (global) or one per member.

    A duel's reward mixes difficulty (0.3: (10 − s)/(10 − 3) for a score s ≥ 3, else 0) and
    preference quality (0.7: a Gaussian, σ 0.15, of the normalised score gap around a target
    falling from 0.6 to 0.15 over the iterations); rewards are importance-weighted by the
    instruction's probability and the log-weights move by reward / K (K instructions).
    """

    gamma: float
    weights: dict[str, np.ndarray]
    difficulty_weight: float = 0.3
    quality_weight: float = 0.7
    score_threshold: float = 3.0
    start_gap: float = 0.6
    end_gap: float = 0.15
    gap_sigma: float = 0.15

    @classmethod
    def start(cls, keys: list[str], count: int, gamma: float) -> Exp3Leader:
        return cls(gamma, {k: np.ones(count) for k in keys})

    def key(self, member: str) -> str:
        return member if member in self.weights else "*"

    def draw(self, member: str, rng: np.random.Generator) -> tuple[int, float]:
        probabilities = exp3_probabilities(self.weights[self.key(member)], self.gamma)
        index = int(rng.choice(len(probabilities), p=probabilities))
        return index, float(probabilities[index])

    def reward(self, score: float, scores: tuple[float, float], progress: float) -> float:
        difficulty = 0.0 if score < self.score_threshold else (10 - score) / (10 - self.score_threshold)
        target = self.end_gap + (self.start_gap - self.end_gap) * (1 - progress)
        gap = abs(scores[0] - scores[1]) / 9.0
        quality = math.exp(-((gap - target) ** 2) / (2 * self.gap_sigma**2))
        total = self.difficulty_weight + self.quality_weight
        return (self.difficulty_weight * difficulty + self.quality_weight * quality) / total

    def update(self, duels: list[dict], progress: float) -> None:
        """``duels``: dicts with instruction, models, scores (a, b) and probability."""
        rewards = {k: np.zeros_like(w) for k, w in self.weights.items()}
        for duel in duels:
            scores = duel["scores"]
            active = duel["models"][0]
            key = self.key(active)
            r_active = self.reward(scores[0], scores, progress)
            if key == "*":
                r_opponent = self.reward(scores[1], scores, progress)
                rewards[key][duel["instruction"]] += (r_active + r_opponent) / 2 / duel["probability"]
            else:
                rewards[key][duel["instruction"]] += r_active / duel["probability"]
        for key, weights in self.weights.items():
            logs = np.log(np.maximum(weights, 1e-12)) + rewards[key] / len(weights)
            self.weights[key] = np.exp(logs - logs.max())
