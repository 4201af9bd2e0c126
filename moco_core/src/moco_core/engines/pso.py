"""Particle swarm optimisation over vectors: the one search engine of every swarm method.

A particle moves by ``x <- x + step * v`` with
``v <- w·v + c·(personal_best − x) + s·(global_best − x) − r·(global_worst − x)``, where the
four coefficients are each multiplied by U(0, 1) and renormalised to sum to 1 at every step
(as the Model Swarms original does).  Fitness is maximised, evaluated in one batched call per
iteration, and cached by a key per distinct candidate, so a candidate that comes back (a
restart to a personal best) is never scored twice.

The update only adds vectors and scales them, so particles may be numpy arrays or torch
tensors; a method that searches in a space spanned by fixed points (model swarms: linear
combinations of the pool's weights) runs PSO on the coefficient vectors and gets every
candidate's tensors as the same update applied to its parents' tensors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from moco_core.errors import MocoError

Vector = Any
"""A 1-D numpy array or torch tensor."""
Fitness = Callable[[list[Vector]], list[float]]
"""Scores a batch of candidates (higher is better), one float per candidate in order."""
InitialVelocity = Literal["random", "toward_other"]


class PSOParams(BaseModel):
    """The ``pso`` block every particle-swarm method takes (spec: "Shared engines: PSO")."""

    model_config = ConfigDict(extra="forbid")

    population: int = Field(5, ge=1)
    max_iterations: int = Field(10, ge=0)
    inertia: float = Field(0.2, ge=0.0)
    cognitive: float = Field(0.3, ge=0.0)
    social: float = Field(0.4, ge=0.0)
    repel: float = Field(0.05, ge=0.0)
    randomize_coefficients: bool = True
    step_length: float = Field(0.5, gt=0.0)
    step_length_factor: float = Field(0.95, gt=0.0, le=1.0)
    min_step_length: float = Field(0.1, ge=0.0)
    patience: int = Field(5, ge=1)
    restart_patience: int = Field(3, ge=1)

    @model_validator(mode="after")
    def _some_pull(self) -> PSOParams:
        if self.inertia + self.cognitive + self.social + self.repel <= 0:
            raise ValueError("inertia, cognitive, social and repel cannot all be 0")
        return self


@dataclass
class PSOMove:
    """One particle's update, kept so a caller (or a test) can replay it on other representations."""

    iteration: int
    particle: int
    position: Vector
    velocity: Vector
    personal_best: Vector
    global_best: Vector
    global_worst: Vector
    coefficients: tuple[float, float, float, float]
    step_length: float
    new_velocity: Vector
    new_position: Vector


@dataclass
class PSOResult:
    """The best candidate found and how the search went."""

    best: Vector
    best_fitness: float
    worst: Vector
    worst_fitness: float
    iterations: int
    evaluations: int
    history: list[dict[str, Any]] = field(default_factory=list)
    moves: list[PSOMove] = field(default_factory=list)


def vector_key(vector: Vector) -> str:
    """A stable key of a candidate's values (rounded, so float noise does not split a candidate)."""
    values = np.round(np.asarray(_to_numpy(vector), dtype=np.float64), 12) + 0.0
    return hashlib.sha256(values.tobytes()).hexdigest()[:24]


def _to_numpy(vector: Vector) -> np.ndarray:
    if hasattr(vector, "detach"):
        return vector.detach().cpu().numpy()
    return np.asarray(vector)


def _like(values: np.ndarray, template: Vector) -> Vector:
    """``values`` in the type, dtype and device of ``template``."""
    if hasattr(template, "detach"):
        import torch

        return torch.as_tensor(values, dtype=template.dtype, device=template.device)
    return values.astype(np.asarray(template).dtype, copy=False)


class ParticleSwarm:
    """A seeded PSO run over ``initial`` positions (one particle each).

    ``fitness`` scores a batch; ``key`` names a candidate for the fitness cache (default: its
    rounded values); ``initial_velocity`` is "random" (U(-1, 1) per coordinate) or
    "toward_other" (a random other particle minus self, as Model Swarms starts).
    """

    def __init__(
        self,
        initial: Sequence[Vector],
        fitness: Fitness,
        params: PSOParams | None = None,
        seed: int = 0,
        key: Callable[[Vector], str] = vector_key,
        initial_velocity: InitialVelocity = "random",
    ) -> None:
        if not initial:
            raise MocoError("pso: no initial particles")
        if initial_velocity == "toward_other" and len(initial) < 2:
            raise MocoError("pso: initial velocity toward another particle needs at least 2 particles")
        self.positions = [p * 1 for p in initial]
        self.fitness = fitness
        self.params = params or PSOParams()
        self.rng = np.random.default_rng(seed)
        self.key = key
        self.initial_velocity = initial_velocity
        self.cache: dict[str, float] = {}
        self.evaluations = 0

    def evaluate(self, candidates: Sequence[Vector]) -> list[float]:
        """Fitness of each candidate; only distinct, unseen candidates reach ``fitness``, in one batch."""
        keys = [self.key(c) for c in candidates]
        fresh = {k: c for k, c in zip(keys, candidates, strict=True) if k not in self.cache}
        if fresh:
            scores = self.fitness(list(fresh.values()))
            if len(scores) != len(fresh):
                raise MocoError(f"pso: fitness returned {len(scores)} scores for {len(fresh)} candidates")
            self.cache.update({k: float(s) for k, s in zip(fresh, scores, strict=True)})
            self.evaluations += len(fresh)
        return [self.cache[k] for k in keys]

    def _start_velocity(self, index: int) -> Vector:
        position = self.positions[index]
        if self.initial_velocity == "toward_other":
            others = [i for i in range(len(self.positions)) if i != index]
            other = int(self.rng.choice(others))
            return self.positions[other] - position
        shape = np.asarray(_to_numpy(position)).shape
        return _like(self.rng.uniform(-1.0, 1.0, size=shape), position)

    def _coefficients(self) -> tuple[float, float, float, float]:
        p = self.params
        raw = np.array([p.inertia, p.cognitive, p.social, p.repel], dtype=np.float64)
        if p.randomize_coefficients:
            raw = raw * self.rng.uniform(0.0, 1.0, size=4)
        total = raw.sum()
        if total <= 0:
            raw = np.array([p.inertia, p.cognitive, p.social, p.repel], dtype=np.float64)
            total = raw.sum()
        w, c, s, r = (float(x) for x in raw / total)
        return w, c, s, r

    def run(self) -> PSOResult:
        p = self.params
        count = len(self.positions)
        scores = self.evaluate(self.positions)
        personal = [x * 1 for x in self.positions]
        personal_scores = list(scores)
        best_i = int(np.argmax(scores))
        worst_i = int(np.argmin(scores))
        best, best_score = self.positions[best_i] * 1, scores[best_i]
        worst, worst_score = self.positions[worst_i] * 1, scores[worst_i]
        velocities = [self._start_velocity(i) for i in range(count)]
        stale = [0] * count
        step = p.step_length
        history = [{"iteration": 0, "global_best": best_score, "scores": list(scores)}]
        moves: list[PSOMove] = []
        idle = 0
        iteration = 0
        for iteration in range(1, p.max_iterations + 1):
            for i in range(count):
                w, c, s, r = self._coefficients()
                x, v = self.positions[i], velocities[i]
                new_v = w * v + c * (personal[i] - x) + s * (best - x) - r * (worst - x)
                new_x = x + step * new_v
                moves.append(PSOMove(iteration, i, x, v, personal[i], best, worst, (w, c, s, r), step, new_v, new_x))
                velocities[i], self.positions[i] = new_v, new_x
            scores = self.evaluate(self.positions)
            improved = False
            for i, score in enumerate(scores):
                if score > personal_scores[i]:
                    personal[i], personal_scores[i], stale[i] = self.positions[i] * 1, score, 0
                else:
                    stale[i] += 1
                if score > best_score:
                    best, best_score, improved = self.positions[i] * 1, score, True
                if score < worst_score:
                    worst, worst_score = self.positions[i] * 1, score
            for i in range(count):
                if stale[i] >= p.restart_patience:
                    self.positions[i] = personal[i] * 1
                    velocities[i] = self._start_velocity(i)
                    stale[i] = 0
            history.append({"iteration": iteration, "global_best": best_score, "scores": list(scores)})
            idle = 0 if improved else idle + 1
            step = max(step * p.step_length_factor, p.min_step_length)
            if idle >= p.patience:
                break
        return PSOResult(best, best_score, worst, worst_score, iteration, self.evaluations, history, moves)


def particle_swarm(
    initial: Sequence[Vector],
    fitness: Fitness,
    params: PSOParams | None = None,
    seed: int = 0,
    key: Callable[[Vector], str] = vector_key,
    initial_velocity: InitialVelocity = "random",
) -> PSOResult:
    """Run PSO from ``initial`` and return the global best (see ``ParticleSwarm``)."""
    return ParticleSwarm(initial, fitness, params, seed, key, initial_velocity).run()


def random_particles(count: int, dimension: int, seed: int, low: float = -1.0, high: float = 1.0) -> list[np.ndarray]:
    """``count`` seeded uniform starting positions in ``[low, high]^dimension``."""
    rng = np.random.default_rng(seed)
    return [rng.uniform(low, high, size=dimension) for _ in range(count)]
