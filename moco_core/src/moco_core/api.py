"""The Python API for notebooks: run a config given as a dict or a file, and read run directories back.

    from moco_core import run, load_run
    result = run("examples/quickstart.yaml", overrides={"dataset.limit": 8})
    result.metrics["score"]["mean"], result.predictions[0]["output"]
    frame = result.to_dataframe()        # needs pandas

Everything the command line checks is checked here too (the same ``MocoError`` messages), and
a run directory written by either one reads back the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moco_core.config import RunConfig, parse_config, read_config_file
from moco_core.errors import MocoError


@dataclass
class RunOutput:
    """A finished run as Python objects: its directory, metrics, resolved config and prediction lines."""

    output_dir: Path
    metrics: dict[str, Any]
    config: RunConfig | None
    predictions: list[dict[str, Any]] = field(default_factory=list)
    resumed: int = 0

    def to_dataframe(self) -> Any:
        """The predictions as a pandas DataFrame, one row per test example (see ``predictions_frame``)."""
        return _frame(self.predictions, self.metrics)


def _config_data(config: dict[str, Any] | str | Path | RunConfig) -> tuple[dict[str, Any], str]:
    if isinstance(config, RunConfig):
        return config.model_dump(mode="json"), "config"
    if isinstance(config, dict):
        return config, "config"
    if isinstance(config, str | Path):
        return read_config_file(config), str(config)
    raise MocoError(f"config: expected a mapping, a file path or a RunConfig, got {type(config).__name__}")


def resolve_config(
    config: dict[str, Any] | str | Path | RunConfig, overrides: dict[str, Any] | list[str] | None = None
) -> RunConfig:
    """The validated ``RunConfig`` of a dict, file or config, with dotted ``overrides`` applied first."""
    from moco_core.overrides import apply_overrides

    data, source = _config_data(config)
    return parse_config(apply_overrides(data, overrides or {}), source)


def run(
    config: dict[str, Any] | str | Path | RunConfig,
    overrides: dict[str, Any] | list[str] | None = None,
    *,
    use_cache: bool = True,
    overwrite: bool = False,
) -> RunOutput:
    """Run (or resume) a config and return its results; ``overrides`` are dotted keys, e.g.
    ``{"generation.temperature": 0, "dataset.limit": 20}`` (or ``["dataset.limit=20"]``)."""
    from moco_core.runner import run as run_config

    resolved = resolve_config(config, overrides)
    result = run_config(resolved, use_cache=use_cache, overwrite=overwrite)
    found = load_run(result.output_dir)
    found.resumed = result.resumed
    return found


def load_run(run_dir: str | Path) -> RunOutput:
    """A finished run directory (metrics.json, config.yaml, predictions.jsonl) as Python objects."""
    from moco_core.compare import read_metrics

    directory = Path(run_dir)
    metrics = read_metrics(directory)
    config_file = directory / "config.yaml"
    config = parse_config(read_config_file(config_file), str(config_file)) if config_file.is_file() else None
    return RunOutput(directory, metrics, config, _read_predictions(directory / "predictions.jsonl"))


def _read_predictions(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    lines = []
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if text.strip():
            try:
                lines.append(json.loads(text))
            except json.JSONDecodeError as exc:
                raise MocoError(f"{path}: line {number}: damaged prediction ({exc.msg})") from None
    return lines


def _frame(lines: list[dict[str, Any]], metrics: dict[str, Any]) -> Any:
    try:
        import pandas as pd
    except ImportError:
        raise MocoError("a DataFrame needs pandas: pip install pandas") from None
    frame = pd.json_normalize(lines) if lines else pd.DataFrame()
    frame.insert(0, "dataset", metrics.get("dataset"))
    frame.insert(0, "method", metrics.get("method"))
    return frame


def predictions_frame(run_dir: str | Path) -> Any:
    """A run directory's predictions as a pandas DataFrame: one row per test example with method and
    dataset columns; nested fields are flattened (``model_scores.qwen``, ``extra_scores.flexible``)."""
    found = load_run(run_dir)
    return _frame(found.predictions, found.metrics)
