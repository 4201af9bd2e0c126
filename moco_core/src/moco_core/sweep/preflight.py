"""A sweep's pre-flight: every cell checked as ``moco validate`` would, before any cell starts.

A cell whose dataset loads here gets the full plan check (``plan_run``: method, parameters, pool,
dataset and the method's own ``check``), each distinct dataset read once for all its cells. A cell
whose data does not load here (a file that appears later or only on Ray workers, a dataset that
would be downloaded) gets the checks that need no data; its run then records any data problem.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from moco_core.config import DatasetConfig, RunConfig
from moco_core.data import DATA_DIR_ENV
from moco_core.errors import MocoError
from moco_core.registry import Registry, ScorerSpec
from moco_core.sweep.cells import Cell
from moco_core.types import Dataset
from moco_core.validation import check_pool, load_dataset, plan_run, resolve_method, validate_params

Loaded = tuple[Dataset, ScorerSpec]


class LocalDatasets:
    """Each distinct dataset config loaded at most once: its data, its load error, or None when it is not
    loadable here (so its cells are checked at run time)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.found: dict[str, Loaded | MocoError | None] = {}

    def loadable(self, source: DatasetConfig) -> bool:
        key = source.model_dump_json()
        if key not in self.found:
            self.found[key] = self._load(source)
        return self.found[key] is not None

    def load(self, source: DatasetConfig, _registry: Registry) -> Loaded:
        """``plan_run``'s loader: the cached data, with fresh split lists so no cell's check sees another's edits."""
        found = self.found[source.model_dump_json()]
        if found is None:
            raise MocoError(f"dataset: {source.label} was not loaded at pre-flight")
        if isinstance(found, MocoError):
            raise found
        dataset, scorer = found
        return replace(dataset, dev=list(dataset.dev), test=list(dataset.test)), scorer

    def _load(self, source: DatasetConfig) -> Loaded | MocoError | None:
        if source.path is not None:
            if not Path(source.path).expanduser().exists():
                return None
            return self._read(source)
        spec = self.registry.datasets.get(source.name or "")
        if spec is None or source.source == "hub":
            return None
        folder = source.data_dir or os.environ.get(DATA_DIR_ENV) or None
        if spec.loader and folder is not None and spec.benchmark_file(folder).is_file():
            return self._read(source)
        if source.source == "auto" and spec.hub_loader:
            return None  # it would be downloaded: that is the cell's job, not the pre-flight's
        found = self._read(source)  # a loader that finds its own file (one packaged with its plugin)
        return None if isinstance(found, MocoError) else found

    def _read(self, source: DatasetConfig) -> Loaded | MocoError:
        try:
            return load_dataset(source, self.registry)
        except MocoError as exc:
            return exc


def _here(config: RunConfig, remote: bool) -> RunConfig:
    """Ray cells run on workers, whose devices this machine cannot check."""
    if not remote:
        return config
    return config.model_copy(update={"hardware": config.hardware.model_copy(update={"device": "auto"})})


def check_cells(cells: list[Cell], remote: bool = False) -> None:
    """Every cell checked before any starts; the first problem is one line naming the cell (exit 2)."""
    from moco_core.plugins import get_registry

    registry = get_registry()
    datasets = LocalDatasets(registry)
    for cell in cells:
        try:
            if datasets.loadable(cell.config.dataset):
                plan_run(_here(cell.config, remote), registry, datasets.load)
            else:
                spec = resolve_method(registry, cell.config.method)
                validate_params(spec, cell.config.params)
                check_pool(cell.config, spec, registry)
        except MocoError as exc:
            raise MocoError(f"cell {cell.name}: {exc}") from None
