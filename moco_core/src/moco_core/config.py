"""The run config: one pydantic model, read from YAML or JSON, every unknown key refused."""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from moco_core.errors import MocoError
from moco_core.types import GenerationSettings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelConfig(_Strict):
    """One pool member.  The same path with different system prompts shares one loaded copy."""

    name: str = Field(min_length=1)
    path: str = Field(min_length=1)
    description: str | None = None
    system_prompt: str | None = None
    backend: str = "hf"
    backend_options: dict[str, Any] = Field(
        default_factory=dict, description="backend settings, e.g. openai: base_url, api_key_env, max_concurrency"
    )
    base: str | None = Field(
        default=None, description="base model of a PEFT adapter folder; default: its adapter_config.json"
    )


class DatasetConfig(_Strict):
    """Which data a run uses: a registered dataset (``name``) or a user file (``path``).

    A registered dataset comes from its benchmark file in ``data_dir`` (else ``$MOCO_DATA_DIR``)
    or from its public source on the Hugging Face hub, sampled with ``split_seed``; ``source: auto``
    takes the file when the folder has it, so a run works with or without the shared files. A user
    file is benchmark-format JSON, JSONL, CSV or a ``save_to_disk`` folder: only benchmark JSON
    declares its own task type, so the others need ``task_type``, and ``fields`` maps our schema
    names (question, choices, answer, input, output, id, any extra) to the file's column names.
    ``limit`` caps each split.
    """

    name: str | None = None
    path: str | None = None
    source: Literal["auto", "file", "hub"] = "auto"
    data_dir: str | None = None
    split_seed: int = 0
    task_type: str | None = Field(default=None, validate_default=True)
    fields: dict[str, str | list[str]] | None = None
    limit: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _one_source(self) -> DatasetConfig:
        if (self.name is None) == (self.path is None):
            raise ValueError("give exactly one of 'name' or 'path'")
        return self

    @field_validator("source")
    @classmethod
    def _source_needs_name(cls, value: str, info: ValidationInfo) -> str:
        if value == "hub" and info.data.get("path") is not None:
            raise ValueError("'hub' applies to a registered dataset ('name'); a 'path' is read from the file")
        return value

    @field_validator("data_dir")
    @classmethod
    def _data_dir_for_files(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("path") is not None:
            raise ValueError("applies to a registered dataset ('name'); 'path' already names the file")
        if value is not None and info.data.get("source") == "hub":
            raise ValueError("not used with source 'hub'")
        return value

    @field_validator("split_seed")
    @classmethod
    def _seed_for_hub(cls, value: int, info: ValidationInfo) -> int:
        if value != 0 and (info.data.get("path") is not None or info.data.get("source") == "file"):
            raise ValueError("samples the public source; it applies only to a 'name' with source 'hub' or 'auto'")
        return value

    @field_validator("task_type")
    @classmethod
    def _task_type_for_user_files(cls, value: str | None, info: ValidationInfo) -> str | None:
        name, path = info.data.get("name"), info.data.get("path")
        if (name is None) == (path is None):
            return value
        if name is not None and value is not None:
            raise ValueError(f"only for a user file ('path'); {name} has its registered task type")
        if path is not None and value is None and Path(path).suffix.lower() != ".json":
            kind = Path(path).suffix.lower() or "folder"
            raise ValueError(f"required for a {kind} user file (only benchmark-format JSON declares its own)")
        return value

    @field_validator("fields")
    @classmethod
    def _fields_for_user_files(
        cls, value: dict[str, str | list[str]] | None, info: ValidationInfo
    ) -> dict[str, str | list[str]] | None:
        if value is not None and info.data.get("name") is not None:
            raise ValueError("only for a user file ('path'); registered datasets map their own fields")
        for ours, theirs in (value or {}).items():
            if isinstance(theirs, list) and ours != "choices":
                raise ValueError(f"{ours}: a list of columns is accepted only for 'choices'")
            if not theirs:
                raise ValueError(f"{ours}: empty column name")
        return value

    @property
    def label(self) -> str:
        return self.name or Path(self.path or "").stem


class GenerationConfig(_Strict):
    max_new_tokens: int = Field(default=512, ge=1)
    temperature: float = Field(default=0.7, ge=0.0)
    top_p: float = Field(default=0.9, gt=0.0, le=1.0)
    seed: int = 0
    batch_size: int = Field(default=16, ge=1)

    def settings(self) -> GenerationSettings:
        return GenerationSettings(self.max_new_tokens, self.temperature, self.top_p, self.seed)


class HardwareConfig(_Strict):
    device: str = "auto"
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    max_resident_models: int | None = Field(default=None, ge=1)

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda|cuda:\d+|mps", value):
            raise ValueError("expected cpu, cuda, cuda:N, mps or auto")
        return value


class ScoringConfig(_Strict):
    """Models used by model-based scorers; each is loaded only when its task type is scored."""

    judge_model: str | None = Field(default=None, description="LLM judge for noncompliance; keyword rules when None")
    reward_model: str = "Skywork/Skywork-Reward-Llama-3.1-8B-v0.2"
    verifier_model: str = "TIGER-Lab/general-verifier"
    embedding_model: str = "sentence-transformers/all-MiniLM-L6-v2"
    batch_size: int = Field(default=8, ge=1)
    device: str = "auto"
    max_new_tokens: int = Field(default=512, ge=1, description="for judge and verifier generations")
    code_timeout_s: float = Field(default=10.0, gt=0, description="wall-clock limit per sandboxed program")
    code_cpu_s: int = Field(default=10, ge=1, description="CPU-time limit per sandboxed program")
    code_memory_mb: int = Field(
        default=1024, ge=64, description="memory bound for each sandboxed program and all its processes together"
    )
    code_workers: int | None = Field(default=None, ge=1, description="programs run in parallel; default CPU count")
    code_allow_unsafe: bool = Field(
        default=False, description="UNSAFE: score code even where the sandbox lacks namespaces, jail or cgroups"
    )


class RunConfig(_Strict):
    """Everything one run needs; written back resolved as ``config.yaml`` next to the results."""

    method: str
    params: dict[str, Any] = Field(default_factory=dict)
    models: list[ModelConfig] = Field(min_length=1)
    dataset: DatasetConfig
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    hardware: HardwareConfig = Field(default_factory=HardwareConfig)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    output_dir: str | None = None
    label: str | None = Field(default=None, description="row name in `moco compare` (default: method and settings)")

    @field_validator("models")
    @classmethod
    def _unique_names(cls, models: list[ModelConfig]) -> list[ModelConfig]:
        seen: set[str] = set()
        for model in models:
            if model.name in seen:
                raise ValueError(f"model name {model.name!r} is used twice")
            seen.add(model.name)
        return models

    def resolved_output_dir(self) -> Path:
        return Path(self.output_dir or f"runs/{self.method}-{self.dataset.label}")


def _known_keys(model: type[BaseModel] | None, location: tuple[Any, ...]) -> list[str]:
    """The keys a (nested) config section accepts, found by walking ``model``'s fields along ``location``."""
    for part in location:
        if model is None or isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field is not None else None
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return list(model.model_fields) if model is not None else []


def format_validation_error(error: ValidationError, source: str, model: type[BaseModel] | None = None) -> str:
    """The first problem of a pydantic error as ``source: field.path: message``.

    An unknown key is reported before anything else (a misspelled ``modles`` would otherwise
    surface only as the missing ``models`` it shadows), with the closest key ``model`` accepts.
    """
    errors = error.errors()
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    location = ".".join(str(part) for part in first["loc"]) or "(top level)"
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown key"
        key = str(first["loc"][-1]) if first["loc"] else ""
        close = difflib.get_close_matches(key, _known_keys(model, first["loc"][:-1]), n=1, cutoff=0.6)
        if close:
            message += f" {key!r} — did you mean {close[0]!r}?"
    return f"{source}: {location}: {message}"


class _DuplicateKey(Exception):
    def __init__(self, key: Any, line: int | None) -> None:
        super().__init__(key, line)
        self.key, self.line = key, line


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key given twice in one mapping (YAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str | int | float | bool) or key is None:
                if key in seen:
                    raise _DuplicateKey(key, key_node.start_mark.line + 1)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _unique_json_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _DuplicateKey(key, None)
        found[key] = value
    return found


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Parse a YAML or JSON config file into a mapping, with one-line errors.

    A key given twice is refused (YAML and JSON parsers silently keep the last one), and so is
    a file that is not UTF-8.
    """
    path = Path(path)
    if not path.is_file():
        raise MocoError(f"{path}: config file not found")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise MocoError(f"{path}: not UTF-8 text (byte {raw[exc.start]:#04x} at line {line})") from None
    try:
        if path.suffix == ".json":
            data = json.loads(text, object_pairs_hook=_unique_json_pairs)
        else:
            data = yaml.load(text, Loader=_UniqueKeyLoader)
    except _DuplicateKey as exc:
        where = f" (line {exc.line})" if exc.line is not None else ""
        raise MocoError(f"{path}: key {exc.key!r} is given twice{where}; give it once") from None
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise MocoError(f"{path}: malformed config{where}: {detail}") from None
    if not isinstance(data, dict):
        raise MocoError(f"{path}: config must be a mapping of keys to values")
    return data


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read and validate a config file; ``overrides`` are applied to the top level first."""
    data = read_config_file(path)
    data.update(overrides or {})
    return parse_config(data, str(path))


def parse_config(data: dict[str, Any], source: str = "config") -> RunConfig:
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise MocoError(format_validation_error(exc, source, RunConfig)) from None


def dump_config(config: RunConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
