"""The bank file: writing it (with a seeded dev/test split) and scoring an output against it."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from moco_core.errors import MocoError

BANK_TASK_TYPE = "bank"


def write_bank(name: str, items: list[dict[str, Any]], out: Path, dev_fraction: float, seed: int) -> Path:
    """Shuffle ``items`` with ``seed``, put ``dev_fraction`` of them in dev, and write the bank file.

    Items with the same query text as an earlier item are dropped: the bank backend finds a
    response by the query it is asked, so a query must name one item.
    """
    if not 0 <= dev_fraction < 1:
        raise MocoError(f"--dev-fraction: expected a number in [0, 1), got {dev_fraction}")
    seen: set[str] = set()
    unique = [i for i in items if not (i["input"] in seen or seen.add(i["input"]))]
    random.Random(seed).shuffle(unique)
    cut = round(len(unique) * dev_fraction)
    data = {"name": name, "task_type": BANK_TASK_TYPE, "dev": unique[:cut], "test": unique[cut:]}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return out


def read_bank_items(path: str | Path) -> dict[str, dict[str, dict[str, Any]]]:
    """Query text -> model -> {response, score, cost}, over both splits."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise MocoError(f"{path}: not a readable bank file ({exc})") from None
    if not isinstance(data, dict) or data.get("task_type") != BANK_TASK_TYPE:
        raise MocoError(f"{path}: not a response bank (task_type is not {BANK_TASK_TYPE!r}); make one with moco bank")
    return {item["input"]: item["bank"] for split in ("dev", "test") for item in data.get(split, [])}


def bank_score(example: Any, output: str) -> float:
    """The bank's score of the model whose response this output is (0 for text no model wrote)."""
    found = [
        float(entry["score"])
        for entry in example.extra.get("bank", {}).values()
        if str(entry["response"]).strip() == output.strip()
    ]
    return max(found, default=0.0)
