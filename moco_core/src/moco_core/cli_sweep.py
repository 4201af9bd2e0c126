"""``moco sweep`` (the grid) and ``moco report`` (its analyses), registered onto the main CLI app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer


def _status_line(cell: Any, status: Any) -> str:
    if status.state == "done":
        detail = f"score {status.score:.4f}"
    elif status.state in ("failed", "changed"):
        detail = status.error or ""
    elif status.state == "partial":
        detail = f"{status.predictions} predictions so far"
    else:
        detail = ""
    if status.state in ("partial", "pending") and status.error:
        detail = f"{detail}; {status.error}" if detail else status.error
    return f"{status.state:<8} {cell.name}  {detail}".rstrip()


def register(app: typer.Typer) -> None:
    """Add the grid commands to ``app`` (kept out of cli.py so that file stays one screen of run commands)."""
    from moco_core.cli import user_errors

    @app.command()
    @user_errors
    def sweep(
        sweep_file: Annotated[Path, typer.Argument(help="Sweep file (YAML or JSON): base config plus axes.")],
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="List the cells and their state; run nothing.")
        ] = False,
        retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Rerun only the failed cells.")] = False,
        executor: Annotated[str | None, typer.Option(help="local or ray (overrides the file).")] = None,
        address: Annotated[str | None, typer.Option("--ray-address", help="An existing Ray cluster.")] = None,
    ) -> None:
        """Run every cell of a grid (methods x datasets x pools x seeds), skipping finished ones."""
        from moco_core.errors import MocoError
        from moco_core.sweep import load_sweep, run_sweep

        if executor not in (None, "local", "ray"):
            raise MocoError(f"--executor: expected local or ray, got {executor!r}")
        config = load_sweep(sweep_file)
        ray_options = {"address": address} if address else None
        if address:
            executor = "ray"
        report = lambda cell, status: typer.echo(_status_line(cell, status))  # noqa: E731
        try:
            outcome = run_sweep(config, sweep_file, dry_run, retry_failed, executor, report, ray_options)
        except KeyboardInterrupt:
            typer.echo("interrupted: finished cells and examples are saved; run the same command to resume", err=True)
            raise typer.Exit(130) from None
        if dry_run:
            for cell, status in outcome.cells:
                typer.echo(_status_line(cell, status))
            for line in outcome.after:
                typer.echo(line)
        counts = ", ".join(
            f"{outcome.count(s)} {s}" for s in ("done", "failed", "partial", "pending", "changed") if outcome.count(s)
        )
        ran = "" if dry_run else f"ran {len(outcome.ran)}; "
        after = f"; {len(outcome.after)} control groups after their methods" if outcome.after else ""
        typer.echo(f"sweep {outcome.directory}: {len(outcome.cells)} cells; {ran}{counts}{after}")
        if not dry_run and outcome.count("failed"):
            typer.echo("failed cells keep their error in error.json; rerun them with --retry-failed", err=True)
            raise typer.Exit(1)

    @app.command()
    @user_errors
    def report(
        sweep_dir: Annotated[Path, typer.Argument(help="A sweep directory (or any folder of finished runs).")],
        output_dir: Annotated[Path | None, typer.Option("--output-dir", help="Default: SWEEP_DIR/report.")] = None,
    ) -> None:
        """Results tables, collaborative emergence, compute-matched controls, plots and one HTML page."""
        from moco_core.report import build_report

        written = build_report(sweep_dir, output_dir)
        typer.echo(written.markdown)
        typer.echo(
            f"\nwrote {len(written.files)} files to {written.directory}: " + ", ".join(p.name for p in written.files)
        )

    @app.command()
    @user_errors
    def bank(
        source: Annotated[
            Path,
            typer.Argument(
                help="A RouterBench table (.pkl/.parquet/.csv/.jsonl), LLMRouterBench's results/bench folder"
                " (or one of its result files) or a single_model run directory."
            ),
        ],
        output: Annotated[Path, typer.Option("--output", help="The bank file to write (JSON).")],
        source_format: Annotated[
            str, typer.Option("--format", help="routerbench, llmrouterbench or moco.")
        ] = "routerbench",
        dev_fraction: Annotated[float, typer.Option(help="Share of queries in the dev split.")] = 0.2,
        seed: Annotated[int, typer.Option(help="Seed of the dev/test split.")] = 0,
    ) -> None:
        """Import per-(query, model) responses, scores and costs as a response bank for zero-generation runs."""
        import yaml

        from moco_core.banks.bank import write_bank
        from moco_core.banks.llmrouterbench import read_llmrouterbench
        from moco_core.banks.moco_runs import read_moco_run
        from moco_core.banks.routerbench import read_routerbench
        from moco_core.errors import MocoError

        readers = {"routerbench": read_routerbench, "llmrouterbench": read_llmrouterbench, "moco": read_moco_run}
        if source_format not in readers:
            raise MocoError(f"--format: expected routerbench, llmrouterbench or moco, got {source_format!r}")
        models, items = readers[source_format](source)
        path = write_bank(output.stem, items, output, dev_fraction, seed)
        pool = [{"name": m, "path": m, "backend": "bank", "backend_options": {"bank": str(path)}} for m in models]
        typer.echo(f"wrote {path}: {len(models)} models; use it as the dataset and this pool:")
        typer.echo(yaml.safe_dump({"dataset": {"path": str(path)}, "models": pool}, sort_keys=False).rstrip())
