"""Heterogeneous swarms: PSO over the pool's adjacency matrix; the decoded graph answers.

Each particle is a flattened n x n matrix. Its fitness is the mean dev score of its decoded
graph (``swarm_graph``) on the first ``dev_ratio`` of dev. A graph runs layer by layer —
leaves answer the task prompt (round 0, shared through the cache), a later node sees its
predecessors' responses — with one batched request per model per layer over every graph of
the PSO iteration and every example. The sink's response is the answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from moco_core.engines.pso import particle_swarm, random_particles
from moco_core.method import Method
from moco_core.types import Example, Prediction
from moco_core.validation import RunPlan
from moco_methods_text.prompts import listing
from moco_methods_text.rounds import ask_each, require_dev
from moco_methods_text.swarm_graph import Graph, decode_graph


class HeterogeneousSwarms(Method):
    @classmethod
    def check(cls, plan: RunPlan) -> None:
        require_dev(plan, "heterogeneous_swarms", "PSO fitness is the dev score")

    def _decode(self, vector: np.ndarray) -> Graph:
        return decode_graph(vector, len(self.ctx.pool), self.params.edge_top_p, self.ctx.settings.seed)

    def run_graphs(self, graphs: Sequence[Graph], examples: Sequence[Example]) -> list[list[dict[int, str]]]:
        """Every node's response, per graph and example; one request per model and layer."""
        names = self.ctx.pool.names
        outputs: list[list[dict[int, str]]] = [[{} for _ in examples] for _ in graphs]
        layered = [g.layers() for g in graphs]
        for level in range(max(len(layers) for layers in layered)):
            jobs: dict[str, list[tuple[int, int, int]]] = {}
            for g, layers in enumerate(layered):
                for node in layers[level] if level < len(layers) else []:
                    jobs.setdefault(names[node], []).extend((g, node, i) for i in range(len(examples)))
            prompts = {
                name: [self._prompt(graphs[g], node, examples[i], outputs[g][i]) for g, node, i in rows]
                for name, rows in jobs.items()
            }
            texts = ask_each(self.ctx, prompts)
            for name, rows in jobs.items():
                for (g, node, i), text in zip(rows, texts[name], strict=True):
                    outputs[g][i][node] = text
        return outputs

    def _prompt(self, graph: Graph, node: int, example: Example, done: dict[int, str]) -> str:
        previous = graph.predecessors(node)
        if not previous:
            return example.prompt
        return self.params.node_prompt.format(
            question=example.prompt,
            previous=listing("Previous response from node", [done[p] for p in previous], [p + 1 for p in previous]),
        )

    def _fitness(self, vectors: list[np.ndarray]) -> list[float]:
        graphs = [self._decode(v) for v in vectors]
        outputs = self.run_graphs(graphs, self.fitness_examples)
        scores = []
        for graph, rows in zip(graphs, outputs, strict=True):
            values = self.ctx.score(self.fitness_examples, [row[graph.sink] for row in rows])
            scores.append(sum(values) / len(values))
        return scores

    def prepare(self) -> None:
        n = len(self.ctx.pool)
        dev = self.ctx.dataset.dev
        self.fitness_examples = dev[: max(1, math.ceil(len(dev) * self.params.dev_ratio))]
        pso = self.params.pso
        initial = random_particles(pso.population, n * n, self.ctx.settings.seed, low=0.0, high=1.0)
        result = particle_swarm(initial, self._fitness, pso, seed=self.ctx.settings.seed)
        self.graph = self._decode(result.best)
        self.ctx.metrics["swarm"] = {
            "adjacency": np.clip(np.asarray(result.best).reshape(n, n), 0.0, 1.0).round(4).tolist(),
            "graph": self.describe(self.graph),
            "dev_fitness": result.best_fitness,
            "fitness_examples": len(self.fitness_examples),
            "iterations": result.iterations,
            "evaluations": result.evaluations,
            "history": [{"iteration": h["iteration"], "global_best": h["global_best"]} for h in result.history],
        }

    def describe(self, graph: Graph) -> dict:
        names = self.ctx.pool.names
        return {
            "sink": names[graph.sink],
            "edges": [[names[a], names[b]] for a, b in graph.edges()],
            "layers": [[names[n] for n in layer] for layer in graph.layers()],
        }

    def predict(self, examples: list[Example]) -> list[Prediction]:
        (outputs,) = self.run_graphs([self.graph], examples)
        graph = self.describe(self.graph)
        return [
            Prediction(
                output=row[self.graph.sink],
                extras={
                    "graph": graph,
                    "node_outputs": {self.ctx.pool.names[n]: text for n, text in sorted(row.items())},
                },
            )
            for row in outputs
        ]
