"""One table across run directories: rows are methods (or settings of one), columns datasets by domain.

Like the paper's Table 1: dataset columns ordered by domain, a macro-average per domain with
more than one dataset, and an overall average.  Columns whose scores are not in [0, 1]
(reward models) are min-max normalised across the table's rows before they enter an average;
the cells themselves show the raw means.

A table must not mislead, so: runs on one dataset that scored different items (another limit,
split or data file) are refused, naming the difference; other differences between rows (pool,
generation settings, seeds) are flagged as warnings; two runs of one method with different
settings become two rows labelled by what differs (or by the config's ``label``); runs that
differ only in ``generation.seed`` are one cell showing the mean and spread over seeds. Each
cell carries its item count and uncertainty, and each method a paired test against the pool's
best single model on the same items (``compare_stats``).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from moco_core.compare_stats import PairedTest, bootstrap_interval, paired_test, standard_error
from moco_core.errors import MocoError
from moco_core.runfiles import read_json_file

BEST_SINGLE = "best single model"
ORACLE = "oracle upper bound"
DOMAIN_ORDER = (
    "qa",
    "math",
    "reasoning",
    "knowledge",
    "culture",
    "science",
    "safety",
    "code",
    "medical",
    "instruction_following",
    "diversity",
)
DATA_KEYS = ("dataset.limit", "dataset.split_seed", "dataset.source", "dataset.name", "dataset.path", "data")
FLAGGED_KEYS = ("models", "generation.max_new_tokens", "generation.temperature", "generation.top_p", "seeds")
NOT_SETTINGS = (
    "dataset",
    "output_dir",
    "label",
    "generation.seed",
    "generation.batch_size",
    "hardware.device",
    "hardware.max_resident_models",
    "scoring.batch_size",
    "scoring.device",
    "scoring.code_workers",
)


@dataclass
class Column:
    dataset: str
    domain: str
    normalize: bool


@dataclass
class RunRecord:
    """One finished run as the table needs it: metrics, settings, and per-item (or per-group) scores."""

    directory: Path
    metrics: dict[str, Any]
    settings: dict[str, str]
    data: dict[str, str]
    seed: Any
    units: dict[str, float] | None
    single_units: dict[str, float] | None
    label: str | None

    @property
    def method(self) -> str:
        return self.metrics["method"]

    @property
    def dataset(self) -> str:
        return self.metrics["dataset"]


@dataclass
class Cell:
    """One row's result on one dataset: over one run, or the mean of several seeds."""

    runs: list[RunRecord]
    mean: float
    n: int
    se: float | None = None
    ci: tuple[float, float] | None = None
    seed_sd: float | None = None
    vs_best: PairedTest | None = None

    @property
    def seeds(self) -> int:
        return len(self.runs)


@dataclass
class Comparison:
    """What every output format renders: columns, rows of cells, averages and warnings."""

    columns: list[Column]
    rows: dict[str, dict[str, Cell]]
    methods: dict[str, str]
    averages: dict[str, dict[str, float | None]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def read_metrics(run_dir: str | Path) -> dict[str, Any]:
    """A run's metrics.json, refused in one line naming it unless it has what the table needs."""
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        raise MocoError(f"{run_dir}: no metrics.json (not a finished moco run)")
    metrics = read_json_file(path, "metrics file")
    if not isinstance(metrics, dict):
        raise MocoError(f"{path}: not a moco metrics file (expected a JSON object, found {type(metrics).__name__})")
    for key in ("method", "dataset"):
        if not isinstance(metrics.get(key), str) or not metrics[key]:
            raise MocoError(f"{path}: not a moco metrics file (no {key!r})")
    mean = metrics.get("score", {}).get("mean") if isinstance(metrics.get("score"), dict) else None
    if isinstance(mean, bool) or not isinstance(mean, int | float):
        raise MocoError(f"{path}: not a moco metrics file (no numeric 'score.mean')")
    best = metrics.get("dev_best_single")
    single = best.get("test_score") if isinstance(best, dict) else None
    if (best is not None and not isinstance(best, dict)) or isinstance(single, bool | str | list | dict):
        raise MocoError(f"{path}: not a moco metrics file ('dev_best_single' has no numeric 'test_score')")
    return metrics


def _flatten(value: Any, prefix: str, into: dict[str, str]) -> None:
    if isinstance(value, dict) and prefix != "models":
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), into)
        return
    if prefix == "models" and isinstance(value, list):
        into[prefix] = "+".join(_model_label(m) for m in value)
        return
    into[prefix] = json.dumps(value, sort_keys=True, ensure_ascii=False) if not isinstance(value, str) else value


def _model_label(model: Any) -> str:
    if not isinstance(model, dict):
        return str(model)
    text = f"{model.get('name')}:{Path(str(model.get('path', ''))).name}"
    return text + (f"[{model['system_prompt']}]" if model.get("system_prompt") else "")


def _read_config(directory: Path) -> dict[str, Any]:
    from moco_core.config import read_config_file

    path = directory / "config.yaml"
    return read_config_file(path) if path.is_file() else {}


def _read_lines(directory: Path) -> list[dict[str, Any]] | None:
    path = directory / "predictions.jsonl"
    if not path.is_file():
        return None
    lines = []
    for number, text in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except json.JSONDecodeError:
            raise MocoError(f"{path}: line {number}: damaged prediction (malformed JSON)") from None
        if isinstance(line, dict):
            lines.append(line)
    return lines


def _units(lines: list[dict[str, Any]], grouped: bool, model: str | None = None) -> dict[str, float] | None:
    """Per-item scores keyed by index and id (or per group for datasets scored by group)."""
    scores: dict[str, float] = {}
    for line in lines:
        value = line.get("score") if model is None else (line.get("model_scores") or {}).get(model)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if grouped:
            key = f"group:{line.get('group', line.get('id'))}"
            scores[key] = min(scores.get(key, 1.0), 1.0 if value >= 1.0 else 0.0)
        else:
            scores[f"{line.get('index')}:{line.get('id')}"] = float(value)
    return scores or None


def load_run(run_dir: str | Path) -> RunRecord:
    """Everything ``compare`` reads of one run directory (config.yaml and predictions.jsonl when present)."""
    directory = Path(run_dir)
    metrics = read_metrics(directory)
    config = _read_config(directory)
    flat: dict[str, str] = {}
    _flatten(config, "", flat)
    if "models" not in flat and isinstance(metrics.get("pool"), list):
        flat["models"] = "+".join(_model_label(m) for m in metrics["pool"])
    settings = {k: v for k, v in flat.items() if not any(k == n or k.startswith(n + ".") for n in NOT_SETTINGS)}
    data = {k: v for k, v in flat.items() if k in DATA_KEYS and v != "null"}
    fingerprint = directory / "fingerprint.json"
    if fingerprint.is_file():
        found = read_json_file(fingerprint)
        if isinstance(found, dict) and isinstance(found.get("data"), str):
            data["data"] = found["data"]
    lines = _read_lines(directory)
    grouped = isinstance(metrics.get("score"), dict) and "item_mean" in metrics["score"]
    best = metrics.get("dev_best_single") if isinstance(metrics.get("dev_best_single"), dict) else {}
    seed = config.get("generation", {}).get("seed") if isinstance(config.get("generation"), dict) else None
    return RunRecord(
        directory=directory,
        metrics=metrics,
        settings=settings,
        data=data,
        seed=seed if seed is not None else metrics.get("seed"),
        units=_units(lines, grouped) if lines else None,
        single_units=_units(lines, grouped, best.get("model")) if lines and best.get("model") else None,
        label=config.get("label") if isinstance(config.get("label"), str) else None,
    )


def _row_labels(records: list[RunRecord]) -> list[str]:
    """Each run's row: its config label, else its method plus the settings that set it apart from
    other runs of that method (``single_model`` rows become the best-single row; an oracle's row says
    it is an upper bound)."""
    labels = []
    for record in records:
        same = [r for r in records if r.method == record.method and r.label is None]
        keys = sorted({k for r in same for k in {*r.settings, *record.settings}})
        differing = [k for k in keys if len({r.settings.get(k) for r in same}) > 1]
        base = BEST_SINGLE if record.method == "single_model" else record.method
        if record.label is not None:
            labels.append(record.label)
        elif differing:
            labels.append(f"{base} ({', '.join(f'{k}={record.settings.get(k)}' for k in differing)})")
        else:
            labels.append(base)
        if record.metrics.get("oracle") is True:  # chosen with the test labels: a bound, never a method
            labels[-1] = f"{ORACLE} ({labels[-1]})"
    return labels


def _describe_difference(dataset: str, key: str, records: list[RunRecord], value: Any) -> str:
    by_value: dict[str, list[str]] = {}
    for record in records:
        by_value.setdefault(str(value(record)), []).append(str(record.directory))
    parts = "; ".join(f"{v} ({', '.join(dirs)})" for v, dirs in by_value.items())
    return f"{dataset}: runs differ in {key}: {parts}"


def _check_comparable(dataset: str, records: list[RunRecord], labels: dict[int, str], warnings: list[str]) -> None:
    """Refuse runs that scored different items; flag other differences that are not their rows' labels."""
    differing = [k for k in DATA_KEYS if len({r.data.get(k) for r in records}) > 1]
    fingerprinted = all("data" in r.data for r in records)
    if differing and (not fingerprinted or "data" in differing):  # the items' fingerprint decides when recorded
        key = next((k for k in differing if k != "data"), "data")
        message = _describe_difference(dataset, key, records, lambda r: r.data.get(key, "(not recorded)"))
        raise MocoError(f"{message}; they scored different items, so compare runs of the same data")
    shown = " ".join(labels[id(r)] for r in records)
    seeds: dict[str, set[str]] = {}
    for record in records:
        seeds.setdefault(labels[id(record)], set()).add(str(record.seed))
    greedy = all(r.settings.get("generation.temperature") in ("0", "0.0") for r in records)
    for key in FLAGGED_KEYS:
        if key == "seeds" and greedy:
            continue  # greedy decoding does not depend on the seed
        recorded = [r for r in records if key == "seeds" or key in r.settings]
        value = lambda r, k=key: ",".join(sorted(seeds[labels[id(r)]])) if k == "seeds" else r.settings[k]  # noqa: E731
        if len({str(value(r)) for r in recorded}) > 1 and f"{key}=" not in shown:
            warnings.append(_describe_difference(dataset, key, recorded, value))


def _cell(runs: list[RunRecord]) -> Cell:
    means = [float(r.metrics["score"]["mean"]) for r in runs]
    counts = [int(r.metrics["score"].get("count", 0) or 0) for r in runs]
    cell = Cell(runs=runs, mean=float(np.mean(means)), n=min(counts) if counts else 0)
    units = _mean_units([r.units for r in runs])
    if units:
        values = list(units.values())
        cell.se = standard_error(values)
        cell.ci = bootstrap_interval(values)
    if len(runs) > 1:
        cell.seed_sd = float(np.std(means, ddof=1))
    return cell


def _mean_units(found: list[dict[str, float] | None]) -> dict[str, float] | None:
    """Per-item scores averaged over seeds, on the items every run scored."""
    if not found or any(f is None for f in found):
        return None
    shared = set.intersection(*(set(f) for f in found if f is not None))
    return {key: float(np.mean([f[key] for f in found if f is not None])) for key in sorted(shared)}


def _reference_units(cell: Cell, singles: list[Cell]) -> dict[str, float] | None:
    """The best single model's per-item scores for ``cell``'s pool: recorded in the same runs
    (``model_scores`` of the dev-best model), else a ``single_model`` run of the same pool."""
    own = _mean_units([r.single_units for r in cell.runs])
    if own:
        return own
    pool = cell.runs[0].settings.get("models")
    for single in singles:
        if single.runs[0].settings.get("models") == pool:
            return _mean_units([r.units for r in single.runs])
    return None


def _paired(cell: Cell, reference: dict[str, float] | None) -> PairedTest | None:
    units = _mean_units([r.units for r in cell.runs])
    if not units or not reference:
        return None
    shared = sorted(set(units) & set(reference))
    return paired_test([units[k] for k in shared], [reference[k] for k in shared])


def build_comparison(run_dirs: list[str | Path]) -> Comparison:
    """Load, label, check and summarise runs into rows of cells (see the module docstring)."""
    records = [load_run(d) for d in run_dirs]
    labels = dict(zip((id(r) for r in records), _row_labels(records), strict=True))
    columns: dict[str, Column] = {}
    grouped: dict[tuple[str, str], list[RunRecord]] = {}
    methods: dict[str, str] = {}
    for record in records:
        label = labels[id(record)]
        metrics = record.metrics
        columns.setdefault(
            record.dataset, Column(record.dataset, metrics.get("domain") or "other", bool(metrics.get("normalize")))
        )
        cell_runs = grouped.setdefault((label, record.dataset), [])
        twin = next((r for r in cell_runs if r.seed == record.seed), None)
        if twin is not None:
            raise MocoError(
                f"{record.directory}: a second {label} run on {record.dataset} with the same settings and seed "
                f"(first: {twin.directory}); give one, or set a 'label' in one config to keep both"
            )
        cell_runs.append(record)
        methods[label] = record.method
    warnings: list[str] = []
    for dataset in columns:
        _check_comparable(dataset, [r for r in records if r.dataset == dataset], labels, warnings)
    ordered = sorted(columns.values(), key=lambda c: _domain_rank(c.domain))
    rows: dict[str, dict[str, Cell]] = {}
    for (label, dataset), runs in grouped.items():
        rows.setdefault(label, {})[dataset] = _cell(runs)
    _add_best_single(rows, methods, records)
    oracles = {labels[id(r)] for r in records if r.metrics.get("oracle") is True}
    order = sorted(
        rows, key=lambda label: (label in oracles, methods.get(label) != "single_model", label != BEST_SINGLE)
    )
    comparison = Comparison(ordered, {label: rows[label] for label in order}, methods, warnings=warnings)
    comparison.averages = _averages(comparison)
    return comparison


def _add_best_single(rows: dict[str, dict[str, Cell]], methods: dict[str, str], records: list[RunRecord]) -> None:
    """Fill the best-single row from methods that measured it where no single_model run did, then
    test every other row's cells against the pool's best single model on the same items."""
    singles_by_dataset: dict[str, list[Cell]] = {}
    for label, cells in rows.items():
        if methods[label] == "single_model":
            for dataset, cell in cells.items():
                singles_by_dataset.setdefault(dataset, []).append(cell)
    for record in records:
        best = record.metrics.get("dev_best_single") or {}
        score = best.get("test_score")
        if score is None or record.dataset in singles_by_dataset or record.method == "single_model":
            continue
        row = rows.setdefault(BEST_SINGLE, {})
        methods.setdefault(BEST_SINGLE, "single_model")
        if record.dataset not in row:
            row[record.dataset] = Cell(runs=[], mean=float(score), n=int(record.metrics["score"].get("count", 0)))
            units = record.single_units
            if units:
                row[record.dataset].se = standard_error(list(units.values()))
                row[record.dataset].ci = bootstrap_interval(list(units.values()))
    for label, cells in rows.items():
        if methods[label] == "single_model":
            continue
        for dataset, cell in cells.items():
            cell.vs_best = _paired(cell, _reference_units(cell, singles_by_dataset.get(dataset, [])))


def _domain_rank(domain: str) -> tuple[int, str]:
    return (DOMAIN_ORDER.index(domain) if domain in DOMAIN_ORDER else len(DOMAIN_ORDER), domain)


def _averages(comparison: Comparison) -> dict[str, dict[str, float | None]]:
    """Per row: each domain average and the overall one (macro over domains), normalised reward columns."""
    normalised: dict[str, dict[str, float]] = {
        label: {d: c.mean for d, c in cells.items()} for label, cells in comparison.rows.items()
    }
    for column in comparison.columns:
        if not column.normalize:
            continue
        values = [cells[column.dataset].mean for cells in comparison.rows.values() if column.dataset in cells]
        low, high = min(values, default=0.0), max(values, default=0.0)
        for label, cells in comparison.rows.items():
            if column.dataset in cells:
                raw = cells[column.dataset].mean
                normalised[label][column.dataset] = (raw - low) / (high - low) if high > low else 1.0
    result: dict[str, dict[str, float | None]] = {}
    domains = list(dict.fromkeys(c.domain for c in comparison.columns))
    for label, values in normalised.items():
        by_domain: dict[str, float | None] = {}
        for domain in domains:
            in_domain = [c.dataset for c in comparison.columns if c.domain == domain]
            complete = all(d in values for d in in_domain)
            by_domain[domain] = float(np.mean([values[d] for d in in_domain])) if complete else None
        averages = {f"{d} avg": by_domain[d] for d in domains if sum(c.domain == d for c in comparison.columns) > 1}
        if len(comparison.columns) > 1:
            complete = all(v is not None for v in by_domain.values())
            averages["avg"] = float(np.mean(list(by_domain.values()))) if complete else None
        result[label] = averages
    return result


def comparison_table(run_dirs: list[str | Path]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of plain means (4 decimals), with per-domain and overall averages."""
    comparison = build_comparison(run_dirs)
    layout = wide_layout(comparison)
    rows = []
    for label, cells in comparison.rows.items():
        row = [label]
        for _, key in layout:
            value = cells[key].mean if key in cells else comparison.averages[label].get(key)
            row.append("" if value is None else f"{value:.4f}")
        rows.append(row)
    return ["method", *(title for title, _ in layout)], rows


def wide_layout(comparison: Comparison) -> list[tuple[str, str]]:
    """``(header, key)`` per table column: datasets by domain, each multi-dataset domain's average after
    its datasets, the overall average last (key is the dataset or the average's name)."""
    layout = []
    domains = list(dict.fromkeys(c.domain for c in comparison.columns))
    for domain in domains:
        in_domain = [c for c in comparison.columns if c.domain == domain]
        layout += [(f"{domain}: {c.dataset}", c.dataset) for c in in_domain]
        if len(in_domain) > 1:
            layout.append((f"{domain} avg", f"{domain} avg"))
    if len(comparison.columns) > 1:
        layout.append(("avg", "avg"))
    return layout


def render_csv(header: list[str], rows: list[list[str]]) -> str:
    """Rows as CSV (used by ``moco report`` too)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().rstrip("\n")
