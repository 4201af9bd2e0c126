"""The ``moco`` command line.  Bad input is one line on stderr and exit code 2."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from moco_core.errors import MocoError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Run and compare model collaboration methods.")
EXIT_BAD_INPUT = 2


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn ``MocoError`` into one line on stderr and exit code 2, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except MocoError as exc:
            _fail(str(exc))

    return wrapper


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=False)]
    render = lambda row: "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip()  # noqa: E731
    return "\n".join([render(header), render(["-" * w for w in widths]), *(render(r) for r in rows)])


def _report_plugin_errors() -> None:
    from moco_core.plugins import get_registry

    errors = get_registry().errors
    for name, error in errors.items():
        typer.echo(f"plugin {name} failed to load: {error}", err=True)


@app.command("list-methods")
@user_errors
def list_methods(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Every registered collaboration method."""
    from moco_core.plugins import get_registry

    registry = get_registry()
    specs = sorted(registry.methods.values(), key=lambda s: (s.level, s.key))
    if as_json:
        data = [
            {
                "key": s.key,
                "level": s.level,
                "distribution": s.distribution,
                "trains": s.trains,
                "requirements": s.requirements.describe(),
                "summary": s.summary,
            }
            for s in specs
        ]
        typer.echo(json.dumps({"methods": data, "errors": registry.errors}, indent=2))
        return
    rows = [[s.key, s.level, s.distribution, "yes" if s.trains else "no", s.requirements.describe()] for s in specs]
    typer.echo(_table(["key", "level", "distribution", "trains", "requirements"], rows))
    _report_plugin_errors()


@app.command("list-datasets")
@user_errors
def list_datasets() -> None:
    """Every registered dataset."""
    from moco_core.plugins import get_registry

    registry = get_registry()
    rows = []
    for spec in sorted(registry.datasets.values(), key=lambda s: (s.domain, s.key)):
        sizes = f"{spec.sizes[0]}/{spec.sizes[1]}" if spec.sizes else ""
        rows.append([spec.key, spec.task_type, spec.domain, sizes, spec.source])
    typer.echo(_table(["key", "task type", "domain", "dev/test", "source"], rows))
    _report_plugin_errors()


@app.command()
@user_errors
def plugins() -> None:
    """Installed plugin distributions, their versions, hooks and load errors."""
    from moco_core.plugins import get_registry, plugin_infos

    registry = get_registry()
    rows = []
    for info in plugin_infos():
        error = info.error or registry.errors.get(info.name, "")
        rows.append([info.name, info.distribution, info.version, ",".join(info.hooks), error])
    typer.echo(_table(["plugin", "distribution", "version", "hooks", "error"], rows))


def _describe_params(model: Any) -> list[list[str]]:
    rows = []
    for name, field in model.model_fields.items():
        default = "(required)" if field.is_required() else repr(field.get_default(call_default_factory=True))
        rows.append([name, default, field.description or ""])
    return rows


@app.command()
@user_errors
def info(key: Annotated[str, typer.Argument(help="A method or dataset key.")]) -> None:
    """Summary, parameters with defaults and reference of a method (or a dataset)."""
    from moco_core.plugins import get_registry
    from moco_core.validation import suggest

    registry = get_registry()
    if key in registry.methods:
        spec = registry.methods[key]
        typer.echo(f"{spec.key} ({spec.level} level, {spec.distribution})\n{spec.summary}")
        typer.echo(f"requirements: {spec.requirements.describe()}; trains: {'yes' if spec.trains else 'no'}")
        if spec.reference:
            typer.echo(f"reference: {spec.reference}")
        rows = _describe_params(spec.params)
        typer.echo("parameters:\n" + (_table(["name", "default", "description"], rows) if rows else "  (none)"))
        return
    if key in registry.datasets:
        spec = registry.datasets[key]
        typer.echo(f"{spec.key}: {spec.summary}\ntask type: {spec.task_type}; domain: {spec.domain}")
        typer.echo(f"source: {spec.source}")
        return
    raise MocoError(f"unknown method or dataset {key!r}{suggest(key, [*registry.methods, *registry.datasets])}")


@app.command()
@user_errors
def validate(config: Annotated[Path, typer.Argument(help="Run config (YAML or JSON).")]) -> None:
    """Check a config without loading any model."""
    from moco_core.config import load_config
    from moco_core.plugins import get_registry
    from moco_core.validation import plan_run

    plan = plan_run(load_config(config), get_registry())
    typer.echo(
        f"ok: {plan.method.key} on {plan.dataset.name} ({len(plan.dataset.dev)} dev, {len(plan.dataset.test)} test) "
        f"with {len(plan.config.models)} models"
    )


@app.command("run")
@user_errors
def run_command(
    config: Annotated[Path, typer.Argument(help="Run config (YAML or JSON).")],
    limit: Annotated[int | None, typer.Option(help="Cap dev and test examples.", min=1)] = None,
    output_dir: Annotated[str | None, typer.Option("--output-dir", help="Where results go.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Bypass the generation cache.")] = False,
) -> None:
    """Run a method on a dataset; rerunning the same command resumes an interrupted run."""
    from moco_core.config import load_config, parse_config
    from moco_core.runner import run

    loaded = load_config(config)
    data = loaded.model_dump()
    if limit is not None:
        data["dataset"]["limit"] = limit
    if output_dir is not None:
        data["output_dir"] = output_dir
    resolved = parse_config(data, str(config))
    try:
        result = run(resolved, use_cache=not no_cache)
    except KeyboardInterrupt:
        typer.echo("interrupted: finished examples are saved; run the same command to resume", err=True)
        raise typer.Exit(130) from None
    metrics = result.metrics
    generations = metrics["generations"]
    domain = metrics["domain"] or "no domain"
    typer.echo(
        f"{metrics['method']} on {metrics['dataset']} ({domain}; scorer {metrics['task_type']}): "
        f"{metrics['metric']} {metrics['score']['mean']:.4f} over {metrics['score']['count']} examples; "
        f"generations made {generations['made']}, cached {generations['cached']}; results in {result.output_dir}"
    )


@app.command()
@user_errors
def score(
    predictions: Annotated[Path, typer.Argument(help="JSONL lines with 'output' and 'id' or 'index'.")],
    dataset: Annotated[str | None, typer.Option("--dataset", help="A registered dataset key.")] = None,
    data: Annotated[Path | None, typer.Option("--data", help="A data file (benchmark JSON, JSONL, CSV).")] = None,
    task_type: Annotated[
        str | None, typer.Option(help="Task type of a --data file that is not benchmark JSON.")
    ] = None,
    split: Annotated[str, typer.Option(help="dev or test.")] = "test",
    output: Annotated[Path | None, typer.Option("--output", help="Write per-item scores (JSONL) here.")] = None,
    scoring_config: Annotated[
        Path | None, typer.Option("--scoring-config", help="YAML/JSON with judge, reward, verifier, embedding models.")
    ] = None,
) -> None:
    """Score outputs produced elsewhere with moco's scorers; the last line is the mean and count."""
    from moco_core.config import DatasetConfig, ScoringConfig, format_validation_error, read_config_file
    from moco_core.plugins import get_plugin_manager, get_registry
    from moco_core.runfiles import atomic_write_text, check_writable_file
    from moco_core.runner import summarize_scores
    from moco_core.scoring import match_lines, read_jsonl
    from moco_core.validation import load_dataset

    if (dataset is None) == (data is None):
        raise MocoError("give exactly one of --dataset or --data")
    if split not in ("dev", "test"):
        raise MocoError(f"--split: expected dev or test, got {split!r}")
    try:
        source = DatasetConfig(name=dataset, path=str(data) if data else None, task_type=task_type)
        options = ScoringConfig.model_validate(read_config_file(scoring_config) if scoring_config else {})
    except ValidationError as exc:
        raise MocoError(format_validation_error(exc, "--scoring-config" if scoring_config else "dataset")) from None
    if output is not None:
        check_writable_file(output, "--output")
    loaded, _ = load_dataset(source, get_registry())
    examples = loaded.dev if split == "dev" else loaded.test
    pairs = match_lines(predictions, read_jsonl(predictions), examples, split)
    if not pairs:
        raise MocoError(f"{predictions}: no predictions")
    values = get_plugin_manager().hook.moco_score(
        task_type=loaded.task_type, examples=[e for e, _ in pairs], outputs=[o for _, o in pairs], options=options
    )
    lines = [
        {"index": e.index, "id": e.id, "score": v, "group": e.extra.get(loaded.group_by) if loaded.group_by else None}
        for (e, _), v in zip(pairs, values, strict=True)
    ]
    if output is not None:
        try:
            atomic_write_text(output, "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
        except OSError as exc:
            raise MocoError(f"--output: {output} cannot be written ({exc.strerror or exc})") from None
    summary = summarize_scores(lines, loaded.group_by is not None)
    typer.echo(f"{loaded.name} {split}: mean {summary['mean']:.4f} count {summary['count']}")


@app.command()
@user_errors
def compare(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories holding metrics.json.")],
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV instead of markdown.")] = False,
) -> None:
    """One table across runs: rows methods, columns datasets, plus the best single model row."""
    from moco_core.compare import comparison_table, render_csv, render_markdown

    header, rows = comparison_table(list(run_dirs))
    typer.echo(render_csv(header, rows) if as_csv else render_markdown(header, rows))


from moco_core.cli_sweep import register as _register_grid_commands  # noqa: E402

_register_grid_commands(app)
