"""Structured interaction: debate in which each member sees only its in-neighbours' answers.

Built-in structures are bidirectional; ``adjacency`` gives any directed graph (M[i][j] = 1:
member j sees member i). A member with no in-neighbours keeps its answer. The dev-best
member's final answer is reported.
"""

from __future__ import annotations

from moco_core.errors import MocoError
from moco_core.method import Method, MethodContext
from moco_core.types import Example, Prediction
from moco_core.validation import RunPlan
from moco_methods_text.prompts import listing
from moco_methods_text.rounds import ask, dev_best, initial_answers, needs_dev_best

MIN_MODELS = {"chain": 2, "tree": 2, "star": 2, "circle": 3, "complete": 2, "adjacency": 1}


def edges(structure: str, n: int) -> set[tuple[int, int]]:
    """Undirected edges of a built-in structure over members 0..n-1 (star: member 0 is the hub)."""
    if structure == "chain":
        return {(i, i + 1) for i in range(n - 1)}
    if structure == "tree":
        return {((i - 1) // 2, i) for i in range(1, n)}
    if structure == "star":
        return {(0, i) for i in range(1, n)}
    if structure == "circle":
        return {(i, (i + 1) % n) for i in range(n)}
    return {(i, j) for i in range(n) for j in range(i + 1, n)}


def in_neighbours(structure: str, n: int, adjacency: list[list[int]] | None) -> list[list[int]]:
    """For each member j, the members whose answers j sees (ascending)."""
    if structure == "adjacency":
        matrix = adjacency or [[0] * n for _ in range(n)]
        return [[i for i in range(n) if i != j and matrix[i][j]] for j in range(n)]
    pairs = edges(structure, n)
    return [sorted({a for a, b in pairs if b == j} | {b for a, b in pairs if a == j}) for j in range(n)]


def check_structure(structure: str, adjacency: list[list[int]] | None, n: int) -> None:
    if structure == "adjacency":
        if adjacency is None:
            raise MocoError("params.adjacency: structure 'adjacency' needs the matrix")
        if len(adjacency) != n or any(len(row) != n for row in adjacency):
            raise MocoError(f"params.adjacency: must be {n}x{n} for a pool of {n} models")
    elif adjacency is not None:
        raise MocoError(f"params.adjacency: only used with structure 'adjacency', not {structure!r}")
    if n < MIN_MODELS[structure]:
        raise MocoError(
            f"params.structure: {structure!r} needs at least {MIN_MODELS[structure]} models, the pool has {n}"
        )


class StructuredInteraction(Method):
    @classmethod
    def check(cls, plan: RunPlan) -> None:
        check_structure(plan.params.structure, plan.params.adjacency, len(plan.config.models))
        needs_dev_best(plan, "structured_interaction")

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx)
        self.neighbours = in_neighbours(self.params.structure, len(ctx.pool), self.params.adjacency)

    def prepare(self) -> None:
        self.reporter = dev_best(self.ctx)
        self.ctx.metrics["reporter"] = self.reporter
        self.ctx.metrics["in_neighbours"] = {
            name: [self.ctx.pool.names[i] for i in self.neighbours[j]] for j, name in enumerate(self.ctx.pool.names)
        }

    def _revise(self, examples: list[Example], previous: dict[str, list[str]]) -> dict[str, list[str]]:
        names = self.ctx.pool.names
        revised = {}
        for j, name in enumerate(names):
            seen = self.neighbours[j]
            if not seen:
                revised[name] = previous[name]
                continue
            prompts = [
                self.params.revise_prompt.format(
                    question=e.prompt,
                    own_answer=previous[name][i],
                    neighbour_answers=listing(
                        "Assistant", [previous[names[k]][i] for k in seen], [k + 1 for k in seen]
                    ),
                )
                for i, e in enumerate(examples)
            ]
            revised[name] = ask(self.ctx, name, prompts)
        return revised

    def predict(self, examples: list[Example]) -> list[Prediction]:
        rounds = [initial_answers(self.ctx, self.ctx.pool.names, examples)]
        for _ in range(1, self.params.rounds):
            rounds.append(self._revise(examples, rounds[-1]))
        return [
            Prediction(
                output=rounds[-1][self.reporter][i],
                extras={"reporter": self.reporter, "rounds": [{n: r[n][i] for n in r} for r in rounds]},
            )
            for i in range(len(examples))
        ]
