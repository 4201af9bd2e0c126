"""Helpers of the API-level method tests: scripted pools over the ``free`` task type, run by the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from moco_core.cli import app
from moco_core.testing import scripted_plugins, set_responder, with_confidence


class ApiRuns:
    """Write a data file, run a method through ``moco run`` in-process, read its outputs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cli = CliRunner()

    def data(self, dev: list[tuple[str, str]], test: list[tuple[str, str]], task_type: str = "free") -> Path:
        """A benchmark file of (input, output) pairs."""

        def items(pairs: list[tuple[str, str]], split: str) -> list[dict]:
            return [{"id": f"{split}{i}", "input": q, "output": a} for i, (q, a) in enumerate(pairs)]

        path = self.root / f"data-{len(list(self.root.glob('data-*')))}.json"
        body = {"name": "synthetic", "task_type": task_type, "dev": items(dev, "d"), "test": items(test, "t")}
        path.write_text(json.dumps(body))
        return path

    def run(
        self, method: str, models: list[dict], data: Path, params: dict | None = None, out: str | None = None, **extra
    ) -> tuple[Any, Path]:
        """The CLI result and the run folder (``out`` names it; default ``run-<method>``)."""
        folder = self.root / (out or f"run-{method}")
        config = {
            "method": method,
            "params": params or {},
            "models": models,
            "dataset": {"path": str(data)},
            "output_dir": str(folder),
            **extra,
        }
        path = self.root / f"{out or method}.yaml"
        path.write_text(yaml.safe_dump(config))
        return self.cli.invoke(app, ["run", str(path)]), folder

    @staticmethod
    def predictions(run_dir: Path) -> list[dict]:
        return [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]

    @staticmethod
    def metrics(run_dir: Path) -> dict:
        return json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture()
def api(fresh_cache_dir, tmp_path) -> ApiRuns:
    """The scripted backend and the ``free`` task type (score 1 when the output equals the answer)."""
    with scripted_plugins("tt"):
        yield ApiRuns(tmp_path)


OTHER_CORPUS = [
    "A different corpus gives a different vocabulary: numbers 11 12 13 and words like because, therefore.",
    "The answer is probably (C), although (A) and (B) are tempting. Let us think step by step.",
    "history math coding science: each domain has its own model, and a router picks one.",
]


@pytest.fixture(scope="session")
def other_tokenizer_model(tmp_path_factory) -> Path:
    """A tiny Llama whose tokenizer differs from the tiny pool's (vocabulary and merges)."""
    from moco_core.testing import CORPUS, SPECIAL_TOKENS, build_other_tokenizer_model

    return build_other_tokenizer_model(
        tmp_path_factory.mktemp("other-tokenizer"),
        seed=7,
        vocab_size=330,
        corpus=OTHER_CORPUS + CORPUS[:3],
        special_tokens=SPECIAL_TOKENS,
        repeats=3,
    )


@pytest.fixture(scope="session")
def trainable_tiny_model(tmp_path_factory, tiny_pool_paths) -> Path:
    """A tiny Llama with the default (small) initialisation, so a few LoRA steps can teach it a rule."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    from moco_core.testing import tiny_llama_config

    folder = tmp_path_factory.mktemp("trainable")
    tokenizer = AutoTokenizer.from_pretrained(tiny_pool_paths[0])
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_llama_config(tokenizer, tie_word_embeddings=False))
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    return folder


@pytest.fixture()
def confident_members():
    """Makes scripted members ``weak``, ``mid`` and ``strong`` answer from a script mapping
    (member, prompt) to (text, per-token top-1 probabilities or None), which a test fills."""

    def install(script: dict, members: tuple[str, ...] = ("weak", "mid", "strong")) -> None:
        script.clear()
        for member in members:
            set_responder(member, lambda request, member=member: with_confidence(*script[(member, request.prompt)]))

    return install
