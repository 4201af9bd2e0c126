"""A resumable run: plan -> pool -> method (dev, then test in chunks) -> predictions + metrics.

Predictions are appended and flushed chunk by chunk; a rerun of the same config skips the
examples already written (keyed by position and id) and repeats dev work from the generation
cache, so an interrupted run loses nothing and duplicates nothing.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from moco_core.cache import GenerationCache, cache_key
from moco_core.config import RunConfig, dump_config, parse_config, read_config_file
from moco_core.errors import MocoError
from moco_core.method import MethodContext
from moco_core.plugins import get_plugin_manager, get_registry, plugin_infos
from moco_core.pool import ModelPool
from moco_core.types import Example, Prediction
from moco_core.validation import RunPlan, plan_run

PREDICTIONS = "predictions.jsonl"
METRICS = "metrics.json"
CONFIG = "config.yaml"
FINGERPRINT = "fingerprint.json"
MIN_CHUNK = 32


@dataclass
class RunResult:
    output_dir: Path
    metrics: dict[str, Any]


def read_predictions(path: Path) -> list[dict[str, Any]]:
    """Complete prediction lines; a line cut short by a kill is dropped from the file."""
    if not path.is_file():
        return []
    raw = path.read_bytes()
    complete = raw[: raw.rfind(b"\n") + 1]
    if len(complete) != len(raw):
        with path.open("r+b") as handle:
            handle.truncate(len(complete))
    return [json.loads(line) for line in complete.decode("utf-8").splitlines() if line.strip()]


def data_fingerprint(plan: RunPlan) -> dict[str, str]:
    """What the finished predictions' scores depend on besides the config: the data and scorer."""
    items = [
        (e.index, e.id, e.question, repr(e.answer), e.choices, e.prompt) for e in plan.dataset.dev + plan.dataset.test
    ]
    scorer = plan.scorer.distribution
    try:
        scorer_version = version(scorer) if scorer else ""
    except PackageNotFoundError:
        scorer_version = ""
    return {"data": cache_key(items=items), "scorer": f"{scorer} {scorer_version}".strip()}


def _check_same_run(output_dir: Path, config: RunConfig, fingerprint: dict[str, str]) -> None:
    """A resumed run must be the same run: same config, same data, same scorer version."""
    previous_file = output_dir / CONFIG
    if previous_file.is_file():
        previous = parse_config(read_config_file(previous_file), str(previous_file))
        if previous.model_dump(exclude={"output_dir"}) != config.model_dump(exclude={"output_dir"}):
            raise MocoError(f"{output_dir}: holds a run of a different config; choose another output_dir or delete it")
    fingerprint_file = output_dir / FINGERPRINT
    if fingerprint_file.is_file() and json.loads(fingerprint_file.read_text()) != fingerprint:
        raise MocoError(
            f"{output_dir}: the dataset or scorer changed since this run started, so its finished scores are stale; "
            "choose another output_dir or delete it"
        )


def _versions() -> dict[str, str]:
    found = {}
    for info in plugin_infos():
        found.setdefault(info.distribution, info.version)
    for name in ("torch", "transformers"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def _chunk_size(config: RunConfig) -> int:
    cap = config.hardware.max_resident_models
    if cap is not None and cap < len(config.models):
        return sys.maxsize  # one round per model over the whole split: no reload thrashing
    return max(MIN_CHUNK, 4 * config.generation.batch_size)


def _progress(total: int, done: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, initial=done, desc="test", unit="ex", disable=not sys.stderr.isatty())


def _prediction_line(example: Example, prediction: Prediction, score: float, group_by: str | None) -> dict[str, Any]:
    line = {
        "index": example.index,
        "id": example.id,
        "input": example.question,
        "output": prediction.output,
        "score": score,
    }
    if group_by:
        line["group"] = example.extra.get(group_by)
    return {**line, **prediction.extras}


def summarize_scores(lines: list[dict[str, Any]], grouped: bool, normalize: bool = False) -> dict[str, Any]:
    """Mean and count; for grouped datasets a group counts only when all its items score 1.

    Scores outside [0, 1] (reward models) also get ``normalized_mean``: the mean after min-max
    scaling over this run's items, comparable within the run only; ``moco compare`` rescales
    across methods.
    """
    scores = [float(line["score"]) for line in lines]
    summary: dict[str, Any] = {"mean": sum(scores) / len(scores) if scores else 0.0, "count": len(scores)}
    if normalize and scores:
        low, high = min(scores), max(scores)
        scaled = [(s - low) / (high - low) if high > low else 0.5 for s in scores]
        summary["normalized_mean"] = sum(scaled) / len(scaled)
    if grouped:
        groups: dict[str, bool] = {}
        for line in lines:
            key = str(line.get("group", line["id"]))
            groups[key] = groups.get(key, True) and float(line["score"]) >= 1.0
        summary = {
            "mean": sum(groups.values()) / len(groups) if groups else 0.0,
            "count": len(groups),
            "item_mean": summary["mean"],
            "item_count": summary["count"],
        }
    return summary


def _model_test_scores(lines: list[dict[str, Any]], grouped: bool) -> dict[str, float]:
    """Each model's test score, summarised like the method's (by group where the dataset groups)."""
    per_model: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        for name, score in (line.get("model_scores") or {}).items():
            per_model.setdefault(name, []).append({"id": line["id"], "group": line.get("group"), "score": score})
    return {name: summarize_scores(rows, grouped)["mean"] for name, rows in per_model.items()}


def build_metrics(
    plan: RunPlan, ctx: MethodContext, lines: list[dict[str, Any]], wall: float, pool: ModelPool
) -> dict[str, Any]:
    metrics: dict[str, Any] = {
        "method": plan.method.key,
        "dataset": plan.dataset.name,
        "domain": plan.dataset.domain,
        "dataset_source": plan.dataset.source,
        "task_type": plan.dataset.task_type,
        "metric": plan.scorer.metric,
        "normalize": plan.scorer.normalize,
        "pool": [{"name": m.name, "path": m.path} for m in plan.config.models],
        "score": summarize_scores(lines, plan.dataset.group_by is not None, plan.scorer.normalize),
        "generations": {"made": pool.stats.made, "cached": pool.stats.cached},
        "hardware": {"device": pool.device(), "dtype": pool.dtype()},
        "wall_time_s": round(wall, 3),
        "seed": plan.config.generation.seed,
        "versions": _versions(),
    }
    model_scores = _model_test_scores(lines, plan.dataset.group_by is not None)
    if model_scores:
        metrics["model_test_scores"] = model_scores
    metrics.update(ctx.metrics)
    dev_scores = ctx.metrics.get("dev_scores")
    if dev_scores:
        best = max(dev_scores, key=lambda name: dev_scores[name])
        metrics["dev_best_single"] = {
            "model": best,
            "dev_score": dev_scores[best],
            "test_score": model_scores.get(best),
        }
    return metrics


def run(config: RunConfig, use_cache: bool = True) -> RunResult:
    """Run (or resume) ``config`` and write its outputs; returns the metrics."""
    started = time.monotonic()
    registry = get_registry()
    plan = plan_run(config, registry)
    output_dir = config.resolved_output_dir()
    fingerprint = data_fingerprint(plan)
    _check_same_run(output_dir, config, fingerprint)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / CONFIG).write_text(dump_config(config), encoding="utf-8")
    (output_dir / FINGERPRINT).write_text(json.dumps(fingerprint), encoding="utf-8")
    predictions_file = output_dir / PREDICTIONS
    done = {(line["index"], str(line["id"])) for line in read_predictions(predictions_file)}
    remaining = [e for e in plan.dataset.test if (e.index, e.id) not in done]
    hook = get_plugin_manager().hook
    pool = ModelPool(
        config.models,
        config.hardware,
        config.generation.batch_size,
        GenerationCache(enabled=use_cache),
        registry.backends,
        hook,
    )
    ctx = MethodContext(
        pool=pool,
        dataset=plan.dataset,
        params=plan.params,
        settings=config.generation.settings(),
        scorer=plan.scorer,
        hook=hook,
        work_dir=output_dir / "work",
        scoring=config.scoring,
    )
    try:
        method = plan.method.load()(ctx)
        method.prepare()
        chunk = _chunk_size(config)
        with _progress(len(plan.dataset.test), len(plan.dataset.test) - len(remaining)) as bar:
            for start in range(0, len(remaining), chunk):
                examples = remaining[start : start + chunk]
                predictions = method.predict(examples)
                if len(predictions) != len(examples):
                    raise MocoError(
                        f"method {plan.method.key} returned {len(predictions)} predictions for {len(examples)} examples"
                    )
                scores = ctx.score(examples, [p.output for p in predictions])
                with predictions_file.open("a", encoding="utf-8") as handle:
                    for example, prediction, score in zip(examples, predictions, scores, strict=True):
                        line = _prediction_line(example, prediction, score, plan.dataset.group_by)
                        handle.write(json.dumps(line, ensure_ascii=False) + "\n")
                    handle.flush()
                    os.fsync(handle.fileno())
                bar.update(len(examples))
    finally:
        pool.close()
        pool.cache.close()
    lines = read_predictions(predictions_file)
    metrics = build_metrics(plan, ctx, lines, time.monotonic() - started, pool)
    (output_dir / METRICS).write_text(json.dumps(metrics, indent=2, ensure_ascii=False), encoding="utf-8")
    return RunResult(output_dir, metrics)
