"""oracle_routing is an upper bound everywhere it shows: list-methods, info, metrics.json, compare."""

from __future__ import annotations

import json

from moco_core.cli import app
from moco_core.testing import set_responder

DOMAINS = ["math", "history", "code"]


def domain_pool() -> list[dict]:
    models = []
    for domain in DOMAINS:
        set_responder(f"ob-{domain}", lambda r, d=domain: "right" if r.prompt.startswith(d) else "wrong")
        models.append({"name": domain, "path": f"ob-{domain}", "backend": "scripted"})
    return models


def test_listed_and_described_as_an_oracle(api):
    listed = api.cli.invoke(app, ["list-methods"])
    [row] = [line for line in listed.output.splitlines() if line.startswith("oracle_routing")]
    assert row.split()[1] == "oracle"
    methods = {m["key"]: m for m in json.loads(api.cli.invoke(app, ["list-methods", "--json"]).output)["methods"]}
    assert methods["oracle_routing"]["level"] == "oracle" and methods["random_routing"]["level"] == "baseline"
    info = api.cli.invoke(app, ["info", "oracle_routing"]).output
    assert "oracle level" in info and "upper bound, not a method" in info


def test_compare_shows_the_oracle_as_an_upper_bound_after_the_methods(api):
    data = api.data([("math dev", "right")], [(f"{DOMAINS[i % 3]} q{i}", "right") for i in range(6)])
    runs = []
    for method in ("oracle_routing", "random_routing", "single_model"):
        result, run = api.run(method, domain_pool(), data)
        assert result.exit_code == 0, result.output
        runs.append(run)
    oracle = api.metrics(runs[0])
    assert oracle["oracle"] is True and "upper bound" in oracle["note"]
    assert all(line["oracle"] for line in api.predictions(runs[0]))
    compared = api.cli.invoke(app, ["compare", *map(str, runs), "--format", "json"])
    assert compared.exit_code == 0, compared.output
    rows = list(dict.fromkeys(cell["row"] for cell in json.loads(compared.output)["cells"]))
    assert rows[-1] == "oracle upper bound (oracle_routing)"
    assert "oracle_routing" not in rows and "random_routing" in rows
    markdown = api.cli.invoke(app, ["compare", *map(str, runs)]).output
    assert "oracle upper bound (oracle_routing)" in markdown
