"""Reading a moco ``single_model`` run as a bank: its predictions keep every member's test answer and score.

moco records no price, so each answer costs 1 (one generation); the bank's queries are the run's
test split (dev answers are not kept in run files), split again into dev and test on import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from moco_core.errors import MocoError
from moco_core.runner import PREDICTIONS, read_predictions


def read_moco_run(run_dir: str | Path) -> tuple[list[str], list[dict[str, Any]]]:
    path = Path(run_dir) / PREDICTIONS
    lines = read_predictions(path)
    usable = [line for line in lines if isinstance(line.get("outputs"), dict) and line.get("model_scores")]
    if not lines or len(usable) != len(lines):
        raise MocoError(f"{path}: not a single_model run (its lines need every member's 'outputs' and 'model_scores')")
    models = list(usable[0]["outputs"])
    items = [
        {
            "id": str(line["id"]),
            "input": line["input"],
            "output": "",
            "bank": {
                m: {"response": line["outputs"][m], "score": float(line["model_scores"][m]), "cost": 1.0}
                for m in models
            },
        }
        for line in usable
    ]
    return models, items
