"""Every check that can refuse a run before a model loads: method, params, pool, dataset.

Each failure is one ``MocoError`` line naming the config field or file at fault.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ValidationError

from moco_core.config import DatasetConfig, RunConfig, format_validation_error
from moco_core.data import limit_dataset, load_registered, load_user_data
from moco_core.errors import MocoError
from moco_core.models import adapter_base, architecture_of, check_model_path, tokenizer_fingerprint
from moco_core.official import install_hint
from moco_core.plugins import get_registry
from moco_core.registry import BackendSpec, MethodSpec, Registry, ScorerSpec, import_object
from moco_core.types import Dataset
from moco_core.weights_check import check_weight_files, context_length


@dataclass
class RunPlan:
    """A config whose method, parameters, pool and dataset have all been checked."""

    config: RunConfig
    method: MethodSpec
    params: BaseModel
    dataset: Dataset
    scorer: ScorerSpec

    @property
    def pool_names(self) -> list[str]:
        """Member names in pool order, as ``ModelPool.names`` will give them."""
        return [model.name for model in self.config.models]


def suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def resolve_method(registry: Registry, key: str) -> MethodSpec:
    if key not in registry.methods:
        hint = install_hint("method", key) or suggest(key, list(registry.methods))
        raise MocoError(f"method: unknown method {key!r}{hint}")
    return registry.methods[key]


def validate_params(spec: MethodSpec, params: dict) -> BaseModel:
    """The method's parameters, validated as a config file's (``validate_as_config``)."""
    return validate_as_config(spec.params, params, "params")


def validate_as_config(model: type[BaseModel], values: dict, field: str) -> BaseModel:
    """``values`` validated strictly as the JSON a config file is: ``true`` is not the pool index 1
    and ``"0.5"`` is not a number (an integer still is a float).  Values JSON cannot carry (a date
    YAML parsed) are validated as given.  An invalid value is one line naming ``field``."""
    try:
        try:
            text = json.dumps(values)
        except (TypeError, ValueError):
            return model.model_validate(values)
        return model.model_validate_json(text, strict=True)
    except ValidationError as exc:
        raise MocoError(format_validation_error(exc, field, model)) from None


def needs_weights(spec: MethodSpec) -> bool:
    """``Requirements.local_weights`` when the method says; else logit- and weight-level methods (per-step
    logits, weights) and text-level methods that train (they fine-tune the pool's own models). API-level
    training (a router's classifier) needs neither."""
    if spec.requirements.local_weights is not None:
        return spec.requirements.local_weights
    return spec.level in ("logit", "weight") or (spec.trains and spec.level == "text")


def check_backend(config: RunConfig, i: int, spec: MethodSpec, backend: BackendSpec) -> None:
    """A backend without local weights refused by methods that need them; ``backend_options`` validated."""
    model = config.models[i]
    if not backend.weights and needs_weights(spec):
        raise MocoError(
            f"models[{i}].backend: {spec.key} ({spec.level} level) needs the model's weights or per-step logits; "
            f"the {model.backend} backend serves only text"
        )
    if not backend.generates:
        check_replay(model.backend, i, spec, model.system_prompt)
    if not backend.options:
        if model.backend_options:
            raise MocoError(f"models[{i}].backend_options: the {model.backend} backend takes no options")
        return
    try:
        options = import_object(backend.options).model_validate(model.backend_options)
    except ValidationError as exc:
        raise MocoError(format_validation_error(exc, f"models[{i}].backend_options")) from None
    check_path = getattr(options, "check_path", None)  # a backend's own plan-time check of the model it serves
    if callable(check_path):
        try:
            check_path(model.path)
        except MocoError as exc:
            raise MocoError(f"models[{i}].path: {exc}") from None


def check_replay(backend: str, i: int, spec: MethodSpec, system_prompt: str | None) -> None:
    """A backend that replays stored answers (``generates=False``, a response bank) serves only methods
    that ask each member its one answer per query (``Requirements.answers_only``), with no system prompt."""
    if not spec.requirements.answers_only:
        raise MocoError(
            f"models[{i}].backend: {spec.key} needs generation beyond each model's one answer per query "
            f"(new prompts, samples or rounds); the {backend} backend only replays stored answers"
        )
    if system_prompt:
        raise MocoError(f"models[{i}].system_prompt: the {backend} backend replays stored answers; remove it")


def replaying_member(config: RunConfig, member: str | None = None) -> int | None:
    """Index of the first member (or of ``member`` alone, by name) whose backend only replays stored
    answers (a response bank), else None."""
    backends = get_registry().backends
    for i, model in enumerate(config.models):
        spec = backends.get(model.backend)
        if (member is None or model.name == member) and spec is not None and not spec.generates:
            return i
    return None


def check_one_answer(config: RunConfig, field: str, count: int, member: str | None = None) -> None:
    """For a method's ``check``: refuse a parameter asking a member (any, or ``member``) for ``count`` > 1
    answers per query when its backend replays its one stored answer (a response bank)."""
    i = replaying_member(config, member) if count > 1 else None
    if i is not None:
        raise MocoError(
            f"{field}: {count} answers per model need generation; models[{i}] uses the "
            f"{config.models[i].backend} backend, which holds one answer per query (use 1)"
        )


def check_replayed_prompts(config: RunConfig, registry: Registry, dataset: Dataset) -> None:
    """A pool whose every member replays stored answers (backend options with ``answered(path)``) runs
    only on queries its banks hold: a test prompt no member holds would be refused mid-run, so it is now."""
    answered: set[str] = set()
    for model in config.models:
        backend = registry.backends[model.backend]
        if backend.generates or not backend.options:
            return
        holds = getattr(import_object(backend.options).model_validate(model.backend_options), "answered", None)
        if not callable(holds):
            return
        answered |= holds(model.path)
    for example in dataset.test:
        if example.prompt not in answered:
            raise MocoError(
                f"dataset: test item {example.id!r} is a query no member's {config.models[0].backend} holds an "
                "answer to; a bank pool runs on its bank's own queries (the dataset its `moco bank` snippet names)"
            )


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
        check_backend(config, i, spec, backend)
        if backend.local_paths:
            try:
                check_model_path(model.path, model.base)
                check_weight_files_of(model.path)
            except MocoError as exc:
                raise MocoError(f"models[{i}].path: {exc}") from None
            check_context(config, i)
            local.append((i, adapter_base(model.path, model.base) or model.path))
        if needs.descriptions and not (model.description or "").strip():
            raise MocoError(f"models[{i}].description: {spec.key} routes by description; give every model one")
    for label, fingerprint in (("tokenizer", tokenizer_fingerprint), ("architecture", architecture_of)):
        required = needs.same_tokenizer if label == "tokenizer" else needs.same_architecture
        if not required:
            continue
        seen: dict[str, int] = {}
        for i, path in local:
            try:
                value = fingerprint(path)
            except MocoError as exc:
                raise MocoError(f"models[{i}].path: {exc}") from None
            if value is not None:
                seen.setdefault(value, i)
        if len(seen) > 1:
            first, second = sorted(seen.values())[:2]
            raise MocoError(
                f"models[{second}].path: {spec.key} needs the same {label} as models[{first}], "
                f"but {config.models[second].path} differs"
            )


def check_model_param(field: str, path: str) -> None:
    """Refuse a model a method parameter names (a selector, reward model, encoder) whose local folder is
    missing, not a model, or holds damaged weights; hub ids pass (they resolve when loaded)."""
    try:
        check_model_path(path)
        check_weight_files_of(path)
    except MocoError as exc:
        raise MocoError(f"{field}: {exc}") from None


def check_weight_files_of(path: str) -> None:
    """Refuse a local model folder whose safetensors files are random or truncated."""
    folder = Path(path).expanduser()
    if folder.is_dir():
        check_weight_files(folder)


def check_context(config: RunConfig, i: int) -> None:
    """Refuse ``max_new_tokens`` beyond the positions a local model has (from its config.json)."""
    folder = Path(config.models[i].path).expanduser()
    limit = context_length(folder) if folder.is_dir() else None
    wanted = config.generation.max_new_tokens
    if limit is not None and wanted > limit:
        raise MocoError(
            f"generation.max_new_tokens: {wanted} is beyond the context of models[{i}] "
            f"({config.models[i].path} has {limit} positions); use at most {limit}"
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
            hint = install_hint("dataset", source.name) or suggest(source.name, known)
            raise MocoError(f"dataset.name: unknown dataset {source.name!r}{hint}")
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


def check_task_type(spec: MethodSpec, scorer: ScorerSpec) -> None:
    """Refuse a method whose requirements the dataset's task type cannot meet (voting needs an extractor)."""
    if spec.requirements.needs_extractor and scorer.extract is None:
        raise MocoError(
            f"method: {spec.key} needs a task type with a definitive answer; "
            f"{scorer.task_type!r} has no answer extractor"
        )


def check_dev_split(spec: MethodSpec, dataset: Dataset) -> None:
    """Refuse data without a dev split for a method that always selects, ranks or trains on dev."""
    if spec.requirements.dev_split and not dataset.dev:
        raise MocoError(
            f"dataset: {dataset.name} has no dev split, which {spec.key} needs (it selects, ranks or trains "
            "on dev); give the data a dev split"
        )


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


def check_method(plan: RunPlan) -> None:
    """The method's own plan-time checks (``Method.check``): parameter fit to the pool, dev split, backends."""
    check = getattr(plan.method.load(), "check", None)
    if callable(check):
        check(plan)


DatasetLoader = Callable[[DatasetConfig, Registry], tuple[Dataset, ScorerSpec]]


def plan_run(config: RunConfig, registry: Registry, load: DatasetLoader = load_dataset) -> RunPlan:
    """Check everything about a run that can be checked without loading a model.

    ``load`` reads the dataset; a sweep's pre-flight passes one that reads each distinct dataset once.
    """
    spec = resolve_method(registry, config.method)
    params = validate_params(spec, config.params)
    check_device(config.hardware.device)
    check_pool(config, spec, registry)
    import_implementation("method", spec)
    for i, backend in enumerate(dict.fromkeys(m.backend for m in config.models)):
        import_implementation(f"models[{i}].backend", registry.backends[backend])
    dataset, scorer = load(config.dataset, registry)
    check_task_type(spec, scorer)
    check_replayed_prompts(config, registry, dataset)
    plan = RunPlan(config, spec, params, dataset, scorer)
    check_method(plan)
    check_dev_split(spec, dataset)
    return plan
