"""Acceptance audit of the four token-level methods through ``moco run``: edge cases the other
tests leave out (1-2 new tokens, empty and unicode prompts, batch sizes, per-member system
prompts, bad parameters, a given selector without dev data, logs against spans), and the
defects the audit found: too few resident models, co_llm's training_dataset rows, tokenizers
without tokenizer.json, an unloadable or unreachable selector / reward model, the selector's
tokens left out of the cost."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable

import pytest
import yaml

from moco_core.cli import app
from moco_core.errors import MocoError
from moco_core.hookspecs import hookimpl
from moco_core.registry import DatasetSpec
from moco_core.testing import assert_one_line_error, registered_plugin

METHODS = ("nudging", "switch_generation", "co_llm", "mentor_collab")


def pool(paths, names=("a", "b")) -> list[dict]:
    return [{"name": n, "path": str(p)} for n, p in zip(names, paths, strict=True)]


def members(method, tiny, other) -> list[dict]:
    """Different tokenizers where the method allows them."""
    if method in ("nudging", "switch_generation"):
        return pool([tiny[0], other])
    return pool(tiny[:2])


def params_of(method, tiny, **extra) -> dict:
    base = {
        "nudging": {"gamma": 0.3},
        "switch_generation": {"patch_size": 2, "selector_model": str(tiny[2])},
        "co_llm": {"finetune": False, "threshold": 0.3},
        "mentor_collab": {"decision_proportion": 0.8, "patch_size": 2},
    }[method]
    return {**base, **extra}


def check_lines(lines, names, limit):
    for line in lines:
        spans, tokens = line["spans"], line["tokens_by_model"]
        assert "".join(s["text"] for s in spans).strip() == line["output"]
        assert all(a["model"] != b["model"] for a, b in itertools.pairwise(spans))
        for name in names:
            assert tokens[name] == sum(s["tokens"] for s in spans if s["model"] == name)
        assert sum(tokens.values()) <= limit


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("limit", [1, 2])
def test_one_or_two_new_tokens(api, tiny_pool_paths, other_tokenizer_model, method, limit):
    models = members(method, tiny_pool_paths, other_tokenizer_model)
    data = api.data([("dev q", "x")], [("What is 2 + 3?", "x"), ("Why?", "x")])
    generation = {"max_new_tokens": limit, "temperature": 0.0}
    result, run = api.run(method, models, data, params_of(method, tiny_pool_paths), generation=generation)
    assert result.exit_code == 0, result.output
    lines = api.predictions(run)
    check_lines(lines, [m["name"] for m in models], limit)
    usage = api.metrics(run)["usage"]
    if "token_share" in usage:
        assert sum(usage["token_share"].values()) == pytest.approx(1.0)


@pytest.mark.parametrize("method", METHODS)
def test_unicode_and_blank_prompts(api, tiny_pool_paths, other_tokenizer_model, method):
    models = members(method, tiny_pool_paths, other_tokenizer_model)
    tests = [("😀🎉", "x"), ("Café 日本語 ñ", "x"), ("   ", "x"), ("\n\n", "x")]
    data = api.data([("dev q", "x")], tests)
    generation = {"max_new_tokens": 6, "temperature": 0.7, "seed": 3}
    result, run = api.run(method, models, data, params_of(method, tiny_pool_paths), generation=generation)
    assert result.exit_code == 0, result.output
    lines = api.predictions(run)
    assert sorted(line["index"] for line in lines) == list(range(len(tests)))
    check_lines(lines, [m["name"] for m in models], 6)


@pytest.mark.parametrize("method", METHODS)
def test_sampled_outputs_do_not_depend_on_batch_size(api, tiny_pool_paths, other_tokenizer_model, method, monkeypatch):
    """Batch size 1 and one batch larger than the split give the same texts and spans, each run from
    its own empty cache (a prompt asked twice in one run, such as a selector reading a text that
    only grew by part of a character, is served from it the second time: alike in both runs)."""
    models = members(method, tiny_pool_paths, other_tokenizer_model)
    tests = [(f"question {i} about {'x' * i}", "x") for i in range(5)]
    data = api.data([("dev q", "x")], tests)
    outputs, generations = [], []
    for size in (1, 8):
        monkeypatch.setenv("MOCO_CACHE_DIR", str(api.root / f"cache-{size}"))
        generation = {"max_new_tokens": 8, "temperature": 0.9, "top_p": 0.9, "seed": 11, "batch_size": size}
        result, run = api.run(
            method, models, data, params_of(method, tiny_pool_paths), out=f"b{size}", generation=generation
        )
        assert result.exit_code == 0, result.output
        lines = sorted(api.predictions(run), key=lambda x: x["index"])
        outputs.append([(line["output"], line["spans"]) for line in lines])
        generations.append(api.metrics(run)["generations"])
    assert outputs[0] == outputs[1]
    assert generations[0] == generations[1] and generations[0]["made"] > 0


BAD = [
    ("nudging", {"gamma": -0.1}, "gamma"),
    ("nudging", {"base_model": -1}, "base_model"),
    ("nudging", {"base_model": "zero"}, "base_model"),
    ("nudging", {"gamma_search": 0.3}, "gamma_search"),
    ("nudging", {"search_nudging": "maybe"}, "search_nudging"),
    ("nudging", {"gama": 0.3}, "gama"),
    ("switch_generation", {"patch_size": "many"}, "patch_size"),
    ("switch_generation", {"rollouts_per_example": 0}, "rollouts_per_example"),
    ("switch_generation", {"train_examples": 0}, "train_examples"),
    ("switch_generation", {"rollout_score": "judge"}, "rollout_score"),
    ("switch_generation", {"patch": 3}, "patch"),
    ("co_llm", {"threshold": -0.5}, "threshold"),
    ("co_llm", {"threshold_warmup": "exp"}, "threshold_warmup"),
    ("co_llm", {"epochs": 0}, "epochs"),
    ("co_llm", {"lr": 0}, "lr"),
    ("co_llm", {"finetune": "sometimes"}, "finetune"),
    ("co_llm", {"thresold": 0.5}, "thresold"),
    ("mentor_collab", {"decision_proportion": -0.2}, "decision_proportion"),
    ("mentor_collab", {"patch_size": 0}, "patch_size"),
    ("mentor_collab", {"mode": "judge"}, "mode"),
    ("mentor_collab", {"mlp_threshold": 1.5, "mode": "mlp", "mlp_path": "x"}, "mlp_threshold"),
    ("mentor_collab", {"mlp_path": "/x.pth"}, "mlp_path"),
    ("mentor_collab", {"decision": 0.5}, "decision"),
]


@pytest.mark.parametrize(("method", "params", "field"), BAD)
def test_bad_params_are_one_line_naming_the_field(
    api, tiny_pool_paths, other_tokenizer_model, monkeypatch, method, params, field
):
    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("moco_core.backends.hf.HFBackend.load", no_loading)
    models = members(method, tiny_pool_paths, other_tokenizer_model)
    data = api.data([("dev q", "x")], [("q", "x")])
    result, _ = api.run(method, models, data, params)
    assert_one_line_error(result, field)


def test_a_given_selector_needs_no_dev_split(api, tiny_pool_paths, other_tokenizer_model):
    models = members("switch_generation", tiny_pool_paths, other_tokenizer_model)
    data = api.data([], [("q one", "x"), ("q two", "x")])
    params = params_of("switch_generation", tiny_pool_paths)
    result, run = api.run("switch_generation", models, data, params, generation={"max_new_tokens": 5})
    assert result.exit_code == 0, result.output
    check_lines(api.predictions(run), ["a", "b"], 5)


@pytest.mark.parametrize("method", METHODS)
def test_system_prompts_per_member_reach_the_decoding(api, tiny_pool_paths, other_tokenizer_model, method):
    models = members(method, tiny_pool_paths, other_tokenizer_model)
    data = api.data([("dev q", "x")], [(f"question {i}", "x") for i in range(3)])
    generation = {"max_new_tokens": 8, "temperature": 0.0}
    plain, _ = api.run(method, models, data, params_of(method, tiny_pool_paths), out="plain", generation=generation)
    assert plain.exit_code == 0, plain.output
    prompted_models = [{**models[0]}, {**models[1], "system_prompt": "You are a pirate. Always talk like one!"}]
    prompted, run2 = api.run(
        method, prompted_models, data, params_of(method, tiny_pool_paths), out="sys", generation=generation
    )
    assert prompted.exit_code == 0, prompted.output
    assert api.metrics(run2)["generations"]["made"] > 0


@pytest.mark.parametrize(("method", "limit"), [*((m, 1) for m in METHODS), ("switch_generation", 2)])
def test_too_few_resident_models_are_refused_before_loading(
    api, tiny_pool_paths, other_tokenizer_model, monkeypatch, method, limit
):
    """Every member (and switch_generation's selector) stays loaded while a row decodes: a smaller
    cap used to crash with a traceback after loading (co_llm in training, switch_generation when
    the selector evicted a member)."""

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded")

    models = members(method, tiny_pool_paths, other_tokenizer_model)
    data = api.data([("dev q", "x")], [("q", "x")])
    config = {"hardware": {"max_resident_models": limit}}
    with monkeypatch.context() as patch:
        patch.setattr("moco_core.backends.hf.HFBackend.load", no_loading)
        result, _ = api.run(method, models, data, params_of(method, tiny_pool_paths), **config)
    assert_one_line_error(result, "hardware.max_resident_models", f"the limit is {limit}")
    if method == "co_llm":  # one model twice: one resident, unless fine-tuning makes the generator another
        twice = [models[0], {**models[0], "name": "b", "system_prompt": "Be brief."}]
        extra = {**config, "generation": {"max_new_tokens": 3}}
        result, _ = api.run(method, twice, data, {"finetune": False}, out="twice", **extra)
        assert result.exit_code == 0, result.output
        result, _ = api.run(method, twice, data, {"finetune": True}, out="twice-tuned", **extra)
        assert_one_line_error(result, "hardware.max_resident_models", "keeps 2 models")
    if method == "switch_generation":
        enough = {"hardware": {"max_resident_models": 3}, "generation": {"max_new_tokens": 4}}
        result, _ = api.run(method, models, data, params_of(method, tiny_pool_paths), out="three", **enough)
        assert result.exit_code == 0, result.output


def training_file_loader(spec, data_dir):
    from moco_core.data import load_benchmark_file

    return load_benchmark_file(os.environ["AUDIT_TRAINING_FILE"])


class TrainingDataPlugin:
    @hookimpl
    def moco_register_datasets(self, register: Callable[..., None]) -> None:
        register(DatasetSpec(key="audit_train", task_type="free", loader=f"{__name__}:training_file_loader"))


def test_co_llm_trains_on_a_training_datasets_task_prompts_and_never_on_this_runs_test(
    api, tiny_pool_paths, monkeypatch
):
    """``training_dataset`` rows are rendered from its task prompts (they used to be empty: the
    registry's loader leaves ``prompt`` unset), and an item that is one of this run's test
    queries is left out, so co_llm never trains on a test answer."""
    train = api.data([("train dev question", "A1")], [("train test question", "A2"), ("shared question", "A3")])
    monkeypatch.setenv("AUDIT_TRAINING_FILE", str(train))
    data = api.data([], [("shared question", "A3"), ("other question", "x")])
    seen: list[tuple[list[str], list[str]]] = []
    import moco_methods_api.co_llm as co_llm

    original = co_llm.training_rows

    def spy(pool, names, load, prompts, golds):
        seen.append((list(prompts), list(golds)))
        return original(pool, names, load, prompts, golds)

    monkeypatch.setattr(co_llm, "training_rows", spy)
    with registered_plugin(TrainingDataPlugin(), "audit_train"):
        params = {"finetune": False, "training_dataset": "audit_train"}
        result, _ = api.run("co_llm", pool(tiny_pool_paths[:2]), data, params, generation={"max_new_tokens": 3})
    assert result.exit_code == 0, result.output
    ((prompts, golds),) = seen
    assert all(p.strip() for p in prompts), prompts
    assert golds == ["A1", "A2"]
    assert "train dev question" in prompts[0] and "train test question" in prompts[1]


def test_a_nudging_search_that_scores_nothing_keeps_the_configured_setting(api, tiny_pool_paths):
    models = pool(tiny_pool_paths, ("a", "b", "c"))
    data = api.data([("dev q", "unreachable answer"), ("dev r", "unreachable")], [("q", "x"), ("r", "x")])
    generation = {"max_new_tokens": 4, "temperature": 0.0}
    searched = {"gamma": 0.35, "nudging_model": 2, "gamma_search": [0.1, 0.9], "search_nudging": True}
    result, run = api.run("nudging", models, data, searched, out="searched", generation=generation)
    assert result.exit_code == 0, result.output
    summary = api.metrics(run)
    assert all(entry["dev_score"] == 0 for entry in summary["search"])
    assert summary["chosen"] == {"nudging_model": "c", "gamma": 0.35}
    plain, plain_run = api.run("nudging", models, data, {"gamma": 0.35, "nudging_model": 2}, generation=generation)
    assert plain.exit_code == 0, plain.output
    assert [x["output"] for x in api.predictions(run)] == [x["output"] for x in api.predictions(plain_run)]


def test_switch_generation_counts_its_selectors_tokens_as_cost(api, tiny_pool_paths, other_tokenizer_model):
    models = members("switch_generation", tiny_pool_paths, other_tokenizer_model)
    data = api.data([], [("q one", "x"), ("q two", "x")])
    params = params_of("switch_generation", tiny_pool_paths)
    result, run = api.run("switch_generation", models, data, params, generation={"max_new_tokens": 5})
    assert result.exit_code == 0, result.output
    lines = api.predictions(run)
    spent = [line.get("generated_tokens_by_model", {}).get("switch-selector", 0) for line in lines]
    assert all(n > 0 for n in spent)
    assert api.metrics(run)["usage"]["generated_tokens"].get("switch-selector") == sum(spent)


@pytest.fixture(scope="module")
def tokenizer_json_free_model(other_tokenizer_model, tmp_path_factory):
    """The other-tokenizer model with its tokenizer as slow GPT-2 files only (vocab.json, merges.txt):
    no tokenizer.json, as many older checkpoints ship."""
    import shutil

    folder = tmp_path_factory.mktemp("slow-tokenizer") / "model"
    shutil.copytree(other_tokenizer_model, folder)
    content = json.loads((folder / "tokenizer.json").read_text())
    (folder / "vocab.json").write_text(json.dumps(content["model"]["vocab"]))
    merges = [m if isinstance(m, str) else " ".join(m) for m in content["model"]["merges"]]
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    (folder / "tokenizer.json").unlink()
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "tokenizer_class": "GPT2Tokenizer"}))
    return folder


@pytest.mark.parametrize("method", ["co_llm", "mentor_collab"])
def test_a_tokenizer_without_tokenizer_json_is_still_compared_before_loading(
    api, tiny_pool_paths, tokenizer_json_free_model, monkeypatch, method
):
    """The runner's check reads tokenizer.json only: without it mentor_collab ran on two tokenizers and
    co_llm failed with an IndexError traceback after loading."""
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(tokenizer_json_free_model).get_vocab() != (
        AutoTokenizer.from_pretrained(tiny_pool_paths[0]).get_vocab()
    )

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("moco_core.backends.hf.HFBackend.load", no_loading)
    data = api.data([("dev q", "x")], [("q", "x")])
    models = pool([tiny_pool_paths[0], tokenizer_json_free_model])
    result, _ = api.run(method, models, data, params_of(method, tiny_pool_paths))
    assert_one_line_error(result, "models[1].path", "same tokenizer")
    same = {"method": method, "params": params_of(method, tiny_pool_paths), "dataset": {"path": str(data)}}
    same["models"] = pool([tokenizer_json_free_model] * 2)
    (api.root / "same.yaml").write_text(yaml.safe_dump(same))
    checked = api.cli.invoke(app, ["validate", str(api.root / "same.yaml")])  # one slow tokenizer twice: fine
    assert checked.exit_code == 0, checked.output


def test_an_unloadable_selector_is_named_by_its_parameter(api, tiny_pool_paths, other_tokenizer_model):
    """A hub id that cannot load was reported as ``models.switch-selector.path``, a field no config has."""
    models = members("switch_generation", tiny_pool_paths, other_tokenizer_model)
    data = api.data([], [("q", "x")])
    params = {"patch_size": 2, "selector_model": "audit-org/no-such-selector"}
    result, _ = api.run("switch_generation", models, data, params, generation={"max_new_tokens": 3})
    assert_one_line_error(result, "params.selector_model", "audit-org/no-such-selector")


def boundaries(spans) -> list[tuple[int, str]]:
    """(token index, model) where each span starts."""
    starts, at = [], 0
    for span in spans:
        starts.append((at, span["model"]))
        at += span["tokens"]
    return starts


@pytest.mark.parametrize("method", METHODS)
def test_logged_switch_points_are_where_the_spans_change_hands(
    api, tiny_pool_paths, other_tokenizer_model, monkeypatch, method
):
    """Each method's log of who took over where matches the spans of the final text."""
    picks = itertools.cycle([0, 1, 1])
    monkeypatch.setattr("moco_methods_api.switch_generation.parse_model", lambda reply, count: next(picks))
    monkeypatch.setattr("moco_methods_api.mentor_collab.parse_verdict", lambda reply: "B")
    models = members(method, tiny_pool_paths, other_tokenizer_model)
    names = [m["name"] for m in models]
    data = api.data([("dev q", "x")], [(f"question {i} {'why ' * i}", "x") for i in range(4)])
    generation = {"max_new_tokens": 12, "temperature": 0.9, "seed": 2}
    often = {"co_llm": {"threshold": 0.05}, "nudging": {"gamma": 0.05}}.get(method, {})  # hands over often
    params = params_of(method, tiny_pool_paths, **often)
    result, run = api.run(method, models, data, params, generation=generation)
    assert result.exit_code == 0, result.output
    changes = 0
    for line in api.predictions(run):
        starts = boundaries(line["spans"])
        changes += len(starts) - 1
        if method == "nudging":
            events = [(e["at_token"], names[0] if e["to"] == "base" else names[1]) for e in line["handovers"]]
            assert starts == [(0, names[1]), *events][: len(starts)], line
        elif method == "switch_generation":
            current = [
                e for i, e in enumerate(line["switches"]) if i == 0 or e["model"] != line["switches"][i - 1]["model"]
            ]
            assert starts == [(e["at_token"], e["model"]) for e in current][: len(starts)], line
        elif method == "co_llm":
            written = [m for span in line["spans"] for m in [span["model"]] * span["tokens"]]
            assert [i for i, m in enumerate(written) if m == names[1]] == line["deferred_at"], line
        else:
            written = [m for span in line["spans"] for m in [span["model"]] * span["tokens"]]
            for event in line["consultations"]["consulted"]:
                if event["at_token"] < len(written):  # a candidate cut to nothing writes no token
                    assert written[event["at_token"]] == event["chosen"], line
    assert changes > 0


def test_an_unreachable_default_reward_model_is_refused_before_loading(
    api, tiny_pool_paths, other_tokenizer_model, monkeypatch
):
    """Offline, the default rollout_score (reward_model) named a hub reward model that failed only after
    every rollout was decoded, in a line naming no field."""

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("moco_core.backends.hf.HFBackend.load", no_loading)
    models = members("switch_generation", tiny_pool_paths, other_tokenizer_model)
    data = api.data([("dev q", "x")], [("q", "x")])
    result, _ = api.run("switch_generation", models, data, {"patch_size": 2, "rollouts_per_example": 1})
    assert_one_line_error(result, "params.reward_model", "Skywork", "offline")


def test_a_slow_tokenizer_folder_fingerprints_as_its_tokenizer_json_does(
    tokenizer_json_free_model, other_tokenizer_model, tiny_pool_paths, tmp_path
):
    from moco_core.models import tokenizer_fingerprint

    slow = tokenizer_fingerprint(str(tokenizer_json_free_model))
    assert slow is not None and slow != tokenizer_fingerprint(str(tiny_pool_paths[0]))
    from transformers import AutoTokenizer  # the same vocabulary, now saved with a tokenizer.json

    same = AutoTokenizer.from_pretrained(str(tokenizer_json_free_model))
    same.save_pretrained(tmp_path)
    assert tokenizer_fingerprint(str(tmp_path)) == slow
    empty = tmp_path / "no-tokenizer"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    with pytest.raises(MocoError, match="cannot read its tokenizer"):
        tokenizer_fingerprint(str(empty))


@pytest.mark.parametrize(
    ("method", "field", "template", "asked"),
    [
        (
            "switch_generation",
            "selector_prompt",
            "Pick from {models} for {query}; so far: {partial}",
            "Pick from Model 1",
        ),
        ("mentor_collab", "judge_prompt", "{query}|{partial}|A={own}|B={mentor}|A or B?", "|A or B?"),
    ],
)
def test_the_selector_and_judge_prompts_are_overridable_templates(
    api, tiny_pool_paths, other_tokenizer_model, monkeypatch, method, field, template, asked
):
    from moco_core.pool import ModelPool

    seen: list[str] = []
    generate = ModelPool.generate

    def recording(self, name, requests, *args, **kwargs):
        seen.extend(r if isinstance(r, str) else r.prompt for r in requests)
        return generate(self, name, requests, *args, **kwargs)

    monkeypatch.setattr(ModelPool, "generate", recording)
    models = members(method, tiny_pool_paths, other_tokenizer_model)
    data = api.data([], [("q one", "x"), ("q two", "x")])
    params = params_of(method, tiny_pool_paths, **{field: template})
    if method == "mentor_collab":
        params["decision_proportion"] = 1.0  # consult at every word, so the judge is asked
    result, _ = api.run(method, models, data, params, generation={"max_new_tokens": 6})
    assert result.exit_code == 0, result.output
    assert any(asked in prompt for prompt in seen), seen[:3]
    bad, _ = api.run(method, models, data, {**params, field: "{question} {nope}"}, out="bad")
    assert_one_line_error(bad, field, "{nope}")


def test_the_selector_trains_with_the_originals_lora_setup(api, tiny_pool_paths, other_tokenizer_model):
    from moco_core.training import ORIGINAL_LORA

    jobs = []

    class Recording:
        @hookimpl
        def moco_train(self, job):
            jobs.append(job)
            return str(tiny_pool_paths[2])

    models = members("switch_generation", tiny_pool_paths, other_tokenizer_model)
    data = api.data([("dev q", "x")], [("q", "x")])
    params = {"patch_size": 2, "rollouts_per_example": 1, "train_examples": 1, "rollout_score": "scorer"}
    with registered_plugin(Recording(), "recording-selector-training"):
        result, _ = api.run("switch_generation", models, data, params, generation={"max_new_tokens": 4})
    assert result.exit_code == 0, result.output
    [job] = jobs
    assert {k: job.hyperparameters[k] for k in ORIGINAL_LORA} == ORIGINAL_LORA
