"""Loading a registered dataset from its benchmark file ``<data dir>/<key>.json``.

Files are read with the core reader and then repaired by ``quirks.normalize_items``, so every
scorer sees one schema whatever the file's oddities.
"""

from __future__ import annotations

import os
from pathlib import Path

from moco_core.data import load_benchmark_file
from moco_core.errors import MocoError
from moco_core.registry import DatasetSpec
from moco_core.types import Dataset
from moco_evals.quirks import normalize_items

DATA_DIR_ENV = "MOCO_DATA_DIR"
_HINT = f"set {DATA_DIR_ENV} to the folder holding the benchmark files"


def benchmark_path(spec: DatasetSpec, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the benchmark file of ``spec`` lives: ``data_dir``, else ``$MOCO_DATA_DIR``.

    Raises a one-line ``MocoError`` saying what to set when neither is given or the file is
    missing, because this is the first thing a new user runs into.
    """
    folder = data_dir if data_dir not in (None, "") else os.environ.get(DATA_DIR_ENV)
    if not folder:
        raise MocoError(f"dataset {spec.key}: no data folder given; {_HINT}")
    path = Path(folder).expanduser() / f"{spec.key}.json"
    if not path.is_file():
        raise MocoError(f"dataset {spec.key}: benchmark file {path.name} not found in {path.parent}; {_HINT}")
    return path


def load_benchmark(spec: DatasetSpec, data_dir: str | os.PathLike[str] | None = None) -> Dataset:
    """The ``DatasetSpec`` loader of benchmark-file datasets (``loader(spec, data_dir)``).

    The spec's task type wins over the file's so the registered scorer is the one applied;
    the dataset is named by its registry key even when the file says otherwise (``culturebench.json``
    calls itself ``culturebench_hard``); the file's quirks are repaired (``quirks.normalize_items``).
    """
    path = benchmark_path(spec, data_dir)
    dataset = normalize_items(load_benchmark_file(path, task_type=spec.task_type))
    dataset.name = spec.key
    dataset.domain = spec.domain
    dataset.source = str(path)
    return dataset
