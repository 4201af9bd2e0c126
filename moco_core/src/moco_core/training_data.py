"""Training rows: checked per job kind, hashed for the recipe, shaped the way TRL reads them.

Prompts are rendered exactly as the hf backend renders them at generation time (the base's chat
template with an optional system turn, else plain text), so a trained model is asked in the
format it was trained on.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from moco_core.errors import MocoError

KINDS = ("sft", "dpo", "grpo")
REQUIRED_FIELDS = {"sft": ("prompt", "completion"), "dpo": ("prompt", "chosen", "rejected"), "grpo": ("prompt",)}
ROW_COLUMN = "moco_row"
"""GRPO keeps each original row as JSON in this column, so rewards see the gold fields unchanged."""


def check_rows(kind: str, rows: list[dict[str, Any]], gold: str | None = None) -> None:
    """Refuse empty data, non-mapping rows, and missing or non-text fields, naming the row.

    ``gold`` is a field every row must carry as well (the answer a scorer reward compares with).
    """
    if not isinstance(rows, list):
        raise MocoError(f"training.data: expected a list of rows, got {type(rows).__name__}")
    if not rows:
        raise MocoError("training.data: no rows to train on")
    needed = REQUIRED_FIELDS[kind]
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise MocoError(f"training.data[{i}]: expected a mapping, got {type(row).__name__}")
        for name in needed:
            value = row.get(name)
            if not isinstance(value, str) or not value.strip():
                raise MocoError(
                    f"training.data[{i}].{name}: missing or not a non-empty string ({kind} rows need "
                    f"{', '.join(needed)})"
                )
        system = row.get("system")
        if system is not None and not isinstance(system, str):
            raise MocoError(f"training.data[{i}].system: must be a string")
        if gold is not None and row.get(gold) is None:
            raise MocoError(f"training.data[{i}].{gold}: missing (the reward scores against it)")


def data_hash(rows: list[dict[str, Any]]) -> str:
    """A hash of the rows' content (key order ignored), for the job's recipe."""
    try:
        payload = json.dumps(rows, sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise MocoError(f"training.data: rows must be JSON data ({exc})") from None
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def _accepts_system(tokenizer: Any) -> bool:
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    try:
        tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    except Exception:  # templates without a system role (Gemma) raise
        return False
    return True


class RowShaper:
    """Turns moco rows into TRL rows for one tokenizer: conversational with a template, else text."""

    def __init__(self, tokenizer: Any) -> None:
        self.chat = has_chat_template(tokenizer)
        self.system_turn = self.chat and _accepts_system(tokenizer)

    def prompt(self, row: dict[str, Any]) -> Any:
        text, system = row["prompt"], row.get("system")
        if not self.chat:
            return f"{system}\n\n{text}" if system else text
        if system and self.system_turn:
            return [{"role": "system", "content": system}, {"role": "user", "content": text}]
        return [{"role": "user", "content": f"{system}\n\n{text}" if system else text}]

    def answer(self, text: str) -> Any:
        return [{"role": "assistant", "content": text}] if self.chat else text

    def shape(self, kind: str, row: dict[str, Any]) -> dict[str, Any]:
        shaped = {"prompt": self.prompt(row)}
        if kind == "sft":
            shaped["completion"] = self.answer(row["completion"])
        elif kind == "dpo":
            shaped["chosen"] = self.answer(row["chosen"])
            shaped["rejected"] = self.answer(row["rejected"])
        else:
            shaped[ROW_COLUMN] = json.dumps(row, ensure_ascii=False)
        return shaped


def completion_text(completion: Any) -> str:
    """The text of a TRL completion: a plain string or the last assistant message."""
    if isinstance(completion, str):
        return completion
    return str(completion[-1]["content"]) if completion else ""
