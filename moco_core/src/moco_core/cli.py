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


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"moco {version('moco-core')}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Info logs and third-party progress bars and warnings.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Errors only; no progress bars.")] = False,
    show_version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Run and compare model collaboration methods."""
    from moco_core.logs import NORMAL, QUIET, VERBOSE, configure_logging

    if verbose and quiet:
        _fail("give at most one of --verbose and --quiet")
    configure_logging(VERBOSE if verbose else QUIET if quiet else NORMAL)


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
def list_datasets(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Every registered dataset."""
    from moco_core.plugins import get_registry

    registry = get_registry()
    specs = sorted(registry.datasets.values(), key=lambda s: (s.domain, s.key))
    if as_json:
        fields = ("key", "task_type", "domain", "sizes", "source", "summary", "hub", "distribution")
        data = [{name: getattr(s, name) for name in fields} for s in specs]
        typer.echo(json.dumps({"datasets": data, "errors": registry.errors}, indent=2))
        return
    rows = []
    for spec in specs:
        sizes = f"{spec.sizes[0]}/{spec.sizes[1]}" if spec.sizes else ""
        rows.append([spec.key, spec.task_type, spec.domain, sizes, spec.source])
    typer.echo(_table(["key", "task type", "domain", "dev/test", "source"], rows))
    _report_plugin_errors()


@app.command()
@user_errors
def plugins(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Installed plugin distributions, their versions, hooks and load errors."""
    from moco_core.plugins import get_registry, plugin_infos

    registry = get_registry()
    found = []
    for info in plugin_infos():
        error = info.error or registry.errors.get(info.name, "")
        found.append(
            {
                "plugin": info.name,
                "distribution": info.distribution,
                "version": info.version,
                "hooks": list(info.hooks),
                "error": error,
            }
        )
    if as_json:
        typer.echo(json.dumps({"plugins": found}, indent=2))
        return
    rows = [[p["plugin"], p["distribution"], p["version"], ",".join(p["hooks"]), p["error"]] for p in found]
    typer.echo(_table(["plugin", "distribution", "version", "hooks", "error"], rows))


def _method_info(spec: Any) -> dict[str, Any]:
    from moco_core.paraminfo import describe_params

    return {
        "key": spec.key,
        "kind": "method",
        "level": spec.level,
        "distribution": spec.distribution,
        "summary": spec.summary,
        "requirements": spec.requirements.describe(),
        "trains": spec.trains,
        "reference": spec.reference,
        "parameters": describe_params(spec.params),
    }


def _print_method_info(data: dict[str, Any]) -> None:
    typer.echo(f"{data['key']} ({data['level']} level, {data['distribution']})\n{data['summary']}")
    typer.echo(f"requirements: {data['requirements']}; trains: {'yes' if data['trains'] else 'no'}")
    if data["reference"]:
        typer.echo(f"reference: {data['reference']}")
    rows = [
        [p["name"], p["type"], "(required)" if p["required"] else repr(p["default"]), p["allowed"], p["description"]]
        for p in data["parameters"]
    ]
    header = ["name", "type", "default", "allowed", "description"]
    typer.echo("parameters:\n" + (_table(header, rows) if rows else "  (none)"))


@app.command()
@user_errors
def info(
    key: Annotated[str, typer.Argument(help="A method or dataset key.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Summary, parameters (type, default, allowed values, description) and reference of a method or dataset."""
    from moco_core.official import install_hint
    from moco_core.plugins import get_registry
    from moco_core.validation import suggest

    registry = get_registry()
    if key in registry.methods:
        data = _method_info(registry.methods[key])
        typer.echo(json.dumps(data, indent=2, default=repr)) if as_json else _print_method_info(data)
        return
    if key in registry.datasets:
        spec = registry.datasets[key]
        fields = ("key", "task_type", "domain", "sizes", "source", "summary", "hub", "distribution")
        data = {"kind": "dataset", **{name: getattr(spec, name) for name in fields}}
        if as_json:
            typer.echo(json.dumps(data, indent=2))
            return
        typer.echo(f"{spec.key}: {spec.summary}\ntask type: {spec.task_type}; domain: {spec.domain}")
        typer.echo(f"source: {spec.source}")
        return
    hint = install_hint("method", key) or install_hint("dataset", key)
    raise MocoError(f"unknown method or dataset {key!r}{hint or suggest(key, [*registry.methods, *registry.datasets])}")


def _overridden_config(config: Path, sets: list[str], **changes: Any) -> Any:
    """The config file with ``--set`` overrides (and ``--limit``/``--output-dir``) applied, validated as one."""
    from moco_core.config import parse_config, read_config_file
    from moco_core.overrides import apply_overrides

    data = apply_overrides(read_config_file(config), sets)
    if changes.get("limit") is not None:
        section = data.setdefault("dataset", {})
        if isinstance(section, dict):
            section["limit"] = changes["limit"]
    if changes.get("output_dir") is not None:
        data["output_dir"] = changes["output_dir"]
    return parse_config(data, str(config) + (" with --set" if sets else ""))


SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config value: --set generation.temperature=0 (repeatable)."),
]


@app.command()
@user_errors
def validate(
    config: Annotated[Path, typer.Argument(help="Run config (YAML or JSON).")], sets: SetOption = None
) -> None:
    """Check a config without loading any model."""
    from moco_core.plugins import get_registry
    from moco_core.validation import plan_run

    plan = plan_run(_overridden_config(config, sets or []), get_registry())
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
    sets: SetOption = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Delete the run's earlier results and start afresh.")
    ] = False,
) -> None:
    """Run a method on a dataset; rerunning the same command resumes an interrupted run."""
    from moco_core.runner import run

    resolved = _overridden_config(config, sets or [], limit=limit, output_dir=output_dir)
    try:
        result = run(resolved, use_cache=not no_cache, overwrite=overwrite)
    except KeyboardInterrupt:
        typer.echo("interrupted: finished examples are saved; run the same command to resume", err=True)
        raise typer.Exit(130) from None
    metrics = result.metrics
    generations = metrics["generations"]
    domain = metrics["domain"] or "no domain"
    resumed = f" (resumed: {result.resumed} examples were already done)" if result.resumed else ""
    oracle = "ORACLE upper bound (chosen with the test labels), not a method: " if metrics.get("oracle") is True else ""
    typer.echo(
        f"{oracle}{metrics['method']} on {metrics['dataset']} ({domain}; scorer {metrics['task_type']}): "
        f"{metrics['metric']} {metrics['score']['mean']:.4f} over {metrics['score']['count']} examples; "
        f"generations made {generations['made']}, cached {generations['cached']}; results in {result.output_dir}"
        f"{resumed}"
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
    from moco_core.runner import extra_scores, summarize_extra, summarize_scores
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
    loaded, scorer = load_dataset(source, get_registry())
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
    extras = extra_scores(scorer, [e for e, _ in pairs], [o for _, o in pairs], options)
    for line, extra in zip(lines, extras, strict=True):
        if extra:
            line["extra_scores"] = extra
    if output is not None:
        try:
            atomic_write_text(output, "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
        except OSError as exc:
            raise MocoError(f"--output: {output} cannot be written ({exc.strerror or exc})") from None
    for name, mean in summarize_extra(lines).items():
        typer.echo(f"{loaded.name} {split}: {name} {mean:.4f}")
    summary = summarize_scores(lines, loaded.group_by is not None)
    typer.echo(f"{loaded.name} {split}: mean {summary['mean']:.4f} count {summary['count']}")


@app.command()
@user_errors
def compare(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories holding metrics.json.")],
    as_csv: Annotated[bool, typer.Option("--csv", help="Same as --format csv.")] = False,
    output_format: Annotated[str, typer.Option("--format", help="markdown, csv, json or latex.")] = "markdown",
) -> None:
    """One table across runs: rows methods, columns datasets, plus the best single model row.

    Cells show n and a 95% interval (or the spread over seeds); each method is tested against the
    pool's best single model on the same items. Runs that scored different items are refused;
    other differences between rows are printed as warnings.
    """
    from moco_core.compare import build_comparison
    from moco_core.compare_render import FORMATS, render

    chosen = "csv" if as_csv else output_format
    if chosen not in FORMATS:
        raise MocoError(f"--format: expected one of {', '.join(FORMATS)}, got {chosen!r}")
    comparison = build_comparison(list(run_dirs))
    for warning in comparison.warnings if chosen != "markdown" else []:  # markdown carries them below the table
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(render(comparison, chosen))


from moco_core.cli_cache import register as _register_cache_commands  # noqa: E402
from moco_core.cli_sweep import register as _register_grid_commands  # noqa: E402

_register_grid_commands(app)
_register_cache_commands(app)
