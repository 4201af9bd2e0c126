"""A resumable run: plan -> pool -> method (dev, then test in chunks) -> predictions + metrics.

Predictions are appended and flushed chunk by chunk; a rerun of the same config skips the
examples already written (keyed by position and id) and repeats dev work from the generation
cache, so an interrupted run loses nothing and duplicates nothing.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
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
from moco_core.models import model_identity
from moco_core.plugins import get_plugin_manager, get_registry, plugin_infos
from moco_core.pool import ModelPool
from moco_core.provenance import collect_provenance
from moco_core.registry import ScorerSpec
from moco_core.runfiles import RunLock, atomic_write_text, prepare_output_dir, read_json_file
from moco_core.types import Example, Prediction
from moco_core.validation import RunPlan, plan_run

PREDICTIONS = "predictions.jsonl"
METRICS = "metrics.json"
CONFIG = "config.yaml"
FINGERPRINT = "fingerprint.json"
ATTEMPTS = "attempts.json"  # under work/: compute and wall time of every attempt so far
RUN_FILES = (PREDICTIONS, METRICS, CONFIG, FINGERPRINT)
MIN_CHUNK = 32
logger = logging.getLogger(__name__)


@dataclass
class RunResult:
    """A finished run: where it is, its metrics, and how many test examples an earlier attempt had finished."""

    output_dir: Path
    metrics: dict[str, Any]
    resumed: int = 0


def read_predictions(path: Path) -> list[dict[str, Any]]:
    """Complete prediction lines; a line cut short by a kill is dropped from the file.

    Only the last line can be cut short by a kill; a damaged line before it means the file was
    altered, and it is refused as one line naming the file and line number.
    """
    if not path.is_file():
        return []
    raw = path.read_bytes()
    complete = raw[: raw.rfind(b"\n") + 1]
    if len(complete) != len(raw):
        with path.open("r+b") as handle:
            handle.truncate(len(complete))
    lines = []
    for number, line in enumerate(complete.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise MocoError(f"{path}: line {number}: damaged prediction (not UTF-8 at byte {exc.start})") from None
        except json.JSONDecodeError as exc:
            raise MocoError(f"{path}: line {number}: damaged prediction ({exc.msg})") from None
        if not isinstance(value, dict) or not isinstance(value.get("index"), int) or "id" not in value:
            raise MocoError(f"{path}: line {number}: damaged prediction (not an object with 'index' and 'id')")
        if not isinstance(value.get("score"), (int, float)) or isinstance(value.get("score"), bool):
            raise MocoError(f"{path}: line {number}: damaged prediction (no numeric 'score')")
        lines.append(value)
    return lines


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
        try:
            previous = parse_config(read_config_file(previous_file), str(previous_file))
        except MocoError as exc:
            raise MocoError(f"damaged run file: {exc}; delete {output_dir} or choose another output_dir") from None
        if previous.model_dump(exclude={"output_dir", "label"}) != config.model_dump(exclude={"output_dir", "label"}):
            raise MocoError(f"{output_dir}: holds a run of a different config; choose another output_dir or delete it")
    fingerprint_file = output_dir / FINGERPRINT
    if fingerprint_file.is_file():
        previous_fingerprint = read_json_file(fingerprint_file)
        if not isinstance(previous_fingerprint, dict):
            raise MocoError(f"{fingerprint_file}: damaged run file: expected a JSON object")
        if previous_fingerprint != fingerprint:
            raise MocoError(
                f"{output_dir}: the dataset or scorer changed since this run started, so its finished scores are "
                "stale; choose another output_dir or delete it"
            )


def _record_run(output_dir: Path, config: RunConfig, fingerprint: dict[str, str]) -> None:
    """Write config.yaml and fingerprint.json (atomically), once every check has passed."""
    atomic_write_text(output_dir / CONFIG, dump_config(config))
    atomic_write_text(output_dir / FINGERPRINT, json.dumps(fingerprint))


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


def _model_identities(plan: RunPlan, pool: ModelPool, registry: Any) -> dict[str, Any]:
    """Each model's resolved revision or content fingerprint (memoised, so cheap after the run)."""
    identities: dict[str, Any] = {}
    for model in plan.config.models:
        backend = registry.backends.get(model.backend)
        if backend is not None and backend.local_paths:
            identities[model.name] = model_identity(pool.resolved_path(model.name), pool.dtype())
        else:
            identities[model.name] = {"backend": model.backend, "path": model.path}
    return identities


def _chunk_size(config: RunConfig) -> int:
    cap = config.hardware.max_resident_models
    if cap is not None and cap < len(config.models):
        return sys.maxsize  # one round per model over the whole split: no reload thrashing
    return max(MIN_CHUNK, 4 * config.generation.batch_size)


def _progress(total: int, done: int) -> Any:
    from tqdm import tqdm

    from moco_core.logs import progress_enabled

    return tqdm(total=total, initial=done, desc="test", unit="ex", disable=not progress_enabled())


def _prediction_line(
    example: Example, prediction: Prediction, score: float, group_by: str | None, scorer: ScorerSpec
) -> dict[str, Any]:
    """One predictions.jsonl line: the item, the exact task prompt, the output, the gold and extracted
    answers next to the score, so a scorer mistake shows without rerunning."""
    line = {
        "index": example.index,
        "id": example.id,
        "input": example.question,
        "prompt": example.prompt,
        "output": prediction.output,
        "gold": example.answer,
    }
    if scorer.extract is not None:
        line["extracted"] = scorer.extract(example, prediction.output)
    line["score"] = score
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


def extra_scores(
    scorer: ScorerSpec, examples: list[Example], outputs: list[str], options: Any
) -> list[dict[str, float]]:
    """The scorer's secondary per-item metrics (``ScorerSpec.extra_metrics``), empty dicts when it has none."""
    if scorer.extra_metrics is None:
        return [{} for _ in examples]
    found = list(scorer.extra_metrics(examples, outputs, options))
    if len(found) != len(examples):
        raise MocoError(f"task type {scorer.task_type}: extra metrics for {len(found)} of {len(examples)} outputs")
    return found


def summarize_extra(lines: list[dict[str, Any]]) -> dict[str, float]:
    """The mean of each secondary metric over the lines that carry it."""
    values: dict[str, list[float]] = {}
    for line in lines:
        for name, value in (line.get("extra_scores") or {}).items():
            values.setdefault(name, []).append(float(value))
    return {name: sum(found) / len(found) for name, found in values.items()}


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
        "dev_items": len(plan.dataset.dev),
        "generations": {"made": pool.stats.made, "cached": pool.stats.cached},
        "compute": pool.compute.to_metrics(
            untracked_cached=max(0, pool.stats.cached - sum(pool.compute.cached_generations.values()))
        ),
        "hardware": {"device": pool.device(), "dtype": pool.dtype()},
        "wall_time_s": round(wall, 3),
        "seed": plan.config.generation.seed,
        "versions": _versions(),
    }
    extra = summarize_extra(lines)
    if extra:
        metrics["score"]["extra"] = extra
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


def _earlier_attempts(path: Path) -> dict[str, Any]:
    """What earlier attempts of this run computed and how long they ran (empty for a first attempt).

    The file is derived bookkeeping: an unreadable one only loses those counts, so it is skipped
    with a warning rather than refusing the run.
    """
    if not path.is_file():
        return {}
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        logger.warning("%s is unreadable: earlier attempts' compute and wall time are not counted", path)
        return {}
    return found if isinstance(found, dict) else {}


def _record_attempts(path: Path, pool: ModelPool, wall: float, attempts: int) -> None:
    """Compute, generations and wall time so far (every attempt), after each written chunk, so a resumed
    run adds to them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    generations = {"made": pool.stats.made, "cached": pool.stats.cached}
    state = {"compute": pool.compute.state(), "generations": generations, "wall_time_s": wall, "attempts": attempts}
    atomic_write_text(path, json.dumps(state))


def _clear_run(output_dir: Path) -> None:
    """Delete the files an earlier run wrote (and only those), for ``--overwrite``."""
    for name in RUN_FILES:
        (output_dir / name).unlink(missing_ok=True)
    shutil.rmtree(output_dir / "work", ignore_errors=True)


def run(config: RunConfig, use_cache: bool = True, overwrite: bool = False, pools: Any = None) -> RunResult:
    """Run (or resume) ``config`` and write its outputs; returns the metrics.

    The output directory is locked for the whole run, so a second run into it is refused.
    ``overwrite`` deletes an earlier run's results there first, so a finished run starts afresh.
    ``pools`` (a :class:`moco_core.sweep.pools.SharedPools`) lends a pool already loaded by an
    earlier run of the same pool config and takes it back afterwards instead of closing it.
    """
    started = time.monotonic()
    registry = get_registry()
    plan = plan_run(config, registry)
    output_dir = config.resolved_output_dir()
    fingerprint = data_fingerprint(plan)
    prepare_output_dir(output_dir)
    with RunLock(output_dir):
        if overwrite:
            _clear_run(output_dir)
        _check_same_run(output_dir, config, fingerprint)
        return _run_locked(plan, registry, output_dir, fingerprint, use_cache, started, pools)


def _run_locked(
    plan: RunPlan,
    registry: Any,
    output_dir: Path,
    fingerprint: dict[str, str],
    use_cache: bool,
    started: float,
    pools: Any = None,
) -> RunResult:
    config = plan.config
    predictions_file = output_dir / PREDICTIONS
    done = {(line["index"], str(line["id"])) for line in read_predictions(predictions_file)}
    remaining = [e for e in plan.dataset.test if (e.index, e.id) not in done]
    recorded = (output_dir / CONFIG).is_file() and (output_dir / FINGERPRINT).is_file()
    hook = get_plugin_manager().hook
    if pools is None:
        pool = ModelPool(
            config.models,
            config.hardware,
            config.generation.batch_size,
            GenerationCache(enabled=use_cache),
            registry.backends,
            hook,
        )
    else:
        pool = pools.acquire(config, GenerationCache(enabled=use_cache), registry.backends, hook)
    attempts_file = output_dir / "work" / ATTEMPTS
    earlier = _earlier_attempts(attempts_file) if done else {}
    resumed = isinstance(earlier.get("compute"), dict)
    if resumed:
        pool.compute.absorb(earlier["compute"])
    made = earlier.get("generations") if isinstance(earlier.get("generations"), dict) else {}
    for key in ("made", "cached"):
        if isinstance(made.get(key), int) and not isinstance(made.get(key), bool):
            setattr(pool.stats, key, getattr(pool.stats, key) + made[key])
    earlier_wall = (
        float(earlier.get("wall_time_s", 0.0)) if isinstance(earlier.get("wall_time_s"), int | float) else 0.0
    )
    attempts = int(earlier.get("attempts", 0)) + 1 if isinstance(earlier.get("attempts"), int) else 1
    finished = False
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
        before = (pool.compute.state(), pool.stats.made, pool.stats.cached)
        method.prepare()
        if resumed:  # the earlier attempt counted this preparation already
            pool.compute.forget_since(before[0])
            pool.stats.made, pool.stats.cached = before[1], before[2]
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
                extras = extra_scores(plan.scorer, examples, [p.output for p in predictions], config.scoring)
                if not recorded:
                    _record_run(output_dir, config, fingerprint)
                    recorded = True
                with predictions_file.open("a", encoding="utf-8") as handle:
                    for example, prediction, score, extra in zip(examples, predictions, scores, extras, strict=True):
                        line = _prediction_line(example, prediction, score, plan.dataset.group_by, plan.scorer)
                        if extra:
                            line["extra_scores"] = extra
                        handle.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
                    handle.flush()
                    os.fsync(handle.fileno())
                _record_attempts(attempts_file, pool, earlier_wall + time.monotonic() - started, attempts)
                bar.update(len(examples))
        finished = True
    finally:
        if pools is None:
            pool.close()
        else:
            pools.release(pool, config, finished)
        pool.cache.close()
    _record_run(output_dir, config, fingerprint)  # also keeps a label changed on resume (labels are not settings)
    lines = read_predictions(predictions_file)
    metrics = build_metrics(plan, ctx, lines, earlier_wall + time.monotonic() - started, pool)
    metrics["attempts"] = attempts
    metrics["provenance"] = collect_provenance(
        _versions(), pool.device(), _model_identities(plan, pool, registry), fingerprint
    )
    atomic_write_text(output_dir / METRICS, json.dumps(metrics, indent=2, ensure_ascii=False))
    return RunResult(output_dir, metrics, resumed=len(done))
