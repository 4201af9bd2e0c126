"""cascade beyond the happy path: non-default defer fractions, self_ask's last member, a last member
without log-probs, and resuming with the deferral chains intact."""

from __future__ import annotations

import pytest

from moco_methods_api.cascade import SELF_ASK

# (model path, prompt) -> (answer, per-token top-1 probabilities, or None for a server without log-probs)
SCRIPT: dict[tuple[str, str], tuple[str, list[float] | None]] = {}
NAMES = ("weak", "mid", "strong")


@pytest.fixture()
def scripted(api, confident_members):
    confident_members(SCRIPT)
    return api


def models(names=NAMES) -> list[dict]:
    return [{"name": n, "path": n, "backend": "scripted"} for n in names]


def script_three_levels(test_conf: dict[str, tuple[float, float]]) -> None:
    dev_conf = {"weak": [0.1, 0.2, 0.3, 0.4, 0.5], "mid": [0.5, 0.6, 0.7, 0.8, 0.9]}
    for name in NAMES:
        for i in range(5):
            SCRIPT[(name, f"dev {i}")] = (f"{name} dev", [dev_conf.get(name, [1.0] * 5)[i]])
        for item, (weak, mid) in test_conf.items():
            value = {"weak": weak, "mid": mid, "strong": 0.5}[name]
            SCRIPT[(name, f"test {item}")] = (f"{name} says {item}", [value, value, value])


@pytest.mark.parametrize(
    ("defer_fraction", "thresholds", "routes"),
    [
        (0.0, {"weak": 0.1, "mid": 0.5}, ["weak", "weak", "mid", "weak"]),
        (1.0, {"weak": 0.5, "mid": 0.9}, ["strong", "weak", "strong", "mid"]),
        (0.25, {"weak": 0.2, "mid": 0.6}, ["weak", "weak", "strong", "mid"]),
    ],
)
def test_thresholds_follow_defer_fraction_per_member(scripted, defer_fraction, thresholds, routes):
    api = scripted
    test_conf = {"a": (0.3, 0.1), "b": (0.5, 0.1), "c": (0.05, 0.55), "d": (0.15, 0.95)}
    script_three_levels(test_conf)
    data = api.data([(f"dev {i}", "x") for i in range(5)], [(f"test {k}", "x") for k in test_conf])
    result, run = api.run("cascade", models(), data, {"defer_fraction": defer_fraction})
    assert result.exit_code == 0, result.output
    summary = api.metrics(run)
    assert summary["thresholds"] == {k: pytest.approx(v) for k, v in thresholds.items()}
    lines = api.predictions(run)
    assert [line["routed_to"] for line in lines] == routes
    for line, item in zip(lines, test_conf, strict=True):
        assert line["output"] == f"{line['routed_to']} says {item}"
        for step in line["deferral_chain"][:-1]:
            assert step["threshold"] == pytest.approx(thresholds[step["model"]])
            assert step["deferred"] == (step["confidence"] < step["threshold"])
        assert line["deferral_chain"][-1]["deferred"] is False
        assert line["tokens_by_model"] == {step["model"]: 3 for step in line["deferral_chain"]}
    share = summary["usage"]["query_share"]
    assert share == {n: routes.count(n) / 4 for n in NAMES} and sum(share.values()) == pytest.approx(1.0)


def test_self_ask_gives_the_last_member_the_plain_prompt(scripted):
    # The last member cannot defer; asking it to reply 'unconfident' could only turn its answer into that word.
    api = scripted
    SCRIPT[("weak", "test a" + SELF_ASK)] = ("unconfident", [0.5])
    SCRIPT[("weak", "test b" + SELF_ASK)] = ("weak answer", [0.5])
    SCRIPT[("strong", "test a")] = ("strong answer", [0.5])
    data = api.data([], [("test a", "x"), ("test b", "x")])
    result, run = api.run("cascade", models(("weak", "strong")), data, {"confidence": "self_ask"})
    assert result.exit_code == 0, result.output
    lines = api.predictions(run)
    assert [line["output"] for line in lines] == ["strong answer", "weak answer"]
    assert [s["deferred"] for s in lines[0]["deferral_chain"]] == [True, False]
    assert api.metrics(run)["usage"]["query_share"] == {"weak": 0.5, "strong": 0.5}


def test_a_last_member_without_log_probs_still_answers(scripted):
    # validate lets the last member be a backend without log-probs (it never defers); the run must agree.
    api = scripted
    for i in range(2):
        SCRIPT[("weak", f"dev {i}")] = ("weak dev", [0.2 + 0.4 * i])
    SCRIPT[("weak", "test a")] = ("weak says a", [0.1])
    SCRIPT[("strong", "test a")] = ("strong says a", None)
    data = api.data([("dev 0", "x"), ("dev 1", "x")], [("test a", "x")])
    result, run = api.run("cascade", models(("weak", "strong")), data)
    assert result.exit_code == 0, result.output
    [line] = api.predictions(run)
    assert line["output"] == "strong says a"
    assert line["deferral_chain"][-1] == {"model": "strong", "confidence": None, "deferred": False}


def test_resumed_cascade_keeps_chains_and_whole_totals(scripted):
    api = scripted
    test_conf = {k: (0.05 + 0.1 * i, 0.55 + 0.1 * (i % 4)) for i, k in enumerate("abcdefgh")}
    script_three_levels(test_conf)
    data = api.data([(f"dev {i}", "x") for i in range(5)], [(f"test {k}", "x") for k in test_conf])
    result, run = api.run("cascade", models(), data)
    assert result.exit_code == 0, result.output
    full, summary = api.predictions(run), api.metrics(run)
    predictions = run / "predictions.jsonl"
    kept = predictions.read_text().splitlines(keepends=True)[:3]
    predictions.write_text("".join(kept) + '{"index": 3, "id": "t3", "outp')  # killed mid-line
    again, _ = api.run("cascade", models(), data)
    assert again.exit_code == 0, again.output
    resumed = api.predictions(run)
    assert [line["index"] for line in resumed] == list(range(8))
    strip = ("output", "routed_to", "deferral_chain", "tokens_by_model")
    assert [{k: line[k] for k in strip} for line in resumed] == [{k: line[k] for k in strip} for line in full]
    assert api.metrics(run)["usage"] == summary["usage"]
