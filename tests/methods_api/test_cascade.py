"""cascade: each member defers exactly when its confidence is under its own dev-quantile threshold."""

from __future__ import annotations

import math

import pytest

from moco_core.errors import MocoError
from moco_core.types import Generation
from moco_methods_api.cascade import confidence, threshold

# (model path, prompt) -> (answer, per-token top-1 probabilities)
SCRIPT: dict[tuple[str, str], tuple[str, list[float]]] = {}


@pytest.fixture()
def scripted_confidence(api, confident_members):
    confident_members(SCRIPT)
    return api


def test_confidence_is_the_mean_top1_probability():
    assert confidence(Generation("x", top_logprobs=[math.log(0.5), 0.0])) == pytest.approx(0.75)
    assert confidence(Generation("", top_logprobs=[])) == 0.0
    with pytest.raises(MocoError, match="model 'remote' returned no token log-probabilities"):
        confidence(Generation("an answer"), "remote")  # a server without log-probs must not silently never defer
    assert threshold([0.1, 0.2, 0.3, 0.4], 0.5) == pytest.approx(0.25)


def test_each_member_defers_under_its_own_threshold(scripted_confidence, tmp_path):
    api = scripted_confidence
    dev_conf = {"weak": [0.1, 0.2, 0.3, 0.4], "mid": [0.6, 0.7, 0.8, 0.9]}  # thresholds 0.25 and 0.75
    test_conf = {  # item -> (weak's confidence, mid's confidence)
        "a": (0.3, 0.1),  # weak keeps
        "b": (0.2, 0.8),  # weak defers, mid keeps
        "c": (0.2, 0.7),  # both defer: 0.7 would pass weak's threshold, not mid's own
        "d": (0.25, 0.1),  # exactly at the threshold: kept
    }
    for name in ("weak", "mid", "strong"):
        for i in range(4):
            SCRIPT[(name, f"dev {i}")] = (f"{name} dev", [dev_conf[name][i]] if name in dev_conf else [1.0])
        for item, (weak, mid) in test_conf.items():
            value = {"weak": weak, "mid": mid, "strong": 0.5}[name]
            SCRIPT[(name, f"test {item}")] = (f"{name} says {item}", [value, value])
    data = api.data([(f"dev {i}", "x") for i in range(4)], [(f"test {k}", "x") for k in test_conf])
    models = [{"name": n, "path": n, "backend": "scripted"} for n in ("weak", "mid", "strong")]
    result, run = api.run("cascade", models, data)
    assert result.exit_code == 0, result.output
    lines = api.predictions(run)
    assert [line["routed_to"] for line in lines] == ["weak", "mid", "strong", "weak"]
    assert [line["output"] for line in lines] == ["weak says a", "mid says b", "strong says c", "weak says d"]
    chain = lines[2]["deferral_chain"]
    assert [(s["model"], s["deferred"]) for s in chain] == [("weak", True), ("mid", True), ("strong", False)]
    assert chain[0]["threshold"] == pytest.approx(0.25) and chain[1]["threshold"] == pytest.approx(0.75)
    assert chain[1]["confidence"] == pytest.approx(0.7) and "threshold" not in chain[2]
    summary = api.metrics(run)
    assert summary["thresholds"] == {"weak": pytest.approx(0.25), "mid": pytest.approx(0.75)}
    assert summary["usage"]["query_share"] == {"weak": 0.5, "mid": 0.25, "strong": 0.25}
    assert summary["usage"]["generated_tokens"] == {"weak": 8, "mid": 4, "strong": 2}


def test_self_ask_defers_when_the_model_says_unconfident(scripted_confidence):
    api = scripted_confidence
    suffix = "\n\nIf you are not confident that your answer is correct, reply only with the word 'unconfident'."
    for item, reply in {"a": "Unconfident.", "b": "42"}.items():
        SCRIPT[("weak", f"test {item}{suffix}")] = (reply, [0.01])
        SCRIPT[("strong", f"test {item}")] = ("strong answer", [0.01])  # the last member is not asked
    data = api.data([], [("test a", "x"), ("test b", "x")])
    models = [{"name": n, "path": n, "backend": "scripted"} for n in ("weak", "strong")]
    result, run = api.run("cascade", models, data, params={"confidence": "self_ask"})
    assert result.exit_code == 0, result.output
    assert [line["output"] for line in api.predictions(run)] == ["strong answer", "42"]


def test_bad_defer_fraction_is_refused_before_loading(api):
    models = [{"name": n, "path": n, "backend": "scripted"} for n in ("weak", "strong")]
    result, _ = api.run("cascade", models, api.data([], [("q", "x")]), params={"defer_fraction": 1.5})
    assert result.exit_code == 2 and "defer_fraction" in result.output
