"""Bad inputs of the API, logit and backend surfaces that need real files: `validate` and `run` refuse
each with exit code 2 and the same one line naming the field or file, before any model loads.

Pools here are tiny local models (their folders, tokenizers and configs are read by the checks),
or openai/bank members that are never contacted: a refusal before loading proves no server was
needed and no weights were read.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from moco_core.cli import app
from moco_core.errors import MocoError
from moco_core.hookspecs import hookimpl
from moco_core.plugins import get_registry
from moco_core.registry import DatasetSpec
from moco_core.testing import registered_plugin, scripted_plugins

cli = CliRunner()
OPENAI = {"backend": "openai", "backend_options": {"base_url": "http://127.0.0.1:9/v1"}}


def broken_loader(spec: DatasetSpec, data_dir: str | None) -> None:
    raise MocoError(f"dataset {spec.key}: its benchmark file is unreadable")


class BrokenDatasetPlugin:
    @hookimpl
    def moco_register_datasets(self, register: Callable[..., None]) -> None:
        register(DatasetSpec(key="qa_broken", task_type="letter", loader=f"{__name__}:broken_loader"))


@pytest.fixture()
def env(fresh_cache_dir, tmp_path):
    with scripted_plugins("tt"), registered_plugin(BrokenDatasetPlugin(), "qa_broken"):
        yield tmp_path


def letters(tmp_path: Path, n_dev: int) -> Path:
    def item(split: str, i: int) -> dict:
        return {"id": f"{split}{i}", "question": f"{split} {i}", "choices": {"A": "a", "B": "b"}, "answer": "A"}

    path = tmp_path / "letters.json"
    body = {"name": "letters", "task_type": "letter", "dev": [item("dev", i) for i in range(n_dev)]}
    path.write_text(json.dumps({**body, "test": [item("test", i) for i in range(2)]}))
    return path


def refusal(command: str, config: Path) -> str:
    result = cli.invoke(app, [command, str(config)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def assert_refused(tmp_path: Path, method: str, params: dict, models: list[dict], n_dev: int, *fragments: str) -> None:
    config = {
        "method": method,
        "params": params,
        "models": [{"name": f"m{i}", **m} for i, m in enumerate(models)],
        "dataset": {"path": str(letters(tmp_path, n_dev))},
        "output_dir": str(tmp_path / "run"),
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    line = refusal("validate", path)
    for fragment in fragments:
        assert fragment in line
    assert refusal("run", path) == line
    assert not (tmp_path / "run").exists()


def local(paths: list[Path]) -> list[dict]:
    return [{"path": str(p)} for p in paths]


@pytest.mark.parametrize("method", ["nudging", "switch_generation", "co_llm", "mentor_collab"])
def test_token_level_methods_refuse_a_text_only_backend(env, method):
    if method not in get_registry().methods:
        pytest.skip(f"{method} is not installed")
    models = [{"path": "a", **OPENAI}, {"path": "b", **OPENAI}]
    assert_refused(env, method, {}, models, 1, "models[0].backend:", f"{method} (api level)", "openai")


def test_trained_router_refuses_a_router_it_cannot_train(env, tiny_pool_paths):
    models = [{"path": "a", **OPENAI}, {"path": str(tiny_pool_paths[0])}]
    assert_refused(env, "trained_router", {}, models, 1, "models[0].backend: trained_router trains m0", "openai")
    # a local router member is fine: the check moves on (and refuses the bad hyperparameters instead)
    params = {"router_base_model": "m1", "hyperparameters": {"lora_rr": 4}}
    assert_refused(
        env,
        "trained_router",
        params,
        models,
        1,
        "params.hyperparameters: lora_rr: unknown key 'lora_rr' — did you mean 'lora_r'?",
    )


@pytest.mark.parametrize("kind", ["missing", "text file", "empty folder", "damaged weights"])
def test_switch_generation_refuses_a_selector_that_is_not_a_model(env, tiny_pool_paths, tmp_path, kind):
    selector = tmp_path / "selector"
    if kind == "text file":
        selector.write_text("not a model")
    elif kind == "empty folder":
        selector.mkdir()
    elif kind == "damaged weights":
        selector.mkdir()
        (selector / "config.json").write_text("{}")
        (selector / "model.safetensors").write_bytes(b"\xff" * 64)
    params = {"selector_model": str(selector)}
    assert_refused(
        env, "switch_generation", params, local(tiny_pool_paths[:2]), 0, f"params.selector_model: {selector}"
    )


def test_graph_router_refuses_an_encoder_folder_that_is_not_a_model(env, tiny_pool_paths, tmp_path):
    (tmp_path / "encoder").mkdir()
    params = {"embedding_model": str(tmp_path / "encoder")}
    assert_refused(env, "graph_router", params, local(tiny_pool_paths[:2]), 1, "params.embedding_model:", "not a model")


def test_co_llm_refuses_a_training_dataset_it_cannot_read(env, tiny_pool_paths):
    params = {"training_dataset": "qa_broken"}
    line = "params.training_dataset: dataset qa_broken: its benchmark file is unreadable"
    assert_refused(env, "co_llm", params, local(tiny_pool_paths[:2]), 0, line)


def published_mlp_state(width: int) -> dict:
    from moco_methods_api.mentor_mlp import BranchMLP

    return BranchMLP([width, 2 * width, width, width // 2]).state_dict()


@pytest.mark.parametrize("kind", ["narrow", "not an MLP", "junk", "folder"])
def test_mentor_collab_refuses_an_mlp_the_generator_cannot_use(env, tiny_pool_paths, tmp_path, kind):
    import torch

    path = tmp_path / "judge.pth"
    expected = {
        "narrow": "reads 32-wide hidden states but m0's hidden size is 64",
        "not an MLP": "not a MentorCollab BranchPredictionMLP state dict",
        "junk": "neither a MentorCollab MLP state dict nor a TorchScript module",
        "folder": "is not a file",
    }[kind]
    if kind == "narrow":
        torch.save(published_mlp_state(32), path)
    elif kind == "not an MLP":
        torch.save({"0.weight": torch.zeros(4, 64)}, path)
    elif kind == "junk":
        path.write_bytes(b"\x00garbage" * 8)
    else:
        path.mkdir()
    params = {"mode": "mlp", "mlp_path": str(path)}
    assert_refused(env, "mentor_collab", params, local(tiny_pool_paths[:2]), 0, "params.mlp_path:", expected)


def test_mentor_collab_accepts_an_mlp_of_the_generator_width(env, tiny_pool_paths, tmp_path):
    import torch

    torch.save(published_mlp_state(64), tmp_path / "judge.pth")
    config = {
        "method": "mentor_collab",
        "params": {"mode": "mlp", "mlp_path": str(tmp_path / "judge.pth")},
        "models": [{"name": f"m{i}", "path": str(p)} for i, p in enumerate(tiny_pool_paths[:2])],
        "dataset": {"path": str(letters(tmp_path, 0))},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = cli.invoke(app, ["validate", str(tmp_path / "config.yaml")])
    assert result.exit_code == 0, result.output


BANK_ITEM = {"id": "1", "input": "q", "answer": "A", "bank": {"a": {"response": "A", "score": 1}}}


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"\x89PNG\x00\xff binary", "not a readable bank file (UnicodeDecodeError"),
        (b"{not json", "not a readable bank file"),
        (b"[1, 2]", "not a response bank"),
        (json.dumps({"task_type": "multiple_choice", "test": []}).encode(), "not a response bank"),
        (json.dumps({"task_type": "bank", "test": [{"id": "1"}]}).encode(), "not a readable bank file (KeyError"),
        (json.dumps({"task_type": "bank", "test": [{"input": "q", "bank": {"a": 3}}]}).encode(), "bank entry of 'q'"),
    ],
)
def test_a_damaged_bank_file_is_refused_naming_it(env, tmp_path, content, fragment):
    bank = tmp_path / "bank.json"
    bank.write_bytes(content)
    models = [{"path": "a", "backend": "bank", "backend_options": {"bank": str(bank)}}]
    assert_refused(env, "random_routing", {}, models * 2, 1, "models[0].backend_options: bank:", str(bank), fragment)


def test_a_bank_without_the_model_is_refused_before_loading(env, tmp_path):
    bank = tmp_path / "bank.json"
    bank.write_text(json.dumps({"name": "b", "task_type": "bank", "dev": [], "test": [BANK_ITEM]}))
    models = [{"path": name, "backend": "bank", "backend_options": {"bank": str(bank)}} for name in ("a", "zz")]
    assert_refused(
        env, "random_routing", {}, models, 1, f"models[1].path: the bank {bank} has no model 'zz' (it has: a)"
    )


def test_an_openai_member_with_no_server_and_no_key_is_refused(env, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    models = [{"path": "gpt-4o-mini", "backend": "openai"}]
    assert_refused(
        env, "single_model", {}, models, 1, "models[0].backend_options:", "base_url: not given", "api.openai"
    )
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # a local server needs no key
    config = {
        "method": "single_model",
        "models": [{"name": "m", **models[0]}],
        "dataset": {"path": str(env / "letters.json")},
    }
    (env / "ok.yaml").write_text(yaml.safe_dump(config))
    assert cli.invoke(app, ["validate", str(env / "ok.yaml")]).exit_code == 0


def test_a_cascade_over_a_bank_is_refused_in_either_confidence_mode(env, tmp_path):
    if "cascade" not in get_registry().methods:
        pytest.skip("cascade is not installed")
    bank = tmp_path / "bank.json"
    item = {**BANK_ITEM, "bank": {"a": {"response": "A", "score": 1}, "b": {"response": "B", "score": 0}}}
    bank.write_text(json.dumps({"name": "b", "task_type": "bank", "dev": [item], "test": [item]}))
    models = [{"path": name, "backend": "bank", "backend_options": {"bank": str(bank)}} for name in ("a", "b")]
    refused = "models[0].backend: cascade needs generation beyond each model's one answer per query"
    assert_refused(env, "cascade", {}, models, 1, refused, "the bank backend only replays stored answers")
    config = {
        "method": "cascade",
        "params": {"confidence": "self_ask"},
        "models": [{"name": f"m{i}", **m} for i, m in enumerate(models)],
        "dataset": {"path": str(bank)},
    }
    (env / "ask.yaml").write_text(yaml.safe_dump(config))
    assert refused in refusal("validate", env / "ask.yaml"), "self_ask's prompt is not a query the bank holds"
    assert refusal("run", env / "ask.yaml") == refusal("validate", env / "ask.yaml")
