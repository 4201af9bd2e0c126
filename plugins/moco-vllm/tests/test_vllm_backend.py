"""The ``vllm`` backend: config checks everywhere; real generation where vLLM is installed (``-m vllm``).

The engine tests run in the vLLM virtual environment (``scripts/setup_vllm.sh`` installs moco and
this plugin there): ``.venv-vllm/bin/python -m pytest -m vllm plugins/moco-vllm/tests``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json

import pytest
import yaml
from typer.testing import CliRunner

from moco_core.cli import app
from moco_core.errors import MocoError
from moco_core.plugins import get_registry
from moco_core.testing import ScriptedTaskTypesPlugin, registered_plugin
from moco_core.types import GenerationRequest, GenerationSettings
from moco_vllm import plugin
from moco_vllm.backend import VLLMBackend, replica_devices

HAS_VLLM = importlib.util.find_spec("vllm") is not None
cli = CliRunner()


@pytest.fixture()
def vllm_registered():
    """The plugin registered for the test, unless its entry point already did (installed in this venv)."""
    with contextlib.ExitStack() as stack:
        if "vllm" not in get_registry().backends:
            stack.enter_context(registered_plugin(plugin, "vllm"))
        stack.enter_context(registered_plugin(ScriptedTaskTypesPlugin(), "letter"))
        yield


def write_config(tmp_path, model_path, options, method="single_model", limit_items=4):
    items = [
        {
            "id": f"q{i}",
            "question": f"Which letter comes first, A or B? ({i})",
            "choices": {"A": "x", "B": "y"},
            "answer": "A",
        }
        for i in range(limit_items)
    ]
    data = {"name": "letters", "task_type": "letter", "dev": items[:1], "test": items}
    (tmp_path / "letters.json").write_text(json.dumps(data))
    body = {
        "method": method,
        "models": [{"name": "smol", "path": str(model_path), "backend": "vllm", "backend_options": options}],
        "dataset": {"path": str(tmp_path / "letters.json")},
        "generation": {"max_new_tokens": 8, "temperature": 0.0},
        "hardware": {"device": "cpu", "dtype": "float32"},
        "output_dir": str(tmp_path / "run"),
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tensor_parallel_size": 0}, "models[0].backend_options: tensor_parallel_size"),
        ({"data_paralel_size": 2}, "models[0].backend_options: data_paralel_size: unknown key"),
    ],
)
def test_bad_options_are_one_line_before_any_model_loads(vllm_registered, tmp_path, options, message):
    result = cli.invoke(app, ["validate", str(write_config(tmp_path, tmp_path, options))])
    assert result.exit_code == 2, result.output
    assert message in result.output


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed here; this checks the refusal where it is not")
def test_without_vllm_the_backend_is_refused_with_one_line(vllm_registered, tmp_path):
    result = cli.invoke(app, ["validate", str(write_config(tmp_path, tmp_path, {}))])
    assert result.exit_code == 2
    assert "vLLM is not installed here" in result.output


def test_replicas_get_their_own_gpus(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3,4,5")
    assert replica_devices("cpu", 1, 2) is None
    assert [replica_devices("cuda", r, 2) for r in range(3)] == ["0,1", "2,3", "4,5"]
    assert replica_devices("cuda:4", 0, 2) == "4,5"
    with pytest.raises(MocoError, match=r"needs GPUs 6\.\.7"):
        replica_devices("cuda", 3, 2)


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    if not HAS_VLLM:
        pytest.skip("vLLM is not installed: run scripts/setup_vllm.sh and test with .venv-vllm/bin/python")
    from moco_core.models import resolve_model_path

    try:
        return resolve_model_path("smollm2-135m-instruct")
    except MocoError as exc:
        pytest.skip(f"SmolLM2-135M-Instruct is not available offline: {exc}")


@pytest.fixture()
def two_replicas(smollm2):
    """Two data-parallel replicas of SmolLM2 on CPU, each its own engine process."""
    backend = VLLMBackend()
    try:
        handle = backend.load(smollm2, "cpu", "float32", options={"data_parallel_size": 2, "max_model_len": 1024})
    except MocoError as exc:
        pytest.skip(f"the vLLM engine could not start here: {exc}")
    yield backend, handle
    processes = [r.process for r in handle.replicas]
    backend.unload(handle)
    assert processes and not any(p.is_alive() for p in processes)


@pytest.mark.vllm
def test_replicas_match_transformers_and_split_rows_without_changing_them(smollm2, two_replicas):
    from moco_core.backends.hf import HFBackend

    backend, handle = two_replicas
    assert len(handle.replicas) == 2
    requests = [
        GenerationRequest("Say hi", logprobs=True),
        GenerationRequest("Name a colour.", "Be brief.", 0, True),
        GenerationRequest("Count to three."),
    ]
    greedy = GenerationSettings(max_new_tokens=12, temperature=0.0)
    got = backend.generate(handle, requests, greedy, 8)
    hf = HFBackend()
    local = hf.load(smollm2, "cpu", "float32")
    want = hf.generate(local, requests, greedy, 8)
    hf.unload(local)
    assert [g.text for g in got] == [w.text for w in want]
    assert [(g.tokens, g.prompt_tokens) for g in got] == [(w.tokens, w.prompt_tokens) for w in want]
    for g, w in zip(got[:2], want[:2], strict=True):
        assert g.token_logprobs == pytest.approx(w.token_logprobs, abs=2e-3)
        assert g.top_logprobs == pytest.approx(w.top_logprobs, abs=2e-3)
    assert got[2].token_logprobs is None

    sampled = GenerationSettings(max_new_tokens=16, temperature=1.0, top_p=1.0, seed=7)
    forward = backend.generate(handle, requests, sampled, 8)
    backward = backend.generate(handle, requests[::-1], sampled, 8)[::-1]
    assert [g.text for g in forward] == [g.text for g in backward], "a row's sample does not depend on its replica"
    pairs = [(c, t) for g in forward[:2] for c, t in zip(g.token_logprobs, g.top_logprobs, strict=True)]
    assert all(c <= t + 1e-6 for c, t in pairs) and any(c < t - 1e-3 for c, t in pairs)
    other_seed = backend.generate(handle, requests, GenerationSettings(16, 1.0, 1.0, seed=8), 8)
    assert [g.text for g in other_seed] != [g.text for g in forward]


@pytest.mark.vllm
def test_a_run_on_the_vllm_backend(smollm2, vllm_registered, tmp_path):
    config = write_config(tmp_path, smollm2, {"max_model_len": 1024})
    result = cli.invoke(app, ["run", str(config)])
    if "starting the engine" in result.output:
        pytest.skip(f"the vLLM engine could not start here: {result.output.strip()}")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    assert len(lines) == 4 and all(line["output"] for line in lines)
    again = cli.invoke(app, ["run", str(config), "--output-dir", str(tmp_path / "again")])
    assert again.exit_code == 0 and "generations made 0" in again.output
