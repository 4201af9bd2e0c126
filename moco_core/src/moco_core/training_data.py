"""Training rows and job kinds: checked per kind, hashed for the recipe, shaped for the trainer.

A job kind (``TrainingKind``) says which fields its rows carry and names the function that
builds its trainer; sft, dpo and grpo are built in, and a method adds its own loss with
``register_training_kind`` (co_llm's marginal likelihood is one).  Prompts of the built-in kinds
are rendered exactly as the hf backend renders them at generation time (the base's chat
template with an optional system turn, else plain text), so a trained model is asked in the
format it was trained on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from moco_core.errors import MocoError

ROW_COLUMN = "moco_row"
"""GRPO keeps each original row as JSON in this column, so rewards see the gold fields unchanged."""


@dataclass(frozen=True)
class TrainingKind:
    """One kind of training job: its rows, its trainer, and what its recipe records.

    ``trainer`` is ``"module:function"``, imported only when a job trains; the function takes a
    ``moco_core.training_run.TrainerInputs`` and returns a ``transformers.Trainer`` (any subclass:
    the loss is its ``compute_loss``).  The engine runs it, logs every step, and saves the result
    with the trainer's ``save_result(folder)`` when it has one, else ``model.save_pretrained``; a
    result must hold at least one ``.safetensors`` file.  ``fields`` are the keys every row must
    have; ``check_row`` may refuse a row (returns the problem, None when fine); ``shape`` turns a
    row into the trainer's dataset row (default: unchanged).  ``version`` goes into the recipe:
    change it when the loss changes, so finished jobs of the old loss are not reused.
    ``requires`` are the packages the trainer imports (a job without them fails in one line).
    """

    name: str
    fields: tuple[str, ...]
    trainer: str
    check_row: Callable[[dict[str, Any]], str | None] | None = None
    shape: Callable[[RowShaper, dict[str, Any]], dict[str, Any]] | None = None
    adapters: tuple[str, ...] = ("lora", "full")
    reward: bool = False
    version: str | None = None
    requires: tuple[str, ...] = ("transformers",)


_kinds: dict[str, TrainingKind] = {}


def register_training_kind(kind: TrainingKind) -> None:
    """Make ``kind.name`` a valid ``TrainingJob.kind`` in this process (registering again replaces it)."""
    _kinds[kind.name] = kind


def unregister_training_kind(name: str) -> None:
    if name not in BUILT_IN:
        _kinds.pop(name, None)


def training_kind(name: str) -> TrainingKind:
    """The registered kind called ``name``; one line naming the known kinds otherwise."""
    kind = _kinds.get(name)
    if kind is None:
        raise MocoError(f"training.kind: unknown job kind {name!r} (expected {', '.join(_kinds)})")
    return kind


def _text_fields(kind: str, needed: tuple[str, ...]) -> Callable[[dict[str, Any]], str | None]:
    def check(row: dict[str, Any]) -> str | None:
        for name in needed:
            value = row.get(name)
            if not isinstance(value, str) or not value.strip():
                return f"{name}: missing or not a non-empty string ({kind} rows need {', '.join(needed)})"
        system = row.get("system")
        if system is not None and not isinstance(system, str):
            return "system: must be a string"
        return None

    return check


BUILT_IN = ("sft", "dpo", "grpo")
REQUIRED_FIELDS = {"sft": ("prompt", "completion"), "dpo": ("prompt", "chosen", "rejected"), "grpo": ("prompt",)}
for _name in BUILT_IN:
    register_training_kind(
        TrainingKind(
            name=_name,
            fields=REQUIRED_FIELDS[_name],
            trainer=f"moco_core.training_run:{_name}_trainer",
            check_row=_text_fields(_name, REQUIRED_FIELDS[_name]),
            reward=_name == "grpo",
            requires=("trl", "peft"),
        )
    )
KINDS = BUILT_IN
"""The built-in kinds (``training_kind`` knows every registered one)."""


def check_rows(kind: str, rows: list[dict[str, Any]], gold: str | None = None) -> None:
    """Refuse empty data, non-mapping rows and rows the kind refuses, naming the row.

    ``gold`` is a field every row must carry as well (the answer a scorer reward compares with).
    """
    spec = training_kind(kind)
    if not isinstance(rows, list):
        raise MocoError(f"training.data: expected a list of rows, got {type(rows).__name__}")
    if not rows:
        raise MocoError("training.data: no rows to train on")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise MocoError(f"training.data[{i}]: expected a mapping, got {type(row).__name__}")
        missing = [name for name in spec.fields if row.get(name) is None]
        if missing:
            raise MocoError(f"training.data[{i}].{missing[0]}: missing ({kind} rows need {', '.join(spec.fields)})")
        problem = spec.check_row(row) if spec.check_row is not None else None
        if problem:
            raise MocoError(f"training.data[{i}].{problem}")
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
        if kind not in BUILT_IN:
            spec = training_kind(kind)
            return spec.shape(self, row) if spec.shape is not None else row
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
