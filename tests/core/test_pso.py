"""The PSO engine: the update rule, caching, patience, restarts, seeding, numpy and torch vectors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from moco_core.engines.pso import PSOParams, particle_swarm, random_particles, vector_key

TARGET = np.array([0.3, -0.2, 0.7])


def sphere(candidates: list) -> list[float]:
    return [-float(np.sum((np.asarray(c, dtype=np.float64) - TARGET) ** 2)) for c in candidates]


def test_defaults_follow_the_spec():
    p = PSOParams()
    assert (p.population, p.max_iterations, p.inertia, p.cognitive, p.social, p.repel) == (5, 10, 0.2, 0.3, 0.4, 0.05)
    assert (p.step_length, p.step_length_factor, p.min_step_length) == (0.5, 0.95, 0.1)
    assert (p.patience, p.restart_patience, p.randomize_coefficients) == (5, 3, True)
    with pytest.raises(ValidationError):
        PSOParams(populaton=3)
    with pytest.raises(ValidationError):
        PSOParams(inertia=0, cognitive=0, social=0, repel=0)


def test_every_move_is_the_pso_update_and_the_best_never_worsens():
    result = particle_swarm(random_particles(5, 3, seed=1), sphere, PSOParams(max_iterations=8, patience=8), seed=3)
    assert len(result.moves) == 5 * result.iterations
    for move in result.moves:
        w, c, s, r = move.coefficients
        assert w + c + s + r == pytest.approx(1.0)
        x = move.position
        velocity = w * move.velocity + c * (move.personal_best - x) + s * (move.global_best - x)
        velocity = velocity - r * (move.global_worst - x)
        np.testing.assert_allclose(move.new_velocity, velocity)
        np.testing.assert_allclose(move.new_position, x + move.step_length * velocity)
    bests = [h["global_best"] for h in result.history]
    assert bests == sorted(bests)
    assert result.best_fitness == max(max(h["scores"]) for h in result.history)
    assert result.best_fitness > bests[0]
    assert sphere([result.best])[0] == result.best_fitness


def test_step_length_decays_to_its_floor():
    params = PSOParams(max_iterations=6, patience=6, step_length=0.2, step_length_factor=0.5, min_step_length=0.06)
    result = particle_swarm(random_particles(2, 2, seed=0), lambda c: [0.0] * len(c), params)
    steps = sorted({m.step_length for m in result.moves}, reverse=True)
    assert steps[:3] == pytest.approx([0.2, 0.1, 0.06])


def test_same_seed_same_search_other_seed_other_search():
    start = random_particles(4, 3, seed=2)
    one = particle_swarm(start, sphere, seed=7)
    two = particle_swarm(start, sphere, seed=7)
    other = particle_swarm(start, sphere, seed=8)
    np.testing.assert_array_equal(one.best, two.best)
    assert [h["scores"] for h in one.history] == [h["scores"] for h in two.history]
    assert [h["scores"] for h in one.history] != [h["scores"] for h in other.history]


def test_each_distinct_candidate_is_scored_once_in_batches():
    batches: list[int] = []
    seen: list[str] = []

    def fitness(candidates):
        batches.append(len(candidates))
        seen.extend(vector_key(c) for c in candidates)
        return [0.0] * len(candidates)

    duplicate = np.array([0.5, 0.5])
    start = [duplicate, duplicate.copy(), np.array([0.1, 0.9])]
    result = particle_swarm(start, fitness, PSOParams(max_iterations=3, patience=10))
    assert batches[0] == 2
    assert len(seen) == len(set(seen)) == result.evaluations
    assert len(batches) == 1 + result.iterations


def test_patience_stops_a_search_that_does_not_improve():
    result = particle_swarm(random_particles(3, 2, seed=0), lambda c: [1.0] * len(c), PSOParams(patience=2))
    assert result.iterations == 2
    assert len(result.history) == 3


def test_a_stale_particle_restarts_from_its_personal_best():
    start = [np.array([0.0, 0.0]), np.array([1.0, 1.0])]

    def fitness(candidates):  # only the two starting points score; everything else is worse
        return [1.0 if np.allclose(c, start[0]) or np.allclose(c, start[1]) else -1.0 for c in candidates]

    params = PSOParams(max_iterations=4, patience=10, restart_patience=2)
    result = particle_swarm(start, fitness, params, seed=0)
    third = [m for m in result.moves if m.iteration == 3]
    for move in third:
        np.testing.assert_allclose(move.position, start[move.particle])
        assert not np.allclose(move.velocity, [m for m in result.moves if m.iteration == 2][move.particle].new_velocity)


def test_toward_other_initial_velocity_points_at_another_particle():
    start = random_particles(3, 3, seed=5)
    result = particle_swarm(start, sphere, PSOParams(max_iterations=1), initial_velocity="toward_other")
    for move in result.moves:
        targets = [start[j] - start[move.particle] for j in range(3) if j != move.particle]
        assert any(np.allclose(move.velocity, t) for t in targets)


def test_torch_vectors_work_like_numpy():
    start = [torch.tensor(p, dtype=torch.float64) for p in random_particles(4, 3, seed=1)]
    numpy_result = particle_swarm(random_particles(4, 3, seed=1), sphere, seed=4)
    torch_result = particle_swarm(start, sphere, seed=4)
    assert isinstance(torch_result.best, torch.Tensor)
    np.testing.assert_allclose(torch_result.best.numpy(), numpy_result.best)
