"""Core's default weight merging: a ``MergeJob`` run through mergekit's Python API.

A merged folder carries its recipe in ``moco_identity.json`` (what went in, how, with which
mergekit), so the generation cache recognises the same merge across runs and a repeated job
reuses the folder instead of merging again.  mergekit is imported only when a merge runs.
"""

from __future__ import annotations

import json
import logging
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from moco_core.artifacts import clear_stale_output, staged_folder
from moco_core.cache import cache_key, default_cache_dir
from moco_core.errors import MocoError
from moco_core.models import IDENTITY_FILE, model_identity, resolve_model_path
from moco_core.types import MergeJob

log = logging.getLogger(__name__)

COMPUTE_DTYPE = "float32"
"""Merge arithmetic runs in float32 whatever the output dtype, so bf16 inputs lose nothing extra."""

OPTION_PARAMETERS = ("random_seed",)
"""``MergeJob.parameters`` keys that are mergekit run options, not merge-method parameters."""


def _mergekit_version() -> str | None:
    try:
        return version("mergekit")
    except PackageNotFoundError:
        return None


def merge_recipe(job: MergeJob) -> dict[str, Any]:
    """Everything that determines the merged weights (not where they are written).

    Inputs are named by their full identity, never their path alone, so merging a folder that
    was retrained in place gives a new recipe.
    """
    recipe = {
        "kind": "merge",
        "engine": f"mergekit {_mergekit_version()}",
        "method": job.method,
        "models": [model_identity(resolve_model_path(p), job.dtype) for p in job.models],
        "base_model": model_identity(resolve_model_path(job.base_model), job.dtype) if job.base_model else None,
        "weights": job.weights,
        "parameters": job.parameters,
        "dtype": job.dtype,
    }
    return json.loads(json.dumps(recipe))


def merge_output_dir(job_recipe: dict[str, Any]) -> Path:
    """A content-addressed folder for a merge: ``<cache dir>/merges/<recipe hash>``.

    Callers that do not care where a merge lives use it so that every run (and every method)
    asking for the same merge shares one folder.
    """
    return default_cache_dir() / "merges" / cache_key(**job_recipe)[:24]


def _complete(folder: Path, recipe: dict[str, Any]) -> bool:
    identity = folder / IDENTITY_FILE
    if not identity.is_file() or not (folder / "config.json").is_file():
        return False
    if not any(folder.glob("*.safetensors")):
        return False
    try:
        return json.loads(identity.read_text(encoding="utf-8")) == recipe
    except (OSError, json.JSONDecodeError):
        return False


def _weights(job: MergeJob) -> list[float]:
    """Per-model weights; None means 1.0 each (linear and ties normalise this to a plain average)."""
    if job.weights is None:
        return [1.0] * len(job.models)
    if len(job.weights) != len(job.models):
        raise MocoError(f"merge: {len(job.weights)} weights given for {len(job.models)} models")
    return [float(w) for w in job.weights]


def merge_method_names() -> list[str]:
    """Every merge method mergekit offers, by the name a config uses."""
    from mergekit.merge_methods import registered_methods

    return sorted(m.spec.name for m in registered_methods())


def _check_parameter_values(method: str, spec: Any, parameters: dict[str, Any]) -> None:
    """Each value (each element of a per-model list or gradient) has the type mergekit's parameter takes."""
    by_name = {p.name: p for p in spec.parameters}
    for name, value in parameters.items():
        parameter = by_name.get(name)
        if parameter is None:
            continue
        for item in value if isinstance(value, list | tuple) else [value]:
            try:
                parameter.validate(item)
            except ValueError as exc:  # pydantic's ValidationError is a ValueError
                detail = exc.errors()[0]["msg"] if hasattr(exc, "errors") else str(exc)
                raise MocoError(f"merge: {method} parameter {name!r}: {detail} (got {item!r})") from None


def check_merge_request(method: str, parameters: dict[str, Any], has_base: bool, inputs: int | None = None) -> None:
    """Refuse, in one line, a merge mergekit cannot run: unknown method or parameter, a missing
    required parameter or base model, or a number of inputs the method does not take.

    ``inputs`` is the number of non-base models (None when not yet known).  Runs before any
    model loads, so a bad recipe costs nothing.
    """
    from mergekit.merge_methods import get as get_merge_method

    try:
        spec = get_merge_method(method).spec
    except RuntimeError:
        raise MocoError(
            f"merge: mergekit has no merge method {method!r} (known: {', '.join(merge_method_names())})"
        ) from None
    known = {p.name for p in spec.parameters}
    for name in parameters:
        if name not in known and name not in OPTION_PARAMETERS:
            valid = ", ".join(sorted(known | set(OPTION_PARAMETERS)))
            raise MocoError(f"merge: {method} has no parameter {name!r} (known: {valid})")
    for parameter in spec.parameters:
        if parameter.required and parameter.name != "weight" and parameter.name not in parameters:
            raise MocoError(f"merge: {method} needs parameter {parameter.name!r}")
    _check_parameter_values(method, spec, parameters)
    policy = spec.contract.base.value
    if policy == "required" and not has_base:
        raise MocoError(f"merge: {method} needs a base_model")
    if policy == "forbidden" and has_base:
        raise MocoError(f"merge: {method} takes no base_model")
    if inputs is None:
        return
    contract = spec.contract
    total = inputs + int(has_base and policy != "ignored")
    low, high = contract.min_inputs, contract.max_inputs
    if total < low or (high is not None and total > high):
        wanted = f"{low}..{high}" if high is not None else f"at least {low}"
        raise MocoError(f"merge: {method} merges {wanted} models (base included), got {total}")
    low, high = contract.min_non_base, contract.max_non_base
    if (low is not None and inputs < low) or (high is not None and inputs > high):
        wanted = f"{low or 0}..{high}" if high is not None else f"at least {low}"
        raise MocoError(f"merge: {method} merges {wanted} models besides the base, got {inputs}")


def _reference(path: str) -> dict[str, Any]:
    """A mergekit model reference built field by field: mergekit would read "+" and "@" in a string path."""
    return {"model": {"path": resolve_model_path(path)}}


def merge_configuration(job: MergeJob) -> Any:
    """The mergekit ``MergeConfiguration`` for ``job``.

    A parameter the merge method binds per input (``density``, ``weight``) may be given as a
    list with one value per model; any other value applies to every model (mergekit falls back
    from per-model to global parameters).  Unknown parameter names are refused here because
    mergekit silently ignores them.
    """
    from mergekit.config import MergeConfiguration
    from mergekit.merge_methods import get as get_merge_method

    if not job.models:
        raise MocoError("merge: no models to merge")
    try:
        spec = get_merge_method(job.method).spec
    except RuntimeError:
        raise MocoError(
            f"merge: mergekit has no merge method {job.method!r} (known: {', '.join(merge_method_names())})"
        ) from None
    known = {p.name for p in spec.parameters}
    per_input = {p.name for p in spec.input_parameters}
    if "weight" in known:
        per_model: list[dict[str, Any]] = [{"weight": w} for w in _weights(job)]
    elif job.weights is not None:
        raise MocoError(f"merge: {job.method} takes no per-model weights")
    else:
        per_model = [{} for _ in job.models]
    shared: dict[str, Any] = {}
    for name, value in job.parameters.items():
        if name in OPTION_PARAMETERS:
            continue
        if name not in known:
            raise MocoError(f"merge: {job.method} has no parameter {name!r} (known: {', '.join(sorted(known))})")
        if name in per_input and isinstance(value, list | tuple) and len(value) == len(job.models):
            for entry, item in zip(per_model, value, strict=True):
                entry[name] = item
        else:
            shared[name] = value
    return MergeConfiguration.model_validate(
        {
            "merge_method": job.method,
            "base_model": _reference(job.base_model) if job.base_model else None,
            "models": [
                {"model": _reference(path), "parameters": params or None}
                for path, params in zip(job.models, per_model, strict=True)
            ],
            "parameters": shared or None,
            "dtype": COMPUTE_DTYPE,
            "out_dtype": job.dtype,
        }
    )


def _prepare_target(target: Path, inputs: list[str]) -> None:
    """Clear a stale merge (other recipe) at ``target``, but never an input or a folder a merge did not write."""
    if str(target) in inputs:
        raise MocoError(f"merge: output folder {target} is one of the merge's inputs")
    refusal = f"merge: {target} exists and was not written by a moco merge; refusing to overwrite it"
    clear_stale_output(target, "merge", refusal)


def run_mergekit(job: MergeJob) -> str:
    """Merge ``job`` with mergekit on CPU and return the output folder.

    A folder already holding this recipe is returned as it is.  The merge is written to a
    sibling folder first and renamed into place, so an interrupted merge never looks complete
    and two processes merging the same recipe do not corrupt each other.
    """
    if not job.output_dir:
        raise MocoError("merge: output_dir is empty (use moco_core.merging.merge_output_dir for a cache folder)")
    recipe = merge_recipe(job)
    target = Path(job.output_dir).expanduser().resolve()
    if _complete(target, recipe):
        log.info("reusing merge %s", target)
        return str(target)
    config = merge_configuration(job)
    from mergekit.merge import MergeOptions, run_merge

    options = MergeOptions(
        device="cpu",
        copy_tokenizer=True,
        lazy_unpickle=False,
        random_seed=int(job.parameters.get("random_seed", 0)),
        quiet=True,
    )
    _prepare_target(target, [resolve_model_path(p) for p in [*job.models, job.base_model] if p])
    log.info("merging %d models (%s) into %s", len(job.models), job.method, target)
    with staged_folder(target, recipe, lambda folder: _complete(folder, recipe)) as partial:
        run_merge(config, str(partial), options=options)
    return str(target)
