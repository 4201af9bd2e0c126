"""mentor_collab consults the mentor at the configured rate and stops at EOS; end to end on tiny models."""

from __future__ import annotations

import pytest
import torch

from moco_methods_api.mentor_collab import parse_verdict

pytestmark = pytest.mark.slow


def test_parse_verdict():
    assert parse_verdict("(B)") == "B" and parse_verdict("A") == "A" and parse_verdict("Both") is None


def run(api, tiny_pool_paths, proportion: float, out: str):
    models = [{"name": "gen", "path": str(tiny_pool_paths[0])}, {"name": "mentor", "path": str(tiny_pool_paths[1])}]
    data = api.data([], [(f"test question {i}", "x") for i in range(8)])
    params = {"decision_proportion": proportion, "patch_size": 2}
    generation = {"max_new_tokens": 40, "temperature": 0.7, "seed": 1, "batch_size": 8}
    result, run_dir = api.run("mentor_collab", models, data, params, out=out, generation=generation)
    assert result.exit_code == 0, result.output
    return api.predictions(run_dir), api.metrics(run_dir)


def test_mentor_is_consulted_at_the_configured_rate(api, tiny_pool_paths):
    lines, _ = run(api, tiny_pool_paths, 0.3, "rate")
    words = sum(line["consultations"]["words"] for line in lines)
    consulted = sum(len(line["consultations"]["consulted"]) for line in lines)
    assert words >= 60
    assert 0.15 <= consulted / words <= 0.45
    assert any(not e["agreed"] for line in lines for e in line["consultations"]["consulted"])
    for line in lines:
        assert "".join(s["text"] for s in line["spans"]).strip() == line["output"]


def test_never_and_always(api, tiny_pool_paths, monkeypatch):
    never, summary = run(api, tiny_pool_paths, 0.0, "never")
    assert all(not line["consultations"]["consulted"] for line in never)
    assert summary["usage"]["generated_tokens"]["mentor"] == 0
    monkeypatch.setattr(
        "moco_methods_api.mentor_collab.parse_verdict", lambda reply: "B"
    )  # the judge prefers the mentor
    always, summary = run(api, tiny_pool_paths, 1.0, "always")
    assert all(len(line["consultations"]["consulted"]) == line["consultations"]["words"] for line in always)
    events = [e for line in always for e in line["consultations"]["consulted"]]
    assert all(e["chosen"] == ("gen" if e["agreed"] else "mentor") for e in events)
    assert summary["usage"]["generated_tokens"]["mentor"] > 0


class ConstantJudge(torch.nn.Module):
    def __init__(self, logit: float) -> None:
        super().__init__()
        self.logit = logit

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.full((hidden.shape[0], 1), self.logit)


@pytest.mark.parametrize(("logit", "winner"), [(5.0, "gen"), (-5.0, "mentor")])
def test_mlp_judge_keeps_the_generator_above_the_threshold(api, tiny_pool_paths, tmp_path, logit, winner):
    path = tmp_path / f"judge{logit}.pt"
    torch.jit.script(ConstantJudge(logit)).save(str(path))
    models = [{"name": "gen", "path": str(tiny_pool_paths[0])}, {"name": "mentor", "path": str(tiny_pool_paths[1])}]
    data = api.data([], [(f"test question {i}", "x") for i in range(4)])
    params = {"decision_proportion": 1.0, "patch_size": 2, "mode": "mlp", "mlp_path": str(path)}
    result, run = api.run("mentor_collab", models, data, params, out=f"mlp{logit}", generation={"max_new_tokens": 12})
    assert result.exit_code == 0, result.output
    events = [e for line in api.predictions(run) for e in line["consultations"]["consulted"] if not e["agreed"]]
    assert events and all(e["chosen"] == winner for e in events)


def test_mlp_mode_needs_a_torchscript_file(api, tiny_pool_paths, tmp_path):
    models = [{"name": "gen", "path": str(tiny_pool_paths[0])}, {"name": "mentor", "path": str(tiny_pool_paths[1])}]
    data = api.data([], [("q", "x")])
    result, _ = api.run("mentor_collab", models, data, {"mode": "mlp"}, out="nopath")
    assert result.exit_code == 2 and "mlp_path" in result.output
    (tmp_path / "bad.pt").write_text("not a module")
    result, _ = api.run("mentor_collab", models, data, {"mode": "mlp", "mlp_path": str(tmp_path / "bad.pt")}, out="bad")
    assert result.exit_code == 2 and "params.mlp_path" in result.output
