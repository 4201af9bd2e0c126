"""The four token-level methods end to end through ``moco run`` with non-default parameters.

Every prediction says who wrote what (spans whose texts make the output, tokens per model that
add up to the spans' and stay within max_new_tokens); metrics.json sums them; a run killed after
its first cached chunk, or cut mid-line in predictions.jsonl, resumes to the same outputs with
every example once.  Pools or parameters a method cannot take are refused in one line, exit 2,
alike at ``moco validate`` and ``moco run``, before any model loads.
"""

from __future__ import annotations

import itertools

import pytest
import yaml

from moco_core.cache import GenerationCache
from moco_core.cli import app
from moco_core.plugins import get_registry
from moco_core.registry import import_object
from moco_core.testing import assert_one_line_error

GENERATION = {"max_new_tokens": 9, "temperature": 0.8, "top_p": 0.9, "seed": 4, "batch_size": 2}
TESTS = 5
METHODS = ("nudging", "switch_generation", "co_llm", "mentor_collab")


def pool(paths, names=("a", "b")) -> list[dict]:
    return [{"name": n, "path": str(p)} for n, p in zip(names, paths, strict=True)]


def setup(method, tiny_pool_paths, other_tokenizer_model):
    """(models, params, name of the method's log) of a run with every parameter off its default."""
    tiny = tiny_pool_paths
    if method == "nudging":
        models = pool([tiny[0], other_tokenizer_model, tiny[1]], ("a", "b", "c"))
        params = {
            "gamma": 0.15,
            "base_model": 1,
            "nudging_model": 0,
            "gamma_search": [0.1, 0.2],
            "search_nudging": True,
        }
        return models, params, "handovers"
    if method == "switch_generation":
        params = {
            "patch_size": 3,
            "selector_model": str(tiny[2]),
            "selector_base_model": "b",
            "rollouts_per_example": 2,
            "train_examples": 1,
            "rollout_score": "scorer",
        }
        return pool([tiny[0], other_tokenizer_model]), params, "switches"
    if method == "co_llm":
        params = {
            "threshold": 0.2,
            "threshold_warmup": "cosine",
            "strategy": "compose",
            "finetune": False,
            "epochs": 1,
            "lr": 1e-3,
        }
        return pool(tiny[:2]), params, "deferred_at"
    return pool(tiny[:2]), {"decision_proportion": 0.7, "patch_size": 3, "mode": "free"}, "consultations"


def check_attribution(lines, names, log):
    assert sorted(line["index"] for line in lines) == list(range(TESTS))
    for line in lines:
        spans, tokens = line["spans"], line["tokens_by_model"]
        assert set(tokens) == set(names) and log in line
        assert "".join(s["text"] for s in spans).strip() == line["output"]
        assert all(s["model"] in names and s["tokens"] > 0 for s in spans)
        assert all(a["model"] != b["model"] for a, b in itertools.pairwise(spans))
        for name in names:
            assert tokens[name] == sum(s["tokens"] for s in spans if s["model"] == name)
        assert 0 < sum(tokens.values()) <= GENERATION["max_new_tokens"]


def check_usage(summary, lines, names):
    usage = summary["usage"]
    totals = {n: sum(line["tokens_by_model"][n] for line in lines) for n in names}
    generated = {
        n: sum(line.get("generated_tokens_by_model", line["tokens_by_model"])[n] for line in lines) for n in names
    }
    assert {n: usage["generated_tokens"][n] for n in names} == generated  # mentor_collab's losing drafts count
    helpers = set(usage["generated_tokens"]) - set(names)  # switch_generation's selector: cost, no answer
    for helper in helpers:
        assert usage["generated_tokens"][helper] == sum(line["generated_tokens_by_model"][helper] for line in lines)
    assert all(generated[n] >= totals[n] for n in names)
    assert usage["token_share"] == pytest.approx({n: totals[n] / sum(totals.values()) for n in names})


@pytest.mark.parametrize("method", METHODS)
def test_non_default_params_attribution_and_resume(api, tiny_pool_paths, other_tokenizer_model, method, monkeypatch):
    models, params, log = setup(method, tiny_pool_paths, other_tokenizer_model)
    names = [m["name"] for m in models]
    data = api.data(
        [(f"dev question {i}", "The answer is 4") for i in range(2)], [(f"q {i}?", "x") for i in range(TESTS)]
    )
    result, run = api.run(method, models, data, params, out="whole", generation=GENERATION)
    assert result.exit_code == 0, result.output
    lines = api.predictions(run)
    check_attribution(lines, names, log)
    check_usage(api.metrics(run), lines, names)
    if method == "nudging":
        chosen = api.metrics(run)["chosen"]
        assert chosen["nudging_model"] in ("a", "c") and chosen["gamma"] in (0.1, 0.15, 0.2)
        assert all(line["tokens_by_model"]["b"] or line["tokens_by_model"][chosen["nudging_model"]] for line in lines)
    if method == "switch_generation":
        for line in lines:
            assert all(e["at_token"] % 3 == 0 and e["model"] in names for e in line["switches"])
    if method == "co_llm":
        assert all(line["tokens_by_model"]["b"] == len(line["deferred_at"]) for line in lines)

    # killed after the first chunk of test rows was cached: the rerun decodes only the rest
    monkeypatch.setattr("moco_methods_api.token_level.CHUNK_BATCHES", 1)
    cls = import_object(get_registry().methods[method].implementation)
    original_put, original_predict, state = GenerationCache.put_many, cls.predict, {"predicting": False, "chunks": 0}

    def predicting(self, examples):
        state["predicting"] = True
        return original_predict(self, examples)

    def killed(self, items):
        if state["predicting"] and any(isinstance(v, dict) and "spans" in v for v in items.values()):
            state["chunks"] += 1
            if state["chunks"] > 1:
                raise KeyboardInterrupt("killed")
        return original_put(self, items)

    fresh_cache = api.root / "second-cache"
    monkeypatch.setenv("MOCO_CACHE_DIR", str(fresh_cache))
    with monkeypatch.context() as patch:
        patch.setattr(GenerationCache, "put_many", killed)
        patch.setattr(cls, "predict", predicting)
        killed_run = api.cli.invoke(app, ["run", str(write_config(api, method, models, data, params, "resumed"))])
    assert killed_run.exit_code == 130 and state["chunks"] == 2, killed_run.output
    result = api.cli.invoke(app, ["run", str(write_config(api, method, models, data, params, "resumed"))])
    assert result.exit_code == 0, result.output
    resumed_run = api.root / "run-resumed"
    assert [line["output"] for line in sorted(api.predictions(resumed_run), key=lambda x: x["index"])] == [
        line["output"] for line in sorted(lines, key=lambda x: x["index"])
    ]
    assert api.metrics(resumed_run)["generations"]["cached"] >= GENERATION["batch_size"]

    # cut mid-line: the rest is written once, the totals cover the whole split
    predictions = resumed_run / "predictions.jsonl"
    kept = predictions.read_text().splitlines(keepends=True)[:2]
    predictions.write_text("".join(kept) + '{"index": 2, "id": "t2", "outp')
    result = api.cli.invoke(app, ["run", str(write_config(api, method, models, data, params, "resumed"))])
    assert result.exit_code == 0, result.output
    again = api.predictions(resumed_run)
    assert sorted(line["index"] for line in again) == list(range(TESTS))
    assert {line["index"]: line["output"] for line in again} == {line["index"]: line["output"] for line in lines}
    check_usage(api.metrics(resumed_run), again, names)


def write_config(api, method, models, data, params, out):
    path = api.root / f"{out}.yaml"
    config = {
        "method": method,
        "params": params,
        "models": models,
        "dataset": {"path": str(data)},
        "output_dir": str(api.root / f"run-{out}"),
        "generation": GENERATION,
    }
    path.write_text(yaml.safe_dump(config))
    return path


OPENAI = {
    "name": "remote",
    "path": "gpt-x",
    "backend": "openai",
    "backend_options": {"base_url": "http://localhost:1/v1"},
}
REFUSALS = [
    ("co_llm", "mixed", {}, "models[1].path", "same tokenizer"),
    ("mentor_collab", "mixed", {}, "models[1].path", "same tokenizer"),
    *((m, "one", {}, "models:", "the pool has 1") for m in METHODS),
    *(
        (m, "remote", {}, "models[1].backend", "openai")
        for m in ("nudging", "switch_generation", "co_llm", "mentor_collab")
    ),
    ("co_llm", "three", {}, "models:", "the pool has 3"),
    ("mentor_collab", "three", {}, "models:", "the pool has 3"),
    ("nudging", "pair", {"base_model": 5}, "params.base_model", "not a pool index"),
    ("nudging", "pair", {"nudging_model": 0}, "params.nudging_model", "must differ"),
    ("nudging", "pair", {"gamma": "high"}, "params", "gamma"),
    ("nudging", "pair", {"gamma_search": [1.5]}, "params", "gamma_search"),
    ("switch_generation", "pair", {"selector_base_model": "nope"}, "params.selector_base_model", "nope"),
    ("switch_generation", "pair", {"selector_model": "/no/such/selector"}, "params.selector_model", "not found"),
    ("switch_generation", "pair", {"patch_size": 0}, "params", "patch_size"),
    ("co_llm", "pair", {"threshold": 2}, "params", "threshold"),
    ("co_llm", "pair", {"strategy": "mix"}, "params", "strategy"),
    ("co_llm", "pair", {"training_dataset": "no_such_data"}, "params.training_dataset", "no_such_data"),
    ("mentor_collab", "pair", {"decision_proportion": 25}, "params", "decision_proportion"),  # the original's integer
    ("mentor_collab", "pair", {"mode": "mlp"}, "params.mlp_path", "required"),
]


@pytest.mark.parametrize(("method", "kind", "params", "field", "fragment"), REFUSALS)
def test_refusals_are_one_line_alike_at_validate_and_run_before_loading(
    api, tiny_pool_paths, other_tokenizer_model, monkeypatch, method, kind, params, field, fragment
):
    tiny = [str(p) for p in tiny_pool_paths]
    models = {
        "mixed": pool([tiny[0], other_tokenizer_model]),
        "one": pool(tiny[:1], ("a",)),
        "remote": [*pool(tiny[:1], ("a",)), OPENAI],
        "three": pool(tiny, ("a", "b", "c")),
        "pair": pool(tiny[:2]),
    }[kind]
    data = api.data([("dev question", "x")], [("q", "x")])
    config = write_config(api, method, models, data, params, "refused")

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("moco_core.backends.hf.HFBackend.load", no_loading)
    checked = api.cli.invoke(app, ["validate", str(config)])
    ran = api.cli.invoke(app, ["run", str(config)])
    assert_one_line_error(checked, field, fragment)
    assert_one_line_error(ran, field, fragment)
    assert checked.output == ran.output
