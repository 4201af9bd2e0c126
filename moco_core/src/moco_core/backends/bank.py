"""The ``bank`` backend: a pool model "generates" its precomputed response from a response bank.

Zero generation by construction: a request the bank cannot answer (another prompt, a second
sample, a system prompt) is refused in one line naming the model, so a method that needs more
than each model's one answer per query cannot silently run on a bank. A response's generated
tokens are the count its bank entry stores (``completion_tokens``, ``tokens`` or ``output_tokens``);
without one the model is listed as ``uncounted`` in the run's ``compute`` metrics.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from moco_core.banks.bank import read_bank_items
from moco_core.errors import MocoError
from moco_core.types import Generation, GenerationRequest, GenerationSettings


@functools.lru_cache(maxsize=4)
def _read_bank(path: str, size: int, mtime_ns: int) -> dict[str, dict[str, dict[str, Any]]]:
    try:
        items = read_bank_items(path)
    except (UnicodeDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise MocoError(f"{path}: not a readable bank file ({type(exc).__name__}: {exc})") from None
    for query, entries in items.items():
        if not isinstance(entries, dict) or not all(
            isinstance(e, dict) and isinstance(e.get("response"), str) for e in entries.values()
        ):
            raise MocoError(f"{path}: the bank entry of {str(query)[:40]!r} is not model -> {{response, score}}")
    return items


def load_bank(bank: str) -> dict[str, dict[str, dict[str, Any]]]:
    """Query text -> model -> entry, read once per file version; a damaged bank is one ``MocoError`` line."""
    path = Path(bank).expanduser().resolve()
    stat = path.stat()
    return _read_bank(str(path), stat.st_size, stat.st_mtime_ns)


class BankOptions(BaseModel):
    """``backend_options`` of a ``bank`` model: the bank file (made by ``moco bank``), read and checked here."""

    model_config = ConfigDict(extra="forbid")

    bank: str

    @field_validator("bank")
    @classmethod
    def _exists(cls, value: str) -> str:
        if not Path(value).expanduser().is_file():
            raise ValueError(f"{value}: bank file not found")
        try:
            load_bank(value)
        except MocoError as exc:
            raise ValueError(str(exc)) from None
        return value

    def check_path(self, path: str) -> None:
        """Plan time: the bank must hold answers of the model named by ``path``."""
        models = sorted({m for entries in load_bank(self.bank).values() for m in entries})
        if path not in models:
            raise MocoError(f"the bank {self.bank} has no model {path!r} (it has: {', '.join(models)})")

    def answered(self, path: str) -> set[str]:
        """The queries the bank holds an answer of the model ``path`` to (plan time: the dataset's prompts
        must be among them)."""
        return {query for query, entries in load_bank(self.bank).items() if path in entries}


TOKEN_FIELDS = ("completion_tokens", "tokens", "output_tokens")
"""Bank entry fields read as the response's generated tokens (LLMRouterBench calls it completion_tokens)."""


@dataclass
class BankModel:
    model: str
    responses: dict[str, str]
    tokens: dict[str, int] = field(default_factory=dict)


def _stored_tokens(entry: dict[str, Any]) -> int | None:
    for key in TOKEN_FIELDS:
        value = entry.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return int(value)
    return None


class BankBackend:
    def identity(self, path: str, options: dict[str, Any]) -> dict[str, Any]:
        """The model name and the bank file's resolved path, size and modification time."""
        bank = Path(BankOptions.model_validate(options).bank).expanduser().resolve()
        stat = bank.stat()
        return {"path": path, "bank": str(bank), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}

    def load(
        self, path: str, device: str, dtype: str, device_map: str | None = None, options: dict[str, Any] | None = None
    ) -> BankModel:
        bank = BankOptions.model_validate(options or {}).bank
        items = load_bank(bank)
        responses = {query: entries[path]["response"] for query, entries in items.items() if path in entries}
        if not responses:
            models = sorted({m for entries in items.values() for m in entries})
            raise MocoError(f"models.{path}: the bank {bank} has no model {path!r} (it has: {', '.join(models)})")
        tokens = {}
        for query, entries in items.items():
            count = _stored_tokens(entries[path]) if path in entries else None
            if count is not None:
                tokens[query] = count
        return BankModel(path, responses, tokens)

    def unload(self, handle: BankModel) -> None:
        return None

    def generate(
        self, handle: BankModel, requests: list[GenerationRequest], settings: GenerationSettings, batch_size: int
    ) -> list[Generation]:
        generations = []
        for request in requests:
            if request.sample != 0 or request.system_prompt:
                what = "a second sample" if request.sample else "a system prompt"
                raise MocoError(f"bank model {handle.model}: the method asks for {what}; a bank holds one answer")
            response = handle.responses.get(request.prompt)
            if response is None:
                raise MocoError(
                    f"bank model {handle.model}: no response to a prompt the method wrote "
                    f"({request.prompt[:60]!r}...); this method needs generation beyond the bank"
                )
            generations.append(Generation(text=response.strip(), tokens=handle.tokens.get(request.prompt)))
        return generations
