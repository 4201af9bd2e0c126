"""Decoding an adjacency matrix into a spanning in-tree, as Heterogeneous Swarms does.

The sink is drawn from a softmax over 1/row-sum (a node that sends little is likely the end);
then repeatedly a remaining node (softmax over row sums) attaches to one placed node (softmax
over its row restricted to placed nodes). Every draw is nucleus sampling at ``top_p`` from a
generator seeded by the matrix itself, so the same matrix always decodes to the same graph —
the test graph is the one scored on dev. Entries are clipped to [0, 1] (the swarm may step
outside) and the diagonal is ignored.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

EPSILON = 1e-6


@dataclass
class Graph:
    """An in-tree over members 0..n-1: ``successor[i]`` receives node i's response (None: the sink)."""

    successor: list[int | None]
    order: list[int]
    """Placement order: the sink first; running it reversed puts every node after its predecessors."""

    @property
    def sink(self) -> int:
        return self.order[0]

    def predecessors(self, node: int) -> list[int]:
        return [i for i, s in enumerate(self.successor) if s == node]

    def layers(self) -> list[list[int]]:
        """Nodes grouped by height (leaves first): a layer depends only on earlier layers."""
        height: dict[int, int] = {}
        for node in reversed(self.order):
            height[node] = 1 + max((height[p] for p in self.predecessors(node)), default=-1)
        return [sorted(n for n, h in height.items() if h == level) for level in range(max(height.values()) + 1)]

    def edges(self) -> list[tuple[int, int]]:
        return [(i, s) for i, s in enumerate(self.successor) if s is not None]


def softmax(values: np.ndarray) -> np.ndarray:
    shifted = np.exp(values - values.max())
    return shifted / shifted.sum()


def nucleus(rng: np.random.Generator, probabilities: np.ndarray, top_p: float) -> int:
    """Draw an index from the smallest most-probable set whose mass reaches ``top_p``."""
    order = np.argsort(-probabilities, kind="stable")
    cumulative = np.cumsum(probabilities[order])
    keep = order[: int(np.searchsorted(cumulative, top_p - 1e-12)) + 1]
    kept = probabilities[keep] / probabilities[keep].sum()
    return int(keep[rng.choice(len(keep), p=kept)])


def matrix_seed(matrix: np.ndarray, seed: int) -> int:
    digest = hashlib.sha256(np.round(matrix, 12).tobytes() + str(seed).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def decode_graph(vector: np.ndarray, n: int, top_p: float, seed: int = 0) -> Graph:
    """The in-tree a flattened n x n adjacency matrix decodes to (seeded by the matrix and ``seed``)."""
    matrix = np.clip(np.asarray(vector, dtype=np.float64).reshape(n, n), 0.0, 1.0)
    np.fill_diagonal(matrix, 0.0)
    rng = np.random.default_rng(matrix_seed(matrix, seed))
    sums = matrix.sum(axis=1)
    sink = nucleus(rng, softmax(1.0 / np.maximum(sums, EPSILON)), top_p)
    successor: list[int | None] = [None] * n
    order = [sink]
    while len(order) < n:
        remaining = [i for i in range(n) if i not in order]
        node = remaining[nucleus(rng, softmax(sums[remaining]), top_p)]
        target = order[nucleus(rng, softmax(matrix[node, order]), top_p)]
        successor[node] = target
        order.append(node)
    return Graph(successor, order)
