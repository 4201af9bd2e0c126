"""Every check that can refuse a run before a model loads: method, params, pool, dataset.

Each failure is one ``MocoError`` line naming the config field or file at fault.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from pydantic import BaseModel, ValidationError

from moco_core.config import DatasetConfig, RunConfig, format_validation_error
from moco_core.data import limit_dataset, load_registered, load_user_data
from moco_core.errors import MocoError
from moco_core.models import architecture_of, check_model_path, tokenizer_fingerprint
from moco_core.registry import BackendSpec, MethodSpec, Registry, ScorerSpec
from moco_core.types import Dataset


@dataclass
class RunPlan:
    """A config whose method, parameters, pool and dataset have all been checked."""

    config: RunConfig
    method: MethodSpec
    params: BaseModel
    dataset: Dataset
    scorer: ScorerSpec


def suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def resolve_method(registry: Registry, key: str) -> MethodSpec:
    if key not in registry.methods:
        raise MocoError(f"method: unknown method {key!r}{suggest(key, list(registry.methods))}")
    return registry.methods[key]


def validate_params(spec: MethodSpec, params: dict) -> BaseModel:
    try:
        return spec.params.model_validate(params)
    except ValidationError as exc:
        raise MocoError(format_validation_error(exc, "params")) from None


def check_pool(config: RunConfig, spec: MethodSpec, registry: Registry) -> None:
    """Pool size, backends, model folders, descriptions, shared tokenizer and architecture."""
    needs = spec.requirements
    count = len(config.models)
    if count < needs.min_models or (needs.max_models is not None and count > needs.max_models):
        raise MocoError(f"models: {spec.key} needs {needs.describe().split(',')[0]}, the pool has {count}")
    local = []
    for i, model in enumerate(config.models):
        backend = registry.backends.get(model.backend)
        if backend is None:
            known = list(registry.backends)
            raise MocoError(f"models[{i}].backend: unknown backend {model.backend!r}{suggest(model.backend, known)}")
        if backend.local_paths:
            try:
                check_model_path(model.path)
            except MocoError as exc:
                raise MocoError(f"models[{i}].path: {exc}") from None
            local.append((i, model.path))
        if needs.descriptions and not (model.description or "").strip():
            raise MocoError(f"models[{i}].description: {spec.key} routes by description; give every model one")
    for label, fingerprint in (("tokenizer", tokenizer_fingerprint), ("architecture", architecture_of)):
        required = needs.same_tokenizer if label == "tokenizer" else needs.same_architecture
        if not required:
            continue
        seen: dict[str, int] = {}
        for i, path in local:
            value = fingerprint(path)
            if value is not None:
                seen.setdefault(value, i)
        if len(seen) > 1:
            first, second = sorted(seen.values())[:2]
            raise MocoError(
                f"models[{second}].path: {spec.key} needs the same {label} as models[{first}], "
                f"but {config.models[second].path} differs"
            )


def load_dataset(source: DatasetConfig, registry: Registry) -> tuple[Dataset, ScorerSpec]:
    """The configured dataset, limited and with each example's task prompt filled in.

    A registered key comes from its benchmark file or public source as ``dataset.source`` says
    (``Dataset.source`` records which, with the sampling rule); a ``path`` is a user file.
    """
    if source.name is not None:
        spec = registry.datasets.get(source.name)
        if spec is None:
            known = list(registry.datasets)
            raise MocoError(f"dataset.name: unknown dataset {source.name!r}{suggest(source.name, known)}")
        dataset = load_registered(spec, source.source, source.data_dir, source.split_seed)
        dataset.name, dataset.domain = spec.key, dataset.domain or spec.domain
        dataset.group_by = dataset.group_by or spec.group_by
    else:
        dataset = load_user_data(source.path or "", source.task_type, source.fields)
    scorer = registry.scorers.get(dataset.task_type)
    if scorer is None:
        raise MocoError(f"dataset: no installed plugin scores task type {dataset.task_type!r}")
    limit_dataset(dataset, source.limit)
    if not dataset.test:
        raise MocoError(f"dataset: {dataset.name} has no test examples")
    for example in [*dataset.dev, *dataset.test]:
        example.prompt = scorer.prompt(example)
    return dataset, scorer


def check_device(device: str) -> None:
    """Refuse a device this machine does not have, before anything loads."""
    if device in ("auto", "cpu"):
        return
    import torch

    if device == "mps":
        if not torch.backends.mps.is_available():
            raise MocoError("hardware.device: mps is not available on this machine")
        return
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise MocoError(f"hardware.device: {device} requested but no CUDA device is available (use cpu or auto)")
    index = int(device.partition(":")[2] or 0)
    if index >= count:
        raise MocoError(f"hardware.device: {device} requested but this machine has {count} CUDA device(s)")


def import_implementation(label: str, spec: MethodSpec | BackendSpec) -> None:
    """Import a plugin's implementation now, so a broken one is a one-line error, not a traceback."""
    try:
        spec.load()
    except (ImportError, AttributeError) as exc:
        raise MocoError(
            f"{label}: {spec.key} from {spec.distribution or 'a plugin'} cannot be imported "
            f"({spec.implementation}): {type(exc).__name__}: {exc}"
        ) from None


def plan_run(config: RunConfig, registry: Registry) -> RunPlan:
    """Check everything about a run that can be checked without loading a model."""
    spec = resolve_method(registry, config.method)
    params = validate_params(spec, config.params)
    check_device(config.hardware.device)
    check_pool(config, spec, registry)
    import_implementation("method", spec)
    for i, backend in enumerate(dict.fromkeys(m.backend for m in config.models)):
        import_implementation(f"models[{i}].backend", registry.backends[backend])
    dataset, scorer = load_dataset(config.dataset, registry)
    return RunPlan(config, spec, params, dataset, scorer)
