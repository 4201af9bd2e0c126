"""The ``openai`` backend against real HTTP servers on loopback.

A small OpenAI-compatible server (stdlib ``http.server`` in a thread) answers from scripted
models and injects faults (429, 500, dropped connections) to show retries lose and duplicate
nothing. The vLLM test starts vLLM's own server from a separate virtual environment
(``MOCO_VLLM_PYTHON``) and is skipped with a reason where that is absent.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from moco_core.backends.openai import OpenAIBackend
from moco_core.cli import app
from moco_core.hookspecs import hookimpl
from moco_core.registry import MethodSpec, Requirements
from moco_core.testing import ScriptedTaskTypesPlugin, registered_plugin
from moco_core.types import GenerationRequest, GenerationSettings

pytest.importorskip("openai")
cli = CliRunner()
SECRET = "sk-test-do-not-leak-5f1c2e"
ANSWERS = {"good": "A", "bad": "B"}


END = "<|im_end|>"
"""Like vLLM, the server also scores the end token it stopped on, though the text leaves it out."""


def vllm_alternatives(token: str, body: dict) -> list[dict]:
    """Like vLLM, the sampled token comes first among a token's alternatives, then the likeliest ("Z")."""
    both = [{"token": token, "logprob": -0.5, "bytes": None}, {"token": "Z", "logprob": -0.1, "bytes": None}]
    return both[: body["top_logprobs"]]


class FakeServer:
    """Chat and completions endpoints; ``faults`` maps a fault kind to the share (of 6) of requests it hits once."""

    def __init__(self, faults: dict[str, int] | None = None, delay: float = 0.0, key: str | None = None) -> None:
        self.faults = faults or {}
        self.delay = delay
        self.key = key
        self.attempts: dict[str, int] = {}
        self.seeds: dict[str, list[int]] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def fault_for(self, request: str, attempt: int) -> str | None:
        """Each fault kind hits a fixed share of distinct requests, on their first attempt only."""
        if attempt > 1:
            return None
        bucket = int(hashlib.sha256(request.encode()).hexdigest(), 16) % 6
        for i, (kind, share) in enumerate(self.faults.items()):
            if bucket in range(i * share, (i + 1) * share):
                return kind
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                return None

            def _send(self, status: int, body: dict, headers: dict | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if server.key and self.headers.get("Authorization") != f"Bearer {server.key}":
                    self._send(401, {"error": {"message": "bad key", "type": "auth"}})
                    return
                chat = self.path.endswith("/chat/completions")
                prompt = body["messages"][-1]["content"] if chat else body["prompt"]
                request = json.dumps([body["model"], body.get("messages") or prompt, body.get("seed")])
                with server.lock:
                    attempt = server.attempts[request] = server.attempts.get(request, 0) + 1
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    time.sleep(server.delay)
                    fault = server.fault_for(request, attempt)
                    if fault == "drop":
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    if fault in ("429", "500"):
                        self._send(int(fault), {"error": {"message": "busy", "type": "x"}}, {"retry-after-ms": "5"})
                        return
                    with server.lock:
                        server.seeds.setdefault(prompt, []).append(body.get("seed"))
                    self._send(200, self._answer(body, chat))
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def _answer(self, body: dict, chat: bool) -> dict:
                text = f"{ANSWERS.get(body['model'], 'C')} is my answer"
                tokens = text.split()
                usage = {"prompt_tokens": 3, "completion_tokens": len(tokens), "total_tokens": 3 + len(tokens)}
                base = {"id": "x", "created": 0, "model": body["model"], "usage": usage}
                if chat:
                    choice = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
                    if body.get("logprobs"):
                        content = [
                            {"token": t, "logprob": -0.5, "bytes": None, "top_logprobs": vllm_alternatives(t, body)}
                            for t in [*tokens, END]
                        ]
                        choice["logprobs"] = {"content": content}
                    return {**base, "object": "chat.completion", "choices": [choice]}
                choice = {"index": 0, "finish_reason": "stop", "text": text, "logprobs": None}
                if body.get("logprobs"):
                    scored = [*tokens, END]
                    choice["logprobs"] = {
                        "tokens": scored,
                        "token_logprobs": [-0.5] * len(scored),
                        "top_logprobs": [dict(list({t: -0.5, "Z": -0.2}.items())[: body["logprobs"]]) for t in scored],
                        "text_offset": [0] * len(scored),
                    }
                return {**base, "object": "text_completion", "choices": [choice]}

        return Handler

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def letter_tasks(fresh_cache_dir):
    with registered_plugin(ScriptedTaskTypesPlugin(), "letter"):
        yield fresh_cache_dir


def letters(tmp_path, n_test=24, n_dev=6):
    def item(i, split):
        return {
            "id": f"{split}{i}",
            "question": f"{split} question {i}",
            "choices": {"A": "x", "B": "y"},
            "answer": "A",
        }

    data = {"name": "letters", "task_type": "letter"}
    data["dev"] = [item(i, "dev") for i in range(n_dev)]
    data["test"] = [item(i, "test") for i in range(n_test)]
    path = tmp_path / "letters.json"
    path.write_text(json.dumps(data))
    return path


def api_model(name, url, **options):
    return {"name": name, "path": name, "backend": "openai", "backend_options": {"base_url": url, **options}}


def write_config(tmp_path, models, method="majority_vote", **changes):
    body = {
        "method": method,
        "models": models,
        "dataset": {"path": str(letters(tmp_path))},
        "generation": {"max_new_tokens": 8, "batch_size": 4},
        "output_dir": str(tmp_path / "run"),
        **changes,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def test_run_through_faults_retries_and_loses_or_duplicates_nothing(letter_tasks, tmp_path, monkeypatch):
    monkeypatch.setenv("MOCO_TEST_KEY", SECRET)
    with FakeServer({"429": 1, "500": 1, "drop": 1}, delay=0.02, key=SECRET) as server:
        options = {"api_key_env": "MOCO_TEST_KEY", "max_concurrency": 3, "max_retries": 4}
        models = [api_model(n, server.url, **options) for n in ("good", "bad", "good2")]
        models[2]["path"] = "good"
        models[2]["system_prompt"] = "Be brief."
        config = write_config(tmp_path, models, params={"samples_per_model": 2})
        result = cli.invoke(app, ["run", str(config)])
        assert result.exit_code == 0, result.output
        lines = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
        assert sorted(line["index"] for line in lines) == list(range(24))
        assert all(line["output"].startswith("A") and line["score"] == 1.0 for line in lines)
        retried = [p for p, n in server.attempts.items() if n > 1]
        assert retried and all(n <= 2 for n in server.attempts.values())
        assert len(retried) == sum(1 for p in server.attempts if server.fault_for(p, 1))
        assert 2 <= server.max_in_flight <= 3
        seeds = server.seeds["test question 0"]
        assert len(seeds) == len(set(seeds)) == 6, "two samples from each of three members, each its own seed"

        calls = sum(server.attempts.values())
        again = cli.invoke(app, ["run", str(config), "--output-dir", str(tmp_path / "again")])
        assert again.exit_code == 0 and "generations made 0" in again.output
        assert sum(server.attempts.values()) == calls

    written = [p.read_bytes() for p in [*(tmp_path / "run").rglob("*"), *letter_tasks.rglob("*")] if p.is_file()]
    assert written and not any(SECRET.encode() in data for data in written)
    assert "MOCO_TEST_KEY" in (tmp_path / "run" / "config.yaml").read_text()


def test_logprobs_and_the_completions_api(tmp_path):
    with FakeServer() as server:
        backend = OpenAIBackend()
        settings = GenerationSettings(max_new_tokens=8, temperature=0.0)
        for api in ("chat", "completions"):
            handle = backend.load("good", "cpu", "float32", options={"base_url": server.url, "api": api})
            [plain, scored] = backend.generate(
                handle, [GenerationRequest("q"), GenerationRequest("q", logprobs=True)], settings, 4
            )
            assert plain.text == scored.text == "A is my answer"
            assert plain.token_logprobs is None
            assert scored.token_logprobs == [-0.5, -0.5, -0.5, -0.5]
            assert scored.top_logprobs == ([-0.1] * 4 if api == "chat" else [-0.2] * 4)
            backend.unload(handle)
        identity = backend.identity("good", {"base_url": server.url + "/", "max_concurrency": 2})
        assert identity == {"path": "good", "base_url": server.url, "api": "chat"}


def test_server_error_is_one_line_after_retries(letter_tasks, tmp_path):
    with FakeServer(key="another-key") as server:
        config = write_config(tmp_path, [api_model("good", server.url, max_retries=0)], method="single_model")
        result = cli.invoke(app, ["run", str(config)])
    assert result.exit_code == 2
    assert "AuthenticationError" in result.output and "good" in result.output


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"method": "logit_fusion"}, "models[0].backend: logit_fusion (logit level) needs the model's weights"),
        (
            {"backend_options": {"api_key": "sk-x"}},
            "models[0].backend_options: api_key: Value error, a key in the config",
        ),
        ({"backend_options": {"base_url": "localhost:8000"}}, "models[0].backend_options: base_url: Value error"),
        ({"backend_options": {"max_concurency": 2}}, "models[0].backend_options: max_concurency: unknown key"),
        ({"backend": "hf", "backend_options": {"base_url": "http://x"}}, "the hf backend takes no options"),
        ({"backend_options": {"api_key_env": "MOCO_UNSET_KEY_VAR"}}, "MOCO_UNSET_KEY_VAR is not set"),
    ],
)
def test_bad_remote_config_is_one_line_before_any_request(letter_tasks, tmp_path, change, message):
    with FakeServer() as server:
        models = [api_model(n, server.url) for n in ("good", "bad")]
        method = change.pop("method", "single_model")
        for model in models:
            model.update(change)
            if model["backend"] == "hf":
                model["path"] = str(tmp_path)
        result = cli.invoke(app, ["run", str(write_config(tmp_path, models, method=method))])
        assert result.exit_code == 2, result.output
        assert message in result.output
        assert server.attempts == {}


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class VLLMServer:
    url: str
    folder: str
    startup_s: float


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory):
    """vLLM's OpenAI-compatible server on SmolLM2-135M, started once for this module (about a minute on CPU).

    Skipped, never failed, when vLLM is absent or its server does not come up: it runs in its own
    virtual environment (``scripts/setup_vllm.sh``), named by ``MOCO_VLLM_PYTHON``.
    """
    python = os.environ.get("MOCO_VLLM_PYTHON")
    if not python or not Path(python).is_file():
        pytest.skip("vLLM is not installed: run scripts/setup_vllm.sh and set MOCO_VLLM_PYTHON=.venv-vllm/bin/python")
    if subprocess.run([python, "-c", "import vllm"], capture_output=True, timeout=300).returncode != 0:
        pytest.skip(f"vllm does not import in {python}")
    try:
        from moco_core.models import resolve_model_path

        folder = resolve_model_path("smollm2-135m-instruct")
    except Exception as exc:
        pytest.skip(f"SmolLM2-135M-Instruct is not available offline: {exc}")
    port = _free_port()
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    command = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", folder, "--served-model-name", "smollm2"]
    command += ["--dtype", "float32", "--max-model-len", "1024", "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    started = time.monotonic()
    with log.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    limit_s = float(os.environ.get("MOCO_VLLM_STARTUP_S", "900"))
    try:
        while time.monotonic() - started < limit_s:
            if process.poll() is not None:
                pytest.skip(f"vLLM exited with {process.returncode}: {log.read_text()[-500:]}")
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"{url}/models", timeout=5)
                break
            time.sleep(2)
        else:
            pytest.skip(f"vLLM did not start within {limit_s:.0f} s (MOCO_VLLM_STARTUP_S)")
        yield VLLMServer(url, folder, time.monotonic() - started)
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=60)
        if process.poll() is None:
            process.kill()


@pytest.mark.vllm
def test_vllm_server_runs_a_method_with_seeds(letter_tasks, tmp_path, vllm_server):
    url = vllm_server.url
    models = [api_model("smollm2", url, max_concurrency=4), api_model("smollm2", url)]
    models[1]["name"], models[1]["system_prompt"] = "terse", "Answer in one word."
    config = write_config(tmp_path, models, generation={"max_new_tokens": 16, "temperature": 0.7, "seed": 3})
    result = cli.invoke(app, ["run", str(config), "--limit", "4"])
    assert result.exit_code == 0, result.output
    first = (tmp_path / "run" / "predictions.jsonl").read_text()
    assert len(first.splitlines()) == 4
    again = cli.invoke(app, ["run", str(config), "--limit", "4", "--output-dir", str(tmp_path / "b"), "--no-cache"])
    assert again.exit_code == 0
    outputs = lambda text: [json.loads(line)["output"] for line in text.splitlines()]  # noqa: E731
    assert outputs((tmp_path / "b" / "predictions.jsonl").read_text()) == outputs(first), "seeded sampling repeats"
    assert all(outputs(first)), "every item got an answer"


@pytest.mark.vllm
def test_vllm_matches_transformers_and_reports_the_true_top_token(vllm_server):
    """Greedy text and both log-probs equal the hf backend's on the same weights; when a sample is not
    the likeliest token, its top log-prob is still the likeliest's (vLLM lists the sample first)."""
    from moco_core.backends.hf import HFBackend

    requests = [GenerationRequest("Say hi", logprobs=True), GenerationRequest("Name a colour.", "Be brief.", 0, True)]
    backend = OpenAIBackend()
    handle = backend.load("smollm2", "cpu", "float32", options={"base_url": vllm_server.url})
    greedy = GenerationSettings(max_new_tokens=12, temperature=0.0)
    served = backend.generate(handle, requests, greedy, 2)
    hf = HFBackend()
    local = hf.load(vllm_server.folder, "cpu", "float32")
    expected = hf.generate(local, requests, greedy, 2)
    hf.unload(local)
    for got, want in zip(served, expected, strict=True):
        assert got.text == want.text
        assert got.token_logprobs == pytest.approx(want.token_logprobs, abs=2e-3)
        assert got.top_logprobs == pytest.approx(want.top_logprobs, abs=2e-3)
    sampled = backend.generate(handle, requests, GenerationSettings(max_new_tokens=24, temperature=1.0, top_p=1.0), 2)
    backend.unload(handle)
    pairs = [(c, t) for g in sampled for c, t in zip(g.token_logprobs, g.top_logprobs, strict=True)]
    assert len(pairs) > 10 and all(c <= t + 1e-6 for c, t in pairs)
    assert any(c < t - 1e-3 for c, t in pairs), "some sampled token was not the likeliest"


class FlaggedMethods:
    """Two methods whose own ``local_weights`` overrides what their level and training imply."""

    @hookimpl
    def moco_register_methods(self, register):
        base = {"implementation": "moco_methods_api.single_model:SingleModel", "summary": "test"}
        register(MethodSpec(key="token_switching", level="api", requirements=Requirements(local_weights=True), **base))
        register(
            MethodSpec(
                key="text_trainer", level="text", trains=True, requirements=Requirements(local_weights=False), **base
            )
        )


def test_a_method_can_say_whether_it_needs_local_weights(letter_tasks, tmp_path):
    with FakeServer() as server, registered_plugin(FlaggedMethods(), "flagged"):
        models = [api_model(n, server.url) for n in ("good", "bad")]
        refused = cli.invoke(app, ["validate", str(write_config(tmp_path, models, method="token_switching"))])
        assert refused.exit_code == 2 and "token_switching (api level) needs the model's weights" in refused.output
        allowed = cli.invoke(app, ["validate", str(write_config(tmp_path, models, method="text_trainer"))])
        assert allowed.exit_code == 0, allowed.output
