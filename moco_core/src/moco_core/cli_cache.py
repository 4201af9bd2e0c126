"""``moco cache info`` and ``moco cache clear [--older-than 30d]``: the generation cache, seen and pruned."""

from __future__ import annotations

import json
import re
import time
from typing import Annotated

import typer

from moco_core.errors import MocoError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """Seconds in ``"90s"``, ``"45m"``, ``"12h"``, ``"30d"`` or ``"2w"``."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if not found:
        raise MocoError(f"--older-than: expected a number and a unit (s, m, h, d or w), e.g. 30d; got {text!r}")
    return float(found.group(1)) * _UNITS[found.group(2)]


def _when(timestamp: float | None) -> str:
    if not timestamp:
        return "unknown"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


def register(app: typer.Typer) -> None:
    """Add the ``cache`` command group to ``app``."""
    from moco_core.cli import user_errors

    group = typer.Typer(no_args_is_help=True, help="The generation cache (MOCO_CACHE_DIR, default ~/.cache/moco).")
    app.add_typer(group, name="cache")

    @group.command("info")
    @user_errors
    def cache_info(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
        """Where the cache is, how many generations it holds, its size and its oldest and newest entries."""
        from moco_core.cache import GenerationCache, default_cache_dir

        cache = GenerationCache()
        try:
            stats = cache.stats()
        finally:
            cache.close()
        folder = default_cache_dir()
        stats["folder"] = str(folder)
        stats["folder_bytes"] = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        if as_json:
            typer.echo(json.dumps(stats, indent=2))
            return
        typer.echo(f"generation cache: {stats['path']}")
        typer.echo(f"entries: {stats['entries']}; size {_size(stats['bytes'])}")
        typer.echo(f"oldest: {_when(stats['oldest'])}; newest: {_when(stats['newest'])}")
        typer.echo(f"cache folder {stats['folder']}: {_size(stats['folder_bytes'])} in all (converted models included)")

    @group.command("clear")
    @user_errors
    def cache_clear(
        older_than: Annotated[
            str | None, typer.Option("--older-than", help="Only entries stored longer ago than this, e.g. 30d, 12h.")
        ] = None,
    ) -> None:
        """Delete cached generations (all, or those older than --older-than); runs then generate afresh."""
        from moco_core.cache import GenerationCache

        seconds = parse_duration(older_than) if older_than is not None else None
        cache = GenerationCache()
        try:
            removed = cache.clear(seconds)
            left = cache.stats()["entries"]
        finally:
            cache.close()
        typer.echo(f"removed {removed} cached generations; {left} left in {cache.path}")
