"""The statistics behind ``moco compare``: per-cell uncertainty and paired tests against the best single model.

A cell's interval is a percentile bootstrap over its items (or groups); a method's gain over the
pool's best single model is tested on the same items, pairing each item's two scores: exact
McNemar when every score is 0 or 1, otherwise a paired bootstrap of the mean difference. Both
resample with a fixed seed, so the same runs always print the same table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

RESAMPLES = 10_000
SEED = 0


@dataclass
class PairedTest:
    """The improvement of a method over a reference on ``n`` shared items and its two-sided p-value."""

    improvement: float
    p_value: float
    test: str
    n: int


def standard_error(scores: list[float]) -> float | None:
    """Standard error of the mean (sample standard deviation over sqrt n); None below two scores."""
    if len(scores) < 2:
        return None
    return float(np.std(scores, ddof=1) / math.sqrt(len(scores)))


def bootstrap_interval(scores: list[float], level: float = 0.95, resamples: int = RESAMPLES) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean, resampling items with replacement."""
    values = np.asarray(scores, dtype=float)
    if len(values) == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(SEED)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    tail = (1.0 - level) / 2
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return (float(low), float(high))


def _binary(values: list[float]) -> bool:
    return all(v in (0.0, 1.0) for v in values)


def mcnemar_exact(method: list[float], reference: list[float]) -> float:
    """Two-sided exact McNemar p-value: a binomial test on the items where exactly one of the two is right."""
    wins = sum(1 for m, r in zip(method, reference, strict=True) if m > r)
    losses = sum(1 for m, r in zip(method, reference, strict=True) if m < r)
    discordant = wins + losses
    if discordant == 0:
        return 1.0
    tail = sum(math.comb(discordant, k) for k in range(min(wins, losses) + 1)) / 2**discordant
    return min(1.0, 2 * tail)


def paired_bootstrap(method: list[float], reference: list[float], resamples: int = RESAMPLES) -> float:
    """Two-sided paired-bootstrap p-value of the mean difference: how often a resample's sign flips."""
    differences = np.asarray(method, dtype=float) - np.asarray(reference, dtype=float)
    if not differences.any():
        return 1.0
    rng = np.random.default_rng(SEED)
    means = differences[rng.integers(0, len(differences), size=(resamples, len(differences)))].mean(axis=1)
    return float(min(1.0, 2 * min((means <= 0).mean(), (means >= 0).mean())))


def paired_test(method: list[float], reference: list[float]) -> PairedTest | None:
    """McNemar for 0/1 scores, else the paired bootstrap; None without shared items."""
    if not method:
        return None
    improvement = float(np.mean(method) - np.mean(reference))
    if _binary(method) and _binary(reference):
        return PairedTest(improvement, mcnemar_exact(method, reference), "mcnemar", len(method))
    return PairedTest(improvement, paired_bootstrap(method, reference), "paired bootstrap", len(method))
