"""mentor_collab consults the mentor at the configured rate and stops at EOS; end to end on tiny models."""

from __future__ import annotations

import pytest
import torch

from moco_core.errors import MocoError
from moco_methods_api.mentor_collab import parse_verdict
from moco_methods_api.mentor_mlp import decision_text, load_classifier

HIDDEN = 64
"""The tiny pool's hidden size."""


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


@pytest.mark.slow
def test_mentor_is_consulted_at_the_configured_rate(api, tiny_pool_paths):
    lines, _ = run(api, tiny_pool_paths, 0.3, "rate")
    words = sum(line["consultations"]["words"] for line in lines)
    consulted = sum(len(line["consultations"]["consulted"]) for line in lines)
    assert words >= 60
    assert 0.15 <= consulted / words <= 0.45
    assert any(not e["agreed"] for line in lines for e in line["consultations"]["consulted"])
    for line in lines:
        assert "".join(s["text"] for s in line["spans"]).strip() == line["output"]


@pytest.mark.slow
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


@pytest.mark.slow
def test_losing_candidates_are_generated_tokens_but_write_nothing(api, tiny_pool_paths, tmp_path):
    path = tmp_path / "judge.pt"
    torch.jit.script(ConstantJudge(5.0)).save(str(path))  # the generator's candidate always wins
    models = [{"name": "gen", "path": str(tiny_pool_paths[0])}, {"name": "mentor", "path": str(tiny_pool_paths[1])}]
    data = api.data([], [(f"test question {i}", "x") for i in range(4)])
    params = {"decision_proportion": 1.0, "patch_size": 3, "mode": "mlp", "mlp_path": str(path)}
    result, run = api.run("mentor_collab", models, data, params, generation={"max_new_tokens": 12})
    assert result.exit_code == 0, result.output
    lines = api.predictions(run)
    for line in lines:
        written, generated = line["tokens_by_model"], line["generated_tokens_by_model"]
        assert written["mentor"] == 0 and all(generated[m] >= written[m] for m in written)
    usage = api.metrics(run)["usage"]
    assert usage["token_share"]["mentor"] == 0
    assert usage["generated_tokens"]["mentor"] == sum(line["generated_tokens_by_model"]["mentor"] for line in lines) > 0
    assert usage["generated_tokens"]["gen"] > sum(line["tokens_by_model"]["gen"] for line in lines)


@pytest.mark.slow
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


@pytest.mark.slow
def test_mlp_mode_needs_a_readable_classifier(api, tiny_pool_paths, tmp_path):
    models = [{"name": "gen", "path": str(tiny_pool_paths[0])}, {"name": "mentor", "path": str(tiny_pool_paths[1])}]
    data = api.data([], [("q", "x")])
    result, _ = api.run("mentor_collab", models, data, {"mode": "mlp"}, out="nopath")
    assert result.exit_code == 2 and "mlp_path" in result.output
    (tmp_path / "bad.pt").write_text("not a module")
    result, _ = api.run("mentor_collab", models, data, {"mode": "mlp", "mlp_path": str(tmp_path / "bad.pt")}, out="bad")
    assert result.exit_code == 2 and "params.mlp_path" in result.output
    torch.save(published_mlp(32).state_dict(), tmp_path / "narrow.pth")
    params = {"mode": "mlp", "mlp_path": str(tmp_path / "narrow.pth")}
    result, _ = api.run("mentor_collab", models, data, params, out="narrow")
    assert result.exit_code == 2 and "params.mlp_path" in result.output and "32-wide" in result.output
    assert len(result.output.strip().splitlines()) == 1


class PublishedMLP(torch.nn.Module):
    """The layout of MentorCollab's BranchPredictionMLP: torchvision's MLP(d, [2d, d, d/2]), a linear, a sigmoid."""

    def __init__(self, d: int) -> None:
        super().__init__()
        norm = torch.nn.BatchNorm1d
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(d, 2 * d), norm(2 * d), torch.nn.ReLU(), torch.nn.Dropout(0.1),
            torch.nn.Linear(2 * d, d), norm(d), torch.nn.ReLU(), torch.nn.Dropout(0.1),
            torch.nn.Linear(d, d // 2), torch.nn.Dropout(0.1),
        )  # fmt: skip
        self.linear = torch.nn.Linear(d // 2, 1)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.linear(self.mlp(hidden))).squeeze(-1)


def published_mlp(d: int, seed: int = 0) -> PublishedMLP:
    torch.manual_seed(seed)
    model = PublishedMLP(d)
    for module in model.mlp:
        if isinstance(module, torch.nn.BatchNorm1d):  # trained running statistics, not the defaults
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_a_published_state_dict_scores_like_the_original(tmp_path, suffix):
    reference = published_mlp(HIDDEN)
    path = tmp_path / f"mlp{suffix}"
    if suffix == ".pth":
        torch.save(reference.state_dict(), path)
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    classifier = load_classifier(str(path), HIDDEN, "gen")
    hidden = torch.randn(5, HIDDEN)
    with torch.no_grad():
        assert torch.allclose(torch.sigmoid(classifier(hidden).reshape(-1)), reference(hidden), atol=1e-6)


def test_unreadable_or_mismatched_classifiers_are_refused_in_one_line(tmp_path):
    torch.save(published_mlp(32).state_dict(), tmp_path / "narrow.pth")
    torch.save({"weight": torch.zeros(3)}, tmp_path / "other.pth")
    torch.jit.script(torch.nn.Linear(16, 1)).save(str(tmp_path / "script16.pt"))
    (tmp_path / "junk.pt").write_bytes(b"junk")
    for name, words in [
        ("narrow.pth", "32-wide"),
        ("other.pth", "BranchPredictionMLP"),
        ("script16.pt", "64-wide"),
        ("junk.pt", "TorchScript"),
        ("missing.pt", "not a file"),
    ]:
        with pytest.raises(MocoError) as caught:
            load_classifier(str(tmp_path / name), HIDDEN, "gen")
        message = str(caught.value)
        assert message.startswith("params.mlp_path:") and words in message and "\n" not in message


def test_the_decision_text_names_both_candidates():
    text = decision_text("So far", "own words", "mentor words")
    assert text.startswith("So far\n") and "Option (A): own words, Option (B): mentor words. " in text
    assert text.endswith(". ")


@pytest.mark.slow
@pytest.mark.parametrize(("bias", "winner"), [(5.0, "gen"), (-5.0, "mentor")])
def test_a_published_mlp_judges_the_run(api, tiny_pool_paths, tmp_path, bias, winner):
    mlp = published_mlp(HIDDEN)
    with torch.no_grad():
        mlp.linear.weight.zero_()
        mlp.linear.bias.fill_(bias)
    path = tmp_path / f"published{bias}.pth"
    torch.save(mlp.state_dict(), path)
    models = [{"name": "gen", "path": str(tiny_pool_paths[0])}, {"name": "mentor", "path": str(tiny_pool_paths[1])}]
    data = api.data([], [(f"test question {i}", "x") for i in range(4)])
    params = {"decision_proportion": 1.0, "patch_size": 2, "mode": "mlp", "mlp_path": str(path)}
    result, run = api.run("mentor_collab", models, data, params, out=f"pub{bias}", generation={"max_new_tokens": 12})
    assert result.exit_code == 0, result.output
    events = [e for line in api.predictions(run) for e in line["consultations"]["consulted"] if not e["agreed"]]
    assert events and all(e["chosen"] == winner for e in events)
