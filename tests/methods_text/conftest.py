"""Helpers of the text-level method tests: scripted pools over the ``letter`` task type, run by the CLI.

In the ``letter`` task type the task prompt is the question itself and the extracted answer is a
response's first letter, so scripted models can answer by prompt and tests assert method logic.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from moco_core.cli import app
from moco_core.testing import (
    scripted_plugins,
    set_responder,
)
from moco_core.types import GenerationRequest

CHOICES = {"A": "a", "B": "b", "C": "c", "D": "d"}


class TextRuns:
    """Scripted members answer through ``responders``; ``run`` goes through ``moco run`` in-process."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cli = CliRunner()
        self.seen: dict[str, list[GenerationRequest]] = {}

    def pool(self, responders: dict[str, Callable[[GenerationRequest], str] | str]) -> list[dict]:
        """Members named as the keys; every request each one gets is logged in ``seen``."""
        models = []
        for name, respond in responders.items():
            path = f"{self.root.name}-{name}"
            self.seen[name] = []

            def logged(request, name=name, respond=respond):
                self.seen[name].append(request)
                return respond(request) if callable(respond) else respond

            set_responder(path, logged)
            models.append({"name": name, "path": path, "backend": "scripted"})
        return models

    def data(self, n_test: int = 2, n_dev: int = 1, answer: str = "A") -> Path:
        def item(split: str, i: int) -> dict:
            return {"id": f"{split}{i}", "question": f"{split} question {i}", "choices": CHOICES, "answer": answer}

        path = self.root / "data.json"
        body = {
            "name": "letters",
            "task_type": "letter",
            "dev": [item("dev", i) for i in range(n_dev)],
            "test": [item("test", i) for i in range(n_test)],
        }
        path.write_text(json.dumps(body))
        return path

    def run(
        self,
        method: str,
        models: list[dict],
        params: dict | None = None,
        data: Path | None = None,
        out: str = "run",
        **extra,
    ) -> Any:
        config = {
            "method": method,
            "params": params or {},
            "models": models,
            "dataset": {"path": str(data or self.data())},
            "output_dir": str(self.root / out),
            **extra,
        }
        path = self.root / f"{out}.yaml"
        path.write_text(yaml.safe_dump(config))
        return self.cli.invoke(app, ["run", str(path)])

    def ok(self, method: str, models: list[dict], params: dict | None = None, **kw: Any) -> list[dict]:
        """Run and return the prediction lines, failing the test on a non-zero exit."""
        result = self.run(method, models, params, **kw)
        assert result.exit_code == 0, result.output
        out = kw.get("out", "run")
        return [json.loads(line) for line in (self.root / out / "predictions.jsonl").read_text().splitlines()]

    def metrics(self, out: str = "run") -> dict:
        return json.loads((self.root / out / "metrics.json").read_text())

    def prompts(self, name: str, containing: str = "") -> list[str]:
        return [r.prompt for r in self.seen[name] if containing in r.prompt]


@pytest.fixture()
def text(fresh_cache_dir, tmp_path) -> TextRuns:
    with scripted_plugins("tt"):
        yield TextRuns(tmp_path)
