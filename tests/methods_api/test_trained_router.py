"""trained_router learns, through the training hook, to send domain k to the model right on domain k."""

from __future__ import annotations

import pytest

from moco_core.testing import set_responder
from moco_methods_api.trained_router import best_member, parse_route

pytestmark = pytest.mark.slow

DOMAINS = ["math", "history", "code"]


def test_labels_break_ties_by_reward_then_index():
    assert best_member([0.0, 1.0, 1.0]) == 1
    assert best_member([0.0, 1.0, 1.0], [0.0, 0.2, 0.9]) == 2
    assert best_member([1.0, 1.0], [0.5, 0.5]) == 0
    assert parse_route("Model 3", 3) == 2 and parse_route("Model 4", 3) is None


def test_router_routes_each_domain_to_its_model(api, trainable_tiny_model):
    pytest.importorskip("trl")
    models = [{"name": "router", "path": str(trainable_tiny_model)}]
    for domain in DOMAINS:
        set_responder(f"tr-{domain}", lambda r, d=domain: "right" if r.prompt.startswith(d) else "wrong")
        models.append(
            {"name": domain, "path": f"tr-{domain}", "backend": "scripted", "description": f"{domain} expert"}
        )
    dev = [(f"{DOMAINS[i % 3]} question {i}", "right") for i in range(24)]
    test = [(f"{DOMAINS[i % 3]} problem {100 + i}", "right") for i in range(30)]
    linear = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    params = {
        "epochs": 60,
        "lr": 2e-3,
        "hyperparameters": {"batch_size": 4, "grad_accum": 1, "lora_target_modules": linear},
    }
    result, run = api.run(
        "trained_router", models, api.data(dev, test), params, generation={"max_new_tokens": 4, "temperature": 0.0}
    )
    assert result.exit_code == 0, result.output
    lines = api.predictions(run)
    right = sum(line["routed_to"] == line["input"].split()[0] for line in lines)
    assert right >= 27, [line["router_reply"] for line in lines]
    assert api.metrics(run)["router"]["dev_labels"] == {"router": 0, "math": 8, "history": 8, "code": 8}
