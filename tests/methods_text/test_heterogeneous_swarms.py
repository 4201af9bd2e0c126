from __future__ import annotations

import numpy as np
import pytest

from moco_methods_text.swarm_graph import decode_graph


def is_dag_in_tree(successor: list, sink: int) -> bool:
    """Every node reaches the sink by following successors, without revisiting a node."""
    for start in range(len(successor)):
        seen, node = set(), start
        while node != sink:
            if node in seen or successor[node] is None:
                return False
            seen.add(node)
            node = successor[node]
    return successor[sink] is None


@pytest.mark.parametrize("seed", range(20))
def test_every_matrix_decodes_to_a_spanning_in_tree(seed):
    n = 2 + seed % 4
    vector = np.random.default_rng(seed).uniform(-0.5, 1.5, n * n)
    graph = decode_graph(vector, n, top_p=0.7, seed=3)
    assert is_dag_in_tree(graph.successor, graph.sink)
    assert sorted(graph.order) == list(range(n))
    flat = [node for layer in graph.layers() for node in layer]
    assert sorted(flat) == list(range(n)) and graph.layers()[-1] == [graph.sink]
    position = {node: k for k, layer in enumerate(graph.layers()) for node in layer}
    assert all(position[a] < position[b] for a, b in graph.edges())
    assert decode_graph(vector, n, 0.7, seed=3) == graph  # seeded by the matrix: the dev graph is the test graph


def test_top_p_small_takes_the_most_likely_draws():
    matrix = np.array([[0, 1, 1], [0.1, 0, 0], [1, 0.5, 0]], dtype=float)
    graph = decode_graph(matrix.ravel(), 3, top_p=0.01)
    assert graph.sink == 1  # smallest row sum
    assert graph.order[1] == 0 and graph.successor[0] == 1  # largest row sum next, to the only placed node
    assert graph.successor[2] == 0  # node 2's strongest edge among placed nodes


def node(name: str, good: bool):
    def respond(request):
        prompt = request.prompt
        if "Previous response from node" in prompt:
            inputs = prompt.split("Responses from earlier nodes:")[1]
            return f"{'A' if good else 'D'} from {name} after {inputs.count('Previous response')}"
        return f"{'A' if good else 'D'} first from {name}"

    return respond


def test_the_sink_answers_and_the_graph_is_recorded(text):
    models = text.pool({"x": node("x", False), "y": node("y", True), "z": node("z", False)})
    params = {"pso": {"population": 6, "max_iterations": 3}, "dev_ratio": 0.5}
    lines = text.ok("heterogeneous_swarms", models, params, data=text.data(n_test=2, n_dev=4))
    swarm = text.metrics()["swarm"]
    assert swarm["fitness_examples"] == 2 and swarm["dev_fitness"] == 1.0
    graph = lines[0]["graph"]
    assert graph == swarm["graph"] and graph["sink"] == "y"
    assert graph["layers"][-1] == ["y"] and sorted(n for layer in graph["layers"] for n in layer) == ["x", "y", "z"]
    assert all(a != b for a, b in graph["edges"]) and len(graph["edges"]) == 2
    assert lines[0]["output"] == lines[0]["node_outputs"]["y"] and lines[0]["score"] == 1.0
    again = text.ok("heterogeneous_swarms", models, params, data=text.data(n_test=2, n_dev=4), out="again")
    assert again == lines


def test_needs_a_dev_split(text):
    models = text.pool({"x": "A", "y": "B"})
    result = text.run("heterogeneous_swarms", models, data=text.data(n_dev=0))
    assert result.exit_code == 2 and "no dev split" in result.output
