"""Sweeps: a base config plus axes (methods, datasets, pools, seeds) run as a grid of cells.

Each cell is an ordinary run in its own directory, so a sweep resumes, skips finished cells and
shares the generation cache exactly like repeated ``moco run`` calls would.
"""

from moco_core.sweep.cells import Cell, CellStatus, cell_status, expand
from moco_core.sweep.config import SweepConfig, load_sweep
from moco_core.sweep.execute import SweepOutcome, run_sweep

__all__ = [
    "Cell",
    "CellStatus",
    "SweepConfig",
    "SweepOutcome",
    "cell_status",
    "expand",
    "load_sweep",
    "run_sweep",
]
