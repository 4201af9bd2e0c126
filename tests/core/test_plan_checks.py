"""Method checks run at plan time (``Method.check``), so `validate` refuses exactly what `run` would.

Pool members use the scripted backend with paths that have no responder: loading one raises
``OSError``, so a refusal with exit code 2 and one line proves no model was loaded.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import yaml
from typer.testing import CliRunner

from moco_core.cli import app
from moco_core.errors import MocoError
from moco_core.hookspecs import hookimpl
from moco_core.method import Method
from moco_core.plugins import get_registry
from moco_core.registry import MethodSpec
from moco_core.testing import (
    ScriptedBackend,
    registered_plugin,
    scripted_plugins,
)
from moco_core.types import Prediction
from moco_core.validation import RunPlan

cli = CliRunner()
NO_DEV = "dataset: letters has no dev split, which {} needs ({})"
DEV_BEST = "it picks the dev-best member"
NEEDS_DEV = "dataset: letters has no dev split, which {} needs (it selects, ranks or trains on dev)"
NOT_HF = "models[0].backend: {} trains its models, which needs backend 'hf', not 'scripted'"

CASES = [
    (
        "majority_vote",
        {"tie_break": "dev"},
        2,
        0,
        NO_DEV.format("majority_vote", "tie_break 'dev' ranks members by dev score"),
    ),
    ("self_consistency", {"model": "nobody"}, 2, 1, "params.model: 'nobody' is not a pool model (pool: m1, m2)"),
    ("self_consistency", {}, 2, 0, NO_DEV.format("self_consistency", DEV_BEST)),
    ("slm_mux", {"tie_break": "dev"}, 2, 0, NO_DEV.format("slm_mux", "tie_break 'dev' ranks members by dev score")),
    ("multiagent_debate", {}, 2, 0, NO_DEV.format("multiagent_debate", DEV_BEST)),
    ("multiagent_feedback", {}, 2, 0, NO_DEV.format("multiagent_feedback", DEV_BEST)),
    ("knowledge_card", {}, 2, 0, NO_DEV.format("knowledge_card", DEV_BEST)),
    ("mixture_of_agents", {}, 2, 0, NO_DEV.format("mixture_of_agents", DEV_BEST)),
    ("structured_interaction", {"structure": "chain"}, 2, 0, NO_DEV.format("structured_interaction", DEV_BEST)),
    (
        "structured_interaction",
        {"structure": "circle"},
        2,
        1,
        "params.structure: 'circle' needs at least 3 models, the pool has 2",
    ),
    (
        "structured_interaction",
        {"structure": "adjacency"},
        2,
        1,
        "params.adjacency: structure 'adjacency' needs the matrix",
    ),
    (
        "structured_interaction",
        {"structure": "adjacency", "adjacency": [[0, 1, 0]] * 3},
        2,
        1,
        "params.adjacency: must be 2x2 for a pool of 2 models",
    ),
    (
        "structured_interaction",
        {"structure": "chain", "adjacency": [[0, 1], [1, 0]]},
        2,
        1,
        "params.adjacency: only used with structure 'adjacency', not 'chain'",
    ),
    ("blackboard", {"agents_per_turn": 3}, 2, 1, "params.agents_per_turn: 3 exceeds the 2 agents"),
    (
        "blackboard",
        {"agents_per_turn": 2, "stop_votes": 3},
        2,
        1,
        "params.stop_votes: 3 can never be reached with agents_per_turn 2",
    ),
    ("blackboard", {"same_model": True}, 2, 0, NO_DEV.format("blackboard", DEV_BEST)),
    ("heterogeneous_swarms", {}, 2, 0, NO_DEV.format("heterogeneous_swarms", "PSO fitness is the dev score")),
    ("multiagent_finetuning", {}, 2, 0, NO_DEV.format("multiagent_finetuning", "it trains on dev debates")),
    ("multiagent_finetuning", {}, 2, 1, NOT_HF.format("multiagent_finetuning")),
    ("agglm", {}, 2, 0, NO_DEV.format("agglm", "it trains the aggregator on dev")),
    ("agglm", {"aggregator_model": "nobody"}, 2, 1, "params.aggregator_model: 'nobody' is not a pool model"),
    ("agglm", {}, 2, 1, NOT_HF.format("agglm")),
    ("llm_blender", {"ranker_model": "nobody"}, 2, 1, "params.ranker_model: 'nobody' is not a pool model"),
    ("llm_blender", {"fuser_model": "nobody"}, 2, 1, "params.fuser_model: 'nobody' is not a pool model"),
    ("llm_blender", {}, 2, 0, NO_DEV.format("llm_blender", DEV_BEST)),
    (
        "llm_blender",
        {"ranker_model": "m1", "fuser_model": "m2", "train_fuser": True},
        2,
        0,
        NO_DEV.format("llm_blender", "train_ranker and train_fuser train on dev"),
    ),
    ("llm_blender", {"train_ranker": True}, 2, 1, NOT_HF.format("llm_blender")),
    ("sparta", {}, 3, 0, NO_DEV.format("sparta", "duels, judging and the final choice use dev")),
    ("sparta", {}, 3, 1, NOT_HF.format("sparta")),
    ("prompt_routing", {"router": "nobody"}, 2, 1, "params.router: 'nobody' is not a pool model (pool: m1, m2)"),
    ("trained_router", {"router_base_model": "nobody"}, 2, 1, "params.router_base_model: 'nobody' is not a pool model"),
    ("trained_router", {}, 2, 0, "dataset: trained_router labels and trains on the dev split"),
    ("switch_generation", {"selector_base_model": "nobody"}, 2, 1, "params.selector_base_model: 'nobody' is not"),
    ("switch_generation", {}, 2, 0, "dataset: switch_generation trains its selector on dev"),
    ("nudging", {"base_model": 5}, 2, 1, "params.base_model: 5 is not a pool index (pool has 2 models)"),
    (
        "nudging",
        {"base_model": 1, "nudging_model": 1},
        2,
        1,
        "params.nudging_model: must differ from params.base_model",
    ),
    ("co_llm", {"training_dataset": "nope"}, 2, 1, "params.training_dataset: unknown dataset 'nope'"),
    ("co_llm", {}, 2, 0, "dataset: co_llm trains on the dev split's gold answers"),
    ("single_model", {}, 2, 0, NEEDS_DEV.format("single_model")),
    ("prompt_routing", {"router": "m1"}, 2, 0, NEEDS_DEV.format("prompt_routing")),
    ("oracle_routing", {}, 2, 0, NEEDS_DEV.format("oracle_routing")),
    ("graph_router", {}, 2, 0, NEEDS_DEV.format("graph_router")),
    ("graph_router", {"model_costs": [1.0]}, 2, 1, "params.model_costs: expected 2 costs (one per pool model), got 1"),
    ("graph_router", {"model_costs": [1.0, float("inf")]}, 2, 1, "params: model_costs.1: Input should be a finite"),
    ("graph_router", {"embedding_model": "/nonexistent/encoder"}, 2, 1, "params.embedding_model: /nonexistent/encoder"),
    ("cascade", {}, 2, 0, "dataset: cascade sets each member's threshold from its dev confidences"),
    ("nudging", {"gamma_search": [0.2, 0.4]}, 2, 0, "dataset: nudging's params.gamma_search picks on dev"),
    ("nudging", {"search_nudging": True}, 3, 0, "dataset: nudging's params.search_nudging picks on dev"),
    ("switch_generation", {"selector_model": "/nonexistent/selector"}, 2, 0, "params.selector_model: /nonexistent/"),
    (
        "switch_generation",
        {"reward_model": "/nonexistent/rm"},
        2,
        1,
        "params.reward_model: /nonexistent/rm: model folder",
    ),
    ("trained_router", {"hyperparameters": {"bogus": 1}}, 2, 1, "params.hyperparameters: bogus: unknown key"),
    ("trained_router", {"hyperparameters": {"lora_r": "x"}}, 2, 1, "params.hyperparameters: lora_r: Input should be"),
    ("trained_router", {"hyperparameters": {"epochs": 3}}, 2, 1, "params.hyperparameters.epochs: set params.epochs"),
    ("trained_router", {"reward_model": "/nonexistent/rm"}, 2, 1, "params.reward_model: /nonexistent/rm: model folder"),
    ("mentor_collab", {"mode": "mlp"}, 2, 0, "params.mlp_path: required when mode is mlp"),
    (
        "mentor_collab",
        {"mode": "mlp", "mlp_path": "/nonexistent/mlp.pth"},
        2,
        0,
        "params.mlp_path: /nonexistent/mlp.pth",
    ),
    (
        "mentor_collab",
        {"mlp_path": "/nonexistent/mlp.pth"},
        2,
        0,
        "params.mlp_path: only used with mode mlp, not 'free'",
    ),
    ("mentor_collab", {"mlp_threshold": 0.7}, 2, 0, "params.mlp_threshold: only used with mode mlp, not 'free'"),
    ("logit_fusion", {"weights": [1.0]}, 2, 0, "params.weights: expected 2 weights (one per pool model), got 1"),
    ("logit_fusion", {"weights": [0.0, 0.0]}, 2, 0, "params.weights: at least one weight must be positive"),
    ("logit_fusion", {"weights": [float("inf"), 1.0]}, 2, 0, "params: weights.0: Input should be a finite number"),
    ("logit_contrastive", {}, 2, 0, NEEDS_DEV.format("logit_contrastive")),
    ("logit_contrastive", {"alpha": float("nan")}, 2, 1, "params: alpha: Input should be a finite number"),
]


@pytest.fixture()
def scripted(fresh_cache_dir):
    with scripted_plugins("tt"):
        yield


def write_config(tmp_path, method: str, params: dict, n_models: int, n_dev: int) -> str:
    def item(split: str, i: int) -> dict:
        return {"id": f"{split}{i}", "question": f"{split} {i}", "choices": {"A": "a", "B": "b"}, "answer": "A"}

    data = tmp_path / "letters.json"
    body = {"name": "letters", "task_type": "letter", "dev": [item("dev", i) for i in range(n_dev)]}
    data.write_text(json.dumps({**body, "test": [item("test", i) for i in range(2)]}))
    models = [
        {"name": f"m{i}", "path": f"plancheck-unloadable-{i}", "backend": "scripted", "description": f"model {i}"}
        for i in range(1, n_models + 1)
    ]
    config = {
        "method": method,
        "params": params,
        "models": models,
        "dataset": {"path": str(data)},
        "output_dir": str(tmp_path / "run"),
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def refusal(command: str, config: str) -> str:
    """The one error line of a refused command (asserting exit code 2 and nothing else printed)."""
    result = cli.invoke(app, [command, config])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert not result.stdout.strip()
    return lines[0]


@pytest.mark.parametrize(("method", "params", "n_models", "n_dev", "message"), CASES)
def test_validate_refuses_what_run_refuses_before_loading(scripted, tmp_path, method, params, n_models, n_dev, message):
    if method not in get_registry().methods:
        pytest.skip(f"{method} is not installed")
    config = write_config(tmp_path, method, params, n_models, n_dev)
    validated = refusal("validate", config)
    assert message in validated
    assert refusal("run", config) == validated
    assert ScriptedBackend.calls == []
    assert not (tmp_path / "run").exists()


class PickyMethod(Method):
    """A third-party method whose check reads params, pool configs and the dataset."""

    seen: list[RunPlan] = []  # noqa: RUF012 - plans the check was given, for the test to inspect

    @classmethod
    def check(cls, plan: RunPlan) -> None:
        cls.seen.append(plan)
        if plan.dataset.task_type != "letter" or "m1" not in plan.pool_names:
            raise MocoError("models: picky_method needs a member named m1 and letter data")

    def predict(self, examples):
        return [Prediction(output="A") for _ in examples]


class PickyPlugin:
    @hookimpl
    def moco_register_methods(self, register: Callable[..., None]) -> None:
        register(MethodSpec(key="picky_method", level="other", implementation=f"{__name__}:PickyMethod", summary="t"))


def test_a_plugin_method_check_runs_at_plan_time(scripted, tmp_path):
    PickyMethod.seen.clear()
    with registered_plugin(PickyPlugin(), "picky"):
        ok = write_config(tmp_path, "picky_method", {}, 2, 0)
        result = cli.invoke(app, ["validate", ok])
        assert result.exit_code == 0, result.output
        assert PickyMethod.seen[-1].pool_names == ["m1", "m2"]
        config = yaml.safe_load((tmp_path / "config.yaml").read_text())
        config["models"][0]["name"] = "other"
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
        validated = refusal("validate", ok)
        assert "picky_method needs a member named m1" in validated
        assert refusal("run", ok) == validated
    assert ScriptedBackend.calls == []
