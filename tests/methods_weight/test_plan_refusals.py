"""Weight methods refuse, before loading and alike in ``validate`` and ``run``, what they cannot search with."""

from __future__ import annotations

import pytest

from .conftest import mc_file, moco_run, run_config

SEARCHES = [
    ("greedy_soup", {}),
    ("expo", {}),
    ("model_swarms", {}),
    ("dare_ties", {"base_model": "base", "weights": "search"}),
]


@pytest.mark.parametrize(("method", "params"), SEARCHES)
def test_a_search_without_a_dev_split_is_refused_before_loading(family, tmp_path, method, params):
    members = [(name, family[name]) for name in ("base", "m0", "m1")]
    config = run_config(tmp_path, members, method, params, mc_file(tmp_path, n_dev=0))
    for command in ("validate", "run"):
        code, output = moco_run(config, command)
        lines = [line for line in output.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1, output
        assert lines[0].startswith("error: dataset: tiny_mc has no dev split") and method in lines[0], lines[0]
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").glob("predictions.jsonl"))


def test_lorahub_with_a_missing_base_names_the_parameter(adapters, tmp_path):
    members = [(f"a{i}", path) for i, path in enumerate(adapters)]
    params = {"base_model": str(tmp_path / "nowhere")}
    config = run_config(tmp_path, members, "lorahub", params, mc_file(tmp_path))
    for command in ("validate", "run"):
        code, output = moco_run(config, command)
        assert code == 2 and output.strip().startswith("error: params.base_model:"), output
        assert len(output.strip().splitlines()) == 1, output
