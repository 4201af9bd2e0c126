"""Bad routing configs: one line, exit code 2, before any model loads, and the same at validate and run."""

from __future__ import annotations

import pytest
import yaml

from moco_core.cli import app
from moco_core.testing import assert_one_line_error, set_responder

CASES = [
    ("prompt_routing", {"router": "zz"}, {}, "params.router"),
    ("prompt_routing", {"router": 1}, {}, "router"),
    ("prompt_routing", {}, {"descriptions": False}, "description"),
    ("prompt_routing", {}, {"dev": False}, "dev split"),
    ("trained_router", {"router_base_model": "zz"}, {}, "params.router_base_model"),
    ("trained_router", {"epochs": 0}, {}, "epochs"),
    ("trained_router", {"lr": "fast"}, {}, "lr"),
    ("trained_router", {}, {"dev": False}, "dev split"),
    ("trained_router", {"reward_model": "/nonexistent/rm"}, {}, "params.reward_model"),
    ("trained_router", {"hyperparameters": {"epochs": 1}}, {}, "params.hyperparameters.epochs"),
    ("trained_router", {}, {}, "models[0].backend"),  # a text-only member cannot be LoRA-trained as the router
    ("trained_router", {"router_base_model": "b"}, {}, "models[1].backend"),
    ("graph_router", {"model_costs": [1.0]}, {}, "params.model_costs"),
    ("graph_router", {"model_costs": [1.0, 2.0, 3.0, 4.0]}, {}, "params.model_costs"),
    ("graph_router", {"model_costs": [1.0, -2.0, 3.0]}, {}, "model_costs"),
    ("graph_router", {"model_costs": "cheap"}, {}, "model_costs"),
    ("graph_router", {"scenario": "fast"}, {}, "scenario"),
    ("graph_router", {"hidden_dim": 0}, {}, "hidden_dim"),
    ("graph_router", {"embedding_model": "/nonexistent/encoder"}, {}, "params.embedding_model"),
    ("graph_router", {}, {"dev": False}, "dev split"),
    ("graph_router", {}, {"models": 1}, "models"),
    ("cascade", {"defer_fraction": 1.5}, {}, "defer_fraction"),
    ("cascade", {"defer_fraction": "half"}, {}, "defer_fraction"),
    ("cascade", {"confidence": "logit"}, {}, "confidence"),
    ("cascade", {"thresholds": [0.5, 0.6]}, {}, "thresholds"),
    ("cascade", {}, {"dev": False}, "dev split"),
    ("cascade", {}, {"models": 1}, "models"),
    ("random_routing", {"seed": 3}, {}, "seed"),
    ("random_routing", {}, {"models": 1}, "models"),
    ("oracle_routing", {}, {"dev": False}, "dev split"),
    ("single_model", {}, {"dev": False}, "dev split"),
]


@pytest.mark.parametrize(("method", "params", "shape", "field"), CASES)
def test_refused_in_one_line_at_validate_and_run_alike(api, method, params, shape, field):
    names = "abc"[: shape.get("models", 3)]
    for name in names:
        set_responder(name, "x")
    models = [{"name": n, "path": n, "backend": "scripted"} for n in names]
    if shape.get("descriptions", True):
        models = [{**m, "description": f"{m['name']} model"} for m in models]
    dev = [] if shape.get("dev") is False else [("dev q", "x")]
    config = {
        "method": method,
        "params": params,
        "models": models,
        "dataset": {"path": str(api.data(dev, [("test q", "x")]))},
        "output_dir": str(api.root / "run"),
    }
    path = api.root / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    checked = api.cli.invoke(app, ["validate", str(path)])
    ran = api.cli.invoke(app, ["run", str(path)])
    assert_one_line_error(checked, field)
    assert_one_line_error(ran, field)
    assert checked.output == ran.output
    assert not (api.root / "run" / "predictions.jsonl").exists()


def test_graph_router_without_torch_geometric_is_refused_at_validate(api, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch_geometric" else real(name, *a)
    )
    for name in "ab":
        set_responder(name, "x")
    config = {
        "method": "graph_router",
        "models": [{"name": n, "path": n, "backend": "scripted"} for n in "ab"],
        "dataset": {"path": str(api.data([("dev q", "x")], [("test q", "x")]))},
        "output_dir": str(api.root / "run"),
    }
    path = api.root / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert_one_line_error(api.cli.invoke(app, ["validate", str(path)]), "torch-geometric")
