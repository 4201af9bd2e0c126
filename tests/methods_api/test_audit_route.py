"""Acceptance audit of the routers and cascade: cases the other route tests leave out."""

from __future__ import annotations

import math

import numpy as np
import pytest

from moco_core.testing import RecordingTraining, registered_plugin, set_responder
from moco_methods_api.cascade import SELF_ASK

DOMAINS = ["math", "history", "code"]
SCRIPT: dict[tuple[str, str], tuple[str, list[float]]] = {}


def scripted_models(names) -> list[dict]:
    return [{"name": n, "path": n, "backend": "scripted"} for n in names]


@pytest.fixture()
def scripted(api, confident_members):
    confident_members(SCRIPT)
    return api


@pytest.mark.parametrize(
    ("reply", "defers"),
    [
        ("Unconfident.", True),
        ("UNCONFIDENT", True),
        ("'unconfident'", True),
        ("I am not confident.", True),
        ("I'm not confident that this is right.", True),
        ("I am not very confident about this.", True),
        ("I wasn't sure, but 42.", True),
        ("It isn't certain.", True),
        ("42", False),
        ("I am confident: 42", False),
        ("Confident. The answer is 42.", False),
    ],
)
def test_self_ask_reads_other_phrasings_of_unconfident(scripted, reply, defers):
    api = scripted
    SCRIPT[("weak", "test a" + SELF_ASK)] = (reply, [0.9])
    SCRIPT[("strong", "test a")] = ("strong answer", [0.9])
    data = api.data([], [("test a", "x")])
    result, run = api.run("cascade", scripted_models(("weak", "strong")), data, {"confidence": "self_ask"})
    assert result.exit_code == 0, result.output
    [line] = api.predictions(run)
    assert line["routed_to"] == ("strong" if defers else "weak")
    assert line["deferral_chain"][0]["deferred"] is defers


def domain_pool(prefix: str, names: list[str] = DOMAINS) -> list[dict]:
    """Model k answers "right" only on questions of domain k."""
    models = []
    for name, domain in zip(names, DOMAINS, strict=False):
        set_responder(f"{prefix}-{name}", lambda r, d=domain: "right" if r.prompt.startswith(d) else "wrong")
        models.append({"name": name, "path": f"{prefix}-{name}", "backend": "scripted", "description": f"{domain}"})
    return models


def questions(word: str, count: int) -> list[tuple[str, str]]:
    return [(f"{DOMAINS[i % 3]} {word} {i}", "right") for i in range(count)]


GREEDY = {"max_new_tokens": 4, "temperature": 0.0}


def test_trained_router_trains_with_the_spec_lora_setup_and_ignores_the_test_set(api, tiny_pool_paths):
    from moco_core.training import check_job, training_recipe

    training = RecordingTraining(str(tiny_pool_paths[0]))
    pool = [{"name": "router", "path": str(tiny_pool_paths[0])}, *domain_pool("ts")]
    dev = questions("dev", 6)
    with registered_plugin(training, "recording-training"):
        for out, test in (("first", questions("q", 3)), ("other-test", questions("other", 4))):
            result, _ = api.run("trained_router", pool, api.data(dev, test), {}, out, generation=GREEDY)
            assert result.exit_code == 0, result.output
        result, _ = api.run(
            "trained_router", pool, api.data(dev, questions("q", 3)), {"hyperparameters": {"grad_accum": 4}}, "mine"
        )
        assert result.exit_code == 0, result.output
    first, other_test, mine = training.jobs
    assert training_recipe(first, check_job(first)) == training_recipe(other_test, check_job(other_test))
    # spec, shared training engine: r 64, alpha 16, dropout 0.1, cosine, warmup 0.1, batch 1 x accumulation 32
    # for routers, max length 4096; epochs 5 and lr 1e-5 are the method's own defaults
    hyper = check_job(first)
    assert (hyper.lora_r, hyper.lora_alpha, hyper.lora_dropout) == (64, 16.0, 0.1)
    assert (hyper.lr_scheduler, hyper.warmup_ratio) == ("cosine", 0.1)
    assert (hyper.batch_size, hyper.grad_accum, hyper.max_length) == (1, 32, 4096)
    assert (hyper.epochs, hyper.lr) == (5, 1e-5)
    assert check_job(mine).grad_accum == 4  # a given setting wins over the default


def test_trained_router_keeps_a_member_named_like_its_router(api, tiny_pool_paths):
    training = RecordingTraining(str(tiny_pool_paths[0]))
    pool = [{"name": "router", "path": str(tiny_pool_paths[0])}, *domain_pool("nm", ["trained-router", "b", "c"])]
    dev, test = questions("dev", 6), [("math q", "right")]
    with registered_plugin(training, "recording-training"):
        result, run = api.run("trained_router", pool, api.data(dev, test), {}, generation=GREEDY)
    assert result.exit_code == 0, result.output
    [line] = api.predictions(run)
    # the untrained router's reply does not parse, so the dev-best member answers: the math member
    # named "trained-router", not the router LM that must not take its name
    assert (line["routed_to"], line["output"]) == ("trained-router", "right")
    usage = api.metrics(run)["usage"]
    assert set(usage["query_share"]) == {"router", "trained-router", "b", "c"}
    assert len(usage["generated_tokens"]) == 5  # the four members and the router LM, each counted apart


GRAPH_FAST = {"epochs": 100, "lr": 1e-2, "hidden_dim": 16}


def cost_pool() -> list[dict]:
    """The expensive model first (it wins performance ties), right everywhere; the cheap one right on math."""
    set_responder("au-big", "right")
    set_responder("au-small", lambda r: "right" if r.prompt.startswith("math") else "wrong")
    return [
        {"name": "big", "path": "au-big", "backend": "scripted", "description": "big expensive general model"},
        {"name": "small", "path": "au-small", "backend": "scripted", "description": "small cheap math model"},
    ]


def test_graph_router_balance_sends_what_the_cheap_model_solves_to_it(api):
    pytest.importorskip("torch_geometric")
    data = api.data(questions("question", 30), questions("question", 15))
    routes = {}
    for scenario in ("performance", "balance"):
        params = {**GRAPH_FAST, "scenario": scenario, "model_costs": [10.0, 1.0]}
        result, run = api.run("graph_router", cost_pool(), data, params, out=scenario)
        assert result.exit_code == 0, result.output
        routes[scenario] = [(line["input"].split()[0], line["routed_to"]) for line in api.predictions(run)]
        labels = api.metrics(run)["graph_router"]["dev_labels"]
        assert labels == ({"big": 30, "small": 0} if scenario == "performance" else {"big": 20, "small": 10})
    assert sum(route == "big" for _, route in routes["performance"]) >= 14
    right = sum(route == ("small" if domain == "math" else "big") for domain, route in routes["balance"])
    assert right >= 13, routes["balance"]


def test_graph_router_is_reused_when_only_the_test_set_changes(api):
    pytest.importorskip("torch_geometric")
    models = domain_pool("gt")
    dev = questions("question", 18)
    first, run = api.run("graph_router", models, api.data(dev, questions("asked", 6)), GRAPH_FAST, out="first")
    assert first.exit_code == 0, first.output
    other, rerun = api.run("graph_router", models, api.data(dev, questions("other", 9)), GRAPH_FAST, out="other")
    assert other.exit_code == 0, other.output
    assert api.metrics(rerun)["graph_router"]["reused"] is True
    assert api.metrics(rerun)["graph_router"]["path"] == api.metrics(run)["graph_router"]["path"]


@pytest.mark.parametrize(
    ("hyperparameters", "field"),
    [({"batch_size": True}, "batch_size"), ({"lora_r": "64"}, "lora_r"), ({"max_length": 4.5}, "max_length")],
)
def test_trained_router_refuses_wrongly_typed_training_settings(api, hyperparameters, field):
    from moco_core.cli import app
    from moco_core.testing import assert_one_line_error

    set_responder("typed", "x")
    config = api.root / "typed.yaml"
    models = [{"name": n, "path": "typed", "backend": "scripted"} for n in "ab"]
    body = {"method": "trained_router", "params": {"hyperparameters": hyperparameters}, "models": models}
    body |= {"dataset": {"path": str(api.data([("dev q", "x")], [("q", "x")]))}, "output_dir": str(api.root / "r")}
    import yaml

    config.write_text(yaml.safe_dump(body))
    assert_one_line_error(api.cli.invoke(app, ["validate", str(config)]), f"params.hyperparameters: {field}:")


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("1, not 3", 0),  # the spec's example: the original picked 3
        ("2 (not 1)", 1),
        ("Model 3, rather than Model 1", 2),
        ("Neither Model 1 nor Model 2; Model 3.", 2),
        ("Neither model 1 nor model 3 fits this query, so model 2", 1),
        ("3, not 1 or 2", 2),
        ("not 3", None),
    ],
)
def test_prompt_routing_reads_negations_the_other_tests_leave_out(reply, expected):
    from moco_methods_api.prompt_routing import parse_choice

    assert parse_choice(reply, DOMAINS) == expected


def test_the_self_ask_prompt_is_an_overridable_template(scripted):
    # spec: "Every prompt a method writes is a named, overridable template."
    api = scripted
    for name in ("weak", "strong"):
        SCRIPT[(name, "Be honest. test a")] = (f"{name}: unconfident", [0.9])
    SCRIPT[("strong", "test a")] = ("strong answer", [0.9])
    data = api.data([], [("test a", "x")])
    params = {"confidence": "self_ask", "self_ask_prompt": "Be honest. {question}"}
    result, run = api.run("cascade", scripted_models(("weak", "strong")), data, params)
    assert result.exit_code == 0, result.output
    [line] = api.predictions(run)
    assert (line["routed_to"], line["output"]) == ("strong", "strong answer")


def test_the_routing_prompt_is_an_overridable_template(api):
    seen = []
    for domain in ("math", "code"):

        def respond(request, domain=domain):
            seen.append(request.prompt)
            return "2" if request.prompt.startswith("Route") else domain

        set_responder(f"tp-{domain}", respond)
    models = [{"name": d, "path": f"tp-{d}", "backend": "scripted", "description": f"{d} expert"} for d in DOMAINS[::2]]
    template = "Route among {count}:\n{models}\nQuery: {query}\nAnswer with the number only."
    result, run = api.run(
        "prompt_routing", models, api.data([("q", "math")], [("what is 2+2", "code")]), {"routing_prompt": template}
    )
    assert result.exit_code == 0, result.output
    assert api.predictions(run)[0]["routed_to"] == "code"
    assert "Route among 2:\nModel 1: math expert\nModel 2: code expert\nQuery: what is 2+2\n" in "".join(seen)


def test_trained_router_prompt_is_an_overridable_template(api, tiny_pool_paths):
    training = RecordingTraining(str(tiny_pool_paths[0]))
    pool = [{"name": "router", "path": str(tiny_pool_paths[0]), "description": "router"}, *domain_pool("rp")]
    params = {"router_prompt": "{query}\n{models}Who answers?"}
    with registered_plugin(training, "recording-training"):
        result, _ = api.run(
            "trained_router", pool, api.data(questions("dev", 3), [("q", "x")]), params, generation=GREEDY
        )
    assert result.exit_code == 0, result.output
    [job] = training.jobs
    assert job.data[0]["prompt"].startswith("math dev 0\nModels:\nModel 1: router\nModel 2: math\n")
    assert job.data[0]["prompt"].endswith("Who answers?")


@pytest.mark.parametrize(
    ("method", "params", "field"),
    [
        ("cascade", {"self_ask_prompt": "{prompt} unsure?"}, "self_ask_prompt"),
        ("prompt_routing", {"routing_prompt": "{query} {choices}"}, "routing_prompt"),
        ("trained_router", {"router_prompt": "{question"}, "router_prompt"),
    ],
)
def test_a_template_with_an_unknown_placeholder_is_refused_in_one_line(api, method, params, field):
    import yaml

    from moco_core.cli import app
    from moco_core.testing import assert_one_line_error

    set_responder("tpl", "x")
    models = [{"name": n, "path": "tpl", "backend": "scripted", "description": n} for n in "ab"]
    body = {"method": method, "params": params, "models": models, "output_dir": str(api.root / "r")}
    body["dataset"] = {"path": str(api.data([("dev q", "x")], [("q", "x")]))}
    config = api.root / "tpl.yaml"
    config.write_text(yaml.safe_dump(body))
    assert_one_line_error(api.cli.invoke(app, ["validate", str(config)]), field)


def test_an_interrupted_trained_router_run_resumes_with_whole_totals(api, tiny_pool_paths):
    training = RecordingTraining(str(tiny_pool_paths[0]))
    pool = [{"name": "router", "path": str(tiny_pool_paths[0])}, *domain_pool("rs")]
    data = api.data(questions("dev", 6), questions("q", 8))
    generation = {**GREEDY, "batch_size": 2}
    with registered_plugin(training, "recording-training"):
        result, run = api.run("trained_router", pool, data, {}, generation=generation)
        assert result.exit_code == 0, result.output
        full, usage = api.predictions(run), api.metrics(run)["usage"]
        predictions = run / "predictions.jsonl"
        predictions.write_text("".join(predictions.read_text().splitlines(keepends=True)[:3]) + '{"index": 3, "ou')
        again, _ = api.run("trained_router", pool, data, {}, generation=generation)
    assert again.exit_code == 0, again.output
    resumed = api.predictions(run)
    keys = ("index", "output", "routed_to", "router_reply", "tokens_by_model")
    assert [{k: line[k] for k in keys} for line in resumed] == [{k: line[k] for k in keys} for line in full]
    assert api.metrics(run)["usage"] == usage
    assert usage["generated_tokens"]["trained-router"] == sum(
        line["tokens_by_model"]["trained-router"] for line in full
    )


def test_the_run_summary_line_labels_the_oracle(api):
    data = api.data([("math dev", "right")], questions("q", 3))
    result, _ = api.run("oracle_routing", domain_pool("sl"), data)
    assert result.exit_code == 0, result.output
    assert "upper bound" in result.output.strip().splitlines()[-1]


def test_a_uniform_member_is_as_confident_at_every_answer_length(scripted):
    # A uniform next-token distribution gives the same top-1 probability at every step, so its confidence
    # equals its threshold whatever the answer's length: it never defers (the rounding of a mean must not decide).
    api = scripted
    uniform = math.exp(float(np.float32(-math.log(330))))  # as a float32 log-softmax over 330 tokens gives it
    for i, length in enumerate((4, 5, 6)):
        SCRIPT[("weak", f"dev {i}")] = ("weak dev", [uniform] * length)
    for item, length in {"a": 10, "b": 12, "c": 13}.items():
        SCRIPT[("weak", f"test {item}")] = (f"weak says {item}", [uniform] * length)
        SCRIPT[("strong", f"test {item}")] = (f"strong says {item}", [1.0])
    data = api.data([(f"dev {i}", "x") for i in range(3)], [(f"test {k}", "x") for k in "abc"])
    for fraction in (0.0, 0.5, 1.0):
        params = {"defer_fraction": fraction}
        result, run = api.run("cascade", scripted_models(("weak", "strong")), data, params, out=f"f{fraction}")
        assert result.exit_code == 0, result.output
        lines = api.predictions(run)
        assert [line["routed_to"] for line in lines] == ["weak"] * 3, [line["deferral_chain"] for line in lines]
        assert all(line["deferral_chain"][0]["confidence"] == line["deferral_chain"][0]["threshold"] for line in lines)
