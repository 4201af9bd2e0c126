"""Reading RouterBench's table: one row per query; per model a score column ``<model>``, its
response ``<model>|model_response`` and its cost ``<model>|total_cost``."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from moco_core.errors import MocoError

RESPONSE = "|model_response"
COST = "|total_cost"


def _read_table(path: Path) -> Any:
    import pandas as pd

    readers = {".pkl": pd.read_pickle, ".pickle": pd.read_pickle, ".parquet": pd.read_parquet, ".csv": pd.read_csv}
    if path.suffix == ".jsonl":
        return pd.read_json(path, lines=True)
    if path.suffix not in readers:
        raise MocoError(f"{path}: unsupported RouterBench file; use .pkl, .parquet, .csv or .jsonl")
    return readers[path.suffix](path)


def _prompt_text(value: Any) -> str:
    """RouterBench stores a prompt as the text of a Python list of turns; join them."""
    if isinstance(value, str) and value.startswith("["):
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
        if isinstance(parsed, list):
            return "\n\n".join(str(turn) for turn in parsed)
    return value if isinstance(value, str) else "\n\n".join(map(str, value))


def read_routerbench(path: str | Path) -> tuple[list[str], list[dict[str, Any]]]:
    """The models and one bank item per row (``id`` from ``sample_id``, ``input`` the prompt)."""
    path = Path(path)
    if not path.is_file():
        raise MocoError(f"{path}: file not found")
    table = _read_table(path)
    models = [c[: -len(RESPONSE)] for c in table.columns if c.endswith(RESPONSE)]
    if not models or "prompt" not in table.columns:
        raise MocoError(f"{path}: not RouterBench format (needs 'prompt' and '<model>{RESPONSE}' columns)")
    missing = [m for m in models if m not in table.columns]
    if missing:
        raise MocoError(f"{path}: no score column for model {missing[0]!r}")
    items = []
    for i, row in enumerate(table.to_dict("records")):
        bank = {
            m: {"response": str(row[m + RESPONSE]), "score": float(row[m]), "cost": float(row.get(m + COST) or 0.0)}
            for m in models
        }
        item = {"id": str(row.get("sample_id", i)), "input": _prompt_text(row["prompt"]), "output": "", "bank": bank}
        if row.get("eval_name") is not None:
            item["eval_name"] = str(row["eval_name"])
        items.append(item)
    return models, items
