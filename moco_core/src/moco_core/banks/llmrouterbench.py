"""Reading LLMRouterBench's results: one JSON file per (dataset, split, model).

LLMRouterBench (github.com/ynulihao/LLMRouterBench) stores its collected outputs as
``results/bench/<dataset>/<split>/<model>/<timestamp>.json``; each file carries ``dataset_name``,
``split`` and ``model_name`` (the folders name them too), and ``records``, one per query:
``index``, ``origin_query``, ``prompt``, ``prediction`` (the extracted answer), ``raw_output``
(the full response), ``ground_truth``, ``score``, ``prompt_tokens``, ``completion_tokens`` and
``cost`` (USD). As its own loader does, files marked ``demo`` are skipped and, of several files
for one (dataset, split, model), the one with the latest ``YYYYMMDD_HHMMSS`` timestamp in its
name is read. A bank needs every model's answer to a query, so only queries every model answered
are kept.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from moco_core.errors import MocoError

_NAMES = ("dataset_name", "split", "model_name")
_STAMP = re.compile(r"(\d{8})_(\d{6})\.json$")


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _rank(path: Path) -> int:
    """Its loader's order: the file name's timestamp, else the file's modification time."""
    stamp = _STAMP.search(path.name)
    return int(stamp.group(1) + stamp.group(2)) if stamp else int(path.stat().st_mtime)


def _result_files(root: Path) -> dict[tuple[str, str, str], tuple[Path, dict[str, Any]]]:
    """(dataset, split, model) -> its latest non-demo result file and contents."""
    files = [root] if root.is_file() else sorted(root.rglob("*.json"))
    latest: dict[tuple[str, str, str], tuple[Path, dict[str, Any]]] = {}
    for path in files:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            continue
        if not isinstance(data, dict) or not isinstance(data.get("records"), list) or data.get("demo"):
            continue
        folders = path.resolve().parts[-4:-1]  # <dataset>/<split>/<model>/<timestamp>.json
        dataset, split, model = (str(data.get(f) or folders[i]) for i, f in enumerate(_NAMES))
        key = (dataset, split, model)
        if not all(key):
            raise MocoError(f"{path}: an LLMRouterBench result needs dataset_name, split and model_name")
        if key not in latest or _rank(path) >= _rank(latest[key][0]):
            latest[key] = (path, data)
    return latest


def read_llmrouterbench(path: str | Path) -> tuple[list[str], list[dict[str, Any]]]:
    """The models and one bank item per query every model answered.

    ``path`` is LLMRouterBench's ``results/bench`` folder (or any folder under it, or one
    result file). An item's ``input`` is the dataset's question (``origin_query``, else the
    formatted ``prompt``); a model's response is its ``raw_output`` (else its ``prediction``).
    """
    root = Path(path)
    if not root.exists():
        raise MocoError(f"{root}: file or folder not found")
    latest = _result_files(root)
    if not latest:
        raise MocoError(f"{root}: no LLMRouterBench result files (JSON with 'records') found")
    models = sorted({model for _, _, model in latest})
    queries: dict[tuple[str, str, str], dict[str, Any]] = {}
    for (dataset, split, model), (_, data) in sorted(latest.items()):
        for record in data["records"]:
            if not isinstance(record, dict) or "index" not in record:
                continue
            query = queries.setdefault((dataset, split, str(record["index"])), {"bank": {}})
            query.setdefault("input", _text(record.get("origin_query")) or _text(record.get("prompt")))
            response = record.get("raw_output")
            query["bank"][model] = {
                "response": _text(response) if response not in (None, "") else _text(record.get("prediction")),
                "score": float(record.get("score") or 0.0),
                "cost": float(record.get("cost") or 0.0),
            }
    items = [
        {"id": "/".join(key), "input": q["input"], "output": "", "bank": q["bank"], "eval_name": key[0]}
        for key, q in queries.items()
        if len(q["bank"]) == len(models) and q["input"]
    ]
    if not items:
        raise MocoError(f"{root}: no query was answered by every model ({', '.join(models)})")
    return models, items
