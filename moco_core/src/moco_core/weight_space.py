"""Weight-space search in memory: candidates built from state dicts and swapped into one model.

Searches (model swarms, ExPO's alpha, DARE-TIES weights, LoraHub) score many candidate models
on dev.  Writing each candidate as a folder and loading it again costs seconds per candidate, so
a search here keeps the inputs' tensors on the CPU (``LinearSpace``: n state dicts as the rows of
one matrix; ``LoraSpace``: one flat base plus n adapters' small factors) and builds each
candidate straight into a single resident model whose weights are views of one flat tensor
(``CandidateSlot``, ``ResidentWeights``): a linear candidate is one matrix-vector product, with
no per-tensor Python loop, no state dict copy and no ``load_state_dict``.  That model is a pool
member whose cache identity is the candidate's recipe, so its dev answers come from the pool's
batched, cached generation like any other member's.  Only the final model is written, as a
folder whose ``moco_identity.json`` is its recipe: the same identity the candidate had in memory,
so its cached answers carry over.

Peak memory of a search over n models: n input state dicts (or base + adapters) and the resident
model, plus one CPU buffer when the resident model is not float32 on the CPU (the candidate is
built there, then cast or sent to the device in one copy) and while the final model is written.
Requirements (same tensor names and shapes, adapters over one base) are read from safetensors
headers and adapter configs, before anything loads.
"""

from __future__ import annotations

import json
import math
import shutil
import struct
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moco_core.artifacts import staged_folder
from moco_core.cache import cache_key
from moco_core.config import ModelConfig
from moco_core.errors import MocoError
from moco_core.merging import merge_output_dir
from moco_core.models import (
    ADAPTER_CONFIG,
    ALIASES,
    IDENTITY_FILE,
    adapter_base,
    check_model_path,
    is_adapter_folder,
    is_local_path,
    model_identity,
    resolve_model_path,
)

ADAPTER_WEIGHTS = "adapter_model.safetensors"
WEIGHT_FILES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


def safetensors_shapes(folder: str | Path) -> dict[str, list[int]] | None:
    """Tensor name -> shape of every ``*.safetensors`` file in ``folder``, read from the headers only.

    None when the folder has no safetensors weights (a hub id, a .bin checkpoint): nothing to compare.
    """
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        return None
    shapes: dict[str, list[int]] = {}
    for file in files:
        with file.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
        shapes.update({k: v["shape"] for k, v in header.items() if k != "__metadata__"})
    return shapes


def check_same_shapes(models: Sequence[tuple[str, str]]) -> None:
    """Refuse models whose tensors differ (one line naming the first such tensor and both models).

    ``models`` are (label, path) pairs; paths that are not local folders with safetensors weights
    are skipped, since checking them would mean downloading or loading them.
    """
    reference: tuple[str, dict[str, list[int]]] | None = None
    for label, path in models:
        if path in ALIASES or not is_local_path(path) or not Path(path).expanduser().is_dir():
            continue
        shapes = safetensors_shapes(Path(path).expanduser())
        if shapes is None:
            continue
        if reference is None:
            reference = (label, shapes)
            continue
        first_label, first = reference
        for name in sorted(set(first) | set(shapes)):
            if name not in shapes:
                raise MocoError(f"{label}: has no tensor {name!r}, which {first_label} has; weights must match")
            if name not in first:
                raise MocoError(f"{label}: tensor {name!r} is not in {first_label}; weights must match")
            if first[name] != shapes[name]:
                raise MocoError(
                    f"{label}: tensor {name!r} has shape {shapes[name]} but {first[name]} in {first_label}; "
                    "weights must match"
                )


def check_lora_pool(adapters: Sequence[tuple[str, str, str | None]], base: str | None) -> str:
    """Every member is a LoRA adapter over one base; returns that base.

    ``adapters`` are (label, path, configured base or None); ``base`` overrides what they name.
    """
    if base is not None:
        try:
            check_model_path(base)
        except MocoError as exc:
            raise MocoError(f"params.base_model: {exc}") from None
    bases = set()
    for label, path, explicit in adapters:
        if not is_adapter_folder(path):
            raise MocoError(f"{label}: {path} is not a LoRA adapter folder (no {ADAPTER_CONFIG})")
        config = json.loads((Path(path).expanduser() / ADAPTER_CONFIG).read_text(encoding="utf-8"))
        if config.get("peft_type", "LORA") != "LORA":
            raise MocoError(f"{label}: {path} is a {config.get('peft_type')} adapter, not LoRA")
        if config.get("rank_pattern") or config.get("alpha_pattern"):
            raise MocoError(f"{label}: {path} uses per-layer rank or alpha patterns, which are not supported")
        bases.add(base or adapter_base(path, explicit))
    if len(bases) != 1:
        raise MocoError(f"models: the adapters are over different bases ({', '.join(sorted(map(str, bases)))})")
    return str(next(iter(bases)))


def _torch_dtype(dtype: str) -> Any:
    import torch

    return getattr(torch, dtype)


def _weight_files(path: str) -> list[Path]:
    files = sorted(Path(resolve_model_path(path)).glob("*.safetensors"))
    if not files:
        raise MocoError(f"{path}: weight search reads safetensors weights, and this folder has none")
    return files


def load_weights(path: str) -> dict[str, Any]:
    """A model folder's tensors as one float32 CPU state dict (safetensors files only)."""
    import torch
    from safetensors.torch import load_file

    weights: dict[str, Any] = {}
    for file in _weight_files(path):
        weights.update({k: v.to(torch.float32) for k, v in load_file(str(file)).items()})
    return weights


def weight_shapes(path: str) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of a model folder's safetensors weights, in file order."""
    shapes = safetensors_shapes(resolve_model_path(path))
    if shapes is None:
        raise MocoError(f"{path}: weight search reads safetensors weights, and this folder has none")
    return {name: tuple(shape) for name, shape in shapes.items()}


def flat_views(flat: Any, shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """A state dict whose tensors are consecutive views of one flat tensor, in ``shapes`` order."""
    views: dict[str, Any] = {}
    offset = 0
    for name, shape in shapes.items():
        count = math.prod(shape)
        views[name] = flat[offset : offset + count].view(shape)
        offset += count
    return views


def read_into(path: str, views: dict[str, Any]) -> None:
    """Copy a model folder's tensors into ``views`` one tensor at a time (no second state dict in memory)."""
    from safetensors import safe_open

    missing = set(views)
    for file in _weight_files(path):
        with safe_open(str(file), framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                if name not in views:
                    continue
                tensor = handle.get_tensor(name)
                if tuple(tensor.shape) != tuple(views[name].shape):
                    raise MocoError(
                        f"{path}: tensor {name!r} has shape {list(tensor.shape)}, expected {list(views[name].shape)}"
                    )
                views[name].copy_(tensor)
                missing.discard(name)
    if missing:
        raise MocoError(f"{path}: has no tensor {sorted(missing)[0]!r}; weights must match")


class FlatSpace:
    """A space whose candidates are built into one flat float32 vector laid out by ``shapes``.

    ``materialize_flat(vector, out)`` writes a candidate into ``out`` (a flat float32 CPU tensor,
    such as the resident model's own weights) or, without ``out``, into the space's one buffer,
    allocated on first use; ``materialize`` gives that buffer as a state dict of views.
    """

    shapes: dict[str, tuple[int, ...]]
    numel: int
    _flat: Any = None
    _views: dict[str, Any] | None = None

    def _buffer(self) -> Any:
        import torch

        if self._flat is None:
            self._flat = torch.empty(self.numel)
            self._views = flat_views(self._flat, self.shapes)
        return self._flat

    def materialize_flat(self, vector: Sequence[float], out: Any = None) -> Any:
        raise NotImplementedError

    def materialize(self, vector: Sequence[float]) -> dict[str, Any]:
        """The candidate's tensors, written into the one buffer (valid until the next call)."""
        self.materialize_flat(vector, self._buffer())
        return self._views or {}


class LinearSpace(FlatSpace):
    """Candidates ``Σ c_i θ_i`` over n full models; a candidate is its coefficient vector.

    The inputs are kept as the rows of one (n, parameters) matrix, read in tensor by tensor, so a
    candidate is a single matrix-vector product written straight into its destination.
    """

    kind = "linear"

    def __init__(self, paths: Sequence[str], dtype: str) -> None:
        import torch

        self.paths = [resolve_model_path(p) for p in paths]
        self.template = self.paths[0]
        self.inputs = [model_identity(p, dtype) for p in self.paths]
        self.shapes = weight_shapes(self.paths[0])
        self.numel = sum(math.prod(shape) for shape in self.shapes.values())
        self.matrix = torch.empty(len(self.paths), self.numel)
        for row, path in enumerate(self.paths):
            read_into(path, flat_views(self.matrix[row], self.shapes))

    def materialize_flat(self, vector: Sequence[float], out: Any = None) -> Any:
        import torch

        if len(vector) != len(self.paths):
            raise ValueError(f"expected {len(self.paths)} coefficients, got {len(vector)}")
        coefficients = torch.tensor([float(c) for c in vector], dtype=self.matrix.dtype)
        out = self._buffer() if out is None else out
        torch.mv(self.matrix.t(), coefficients, out=out)
        return out


@dataclass
class LoraFactors:
    """One adapter: per adapted weight, (A, scaling·B), so the update of that weight is B @ A."""

    path: str
    factors: dict[str, tuple[Any, Any]]


def read_adapter(path: str) -> LoraFactors:
    """A PEFT LoRA adapter's factors keyed by the base weight they update."""
    import torch
    from safetensors.torch import load_file

    folder = Path(path).expanduser()
    config = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    rank, alpha = config["r"], config.get("lora_alpha", config["r"])
    scaling = alpha / rank**0.5 if config.get("use_rslora") else alpha / rank
    tensors = load_file(str(folder / ADAPTER_WEIGHTS))
    pairs: dict[str, dict[str, Any]] = {}
    for key, value in tensors.items():
        module = key.removeprefix("base_model.model.")
        for part in ("A", "B"):
            suffix = f".lora_{part}.weight"
            if module.endswith(suffix):
                pairs.setdefault(module.removesuffix(suffix) + ".weight", {})[part] = value.to(torch.float32)
                break
        else:
            raise MocoError(f"{path}: adapter tensor {key!r} is not a LoRA A/B matrix (only LoRA on linear layers)")
    if config.get("fan_in_fan_out"):
        raise MocoError(f"{path}: fan_in_fan_out adapters are not supported")
    return LoraFactors(str(folder), {k: (v["A"], v["B"] * scaling) for k, v in pairs.items()})


class LoraSpace(FlatSpace):
    """Candidates ``base + (Σ w_i B_i)(Σ w_i A_i)`` over n LoRA adapters of one base.

    A and B are combined linearly (LoraHub's composition; model swarms' LoRA path moves the same
    factors), and the composed update is added to the base weights: one copy of the flat base,
    then one product per adapted weight.
    """

    kind = "lora"

    def __init__(self, adapters: Sequence[str], base: str, dtype: str) -> None:
        import torch

        self.template = resolve_model_path(base)
        self.inputs = [model_identity(str(Path(p).expanduser().resolve()), dtype) for p in adapters]
        self.base_identity = model_identity(self.template, dtype)
        self.shapes = weight_shapes(self.template)
        self.numel = sum(math.prod(shape) for shape in self.shapes.values())
        self.base_flat = torch.empty(self.numel)
        self.base = flat_views(self.base_flat, self.shapes)
        read_into(self.template, self.base)
        self.adapters = [read_adapter(p) for p in adapters]
        for adapter in self.adapters:
            for name, (a, b) in adapter.factors.items():
                if name not in self.base or tuple(self.base[name].shape) != (b.shape[0], a.shape[1]):
                    raise MocoError(
                        f"{adapter.path}: adapts {name!r}, which the base {base} lacks or shapes differently"
                    )
        self.targets = sorted({name for adapter in self.adapters for name in adapter.factors})

    def compose(self, vector: Sequence[float]) -> dict[str, tuple[Any, Any]]:
        """The composed factors (A, B) per adapted weight; a weight an adapter leaves alone counts as 0."""
        import torch

        weights = [float(w) for w in vector]
        if len(weights) != len(self.adapters):
            raise ValueError(f"expected {len(self.adapters)} weights, got {len(weights)}")
        composed = {}
        for name in self.targets:
            parts = [(w, ad.factors[name]) for w, ad in zip(weights, self.adapters, strict=True) if name in ad.factors]
            rank = max(a.shape[0] for _, (a, _) in parts)
            a_sum = torch.zeros(rank, parts[0][1][0].shape[1])
            b_sum = torch.zeros(parts[0][1][1].shape[0], rank)
            for w, (a, b) in parts:
                a_sum[: a.shape[0]] += w * a
                b_sum[:, : b.shape[1]] += w * b
            composed[name] = (a_sum, b_sum)
        return composed

    def materialize_flat(self, vector: Sequence[float], out: Any = None) -> Any:
        import torch

        out = self._buffer() if out is None else out
        composed = self.compose(vector)
        offsets = self._offsets()
        with torch.no_grad():
            out.copy_(self.base_flat)
            for name, (a, b) in composed.items():
                start, shape = offsets[name]
                out[start : start + math.prod(shape)].view(shape).add_(b @ a)
        return out

    def _offsets(self) -> dict[str, tuple[int, tuple[int, ...]]]:
        offsets, offset = {}, 0
        for name, shape in self.shapes.items():
            offsets[name] = (offset, shape)
            offset += math.prod(shape)
        return offsets


class MergekitSpace(FlatSpace):
    """Candidates of one mergekit method over n models and a base, one weight per model.

    The merge runs in memory (mergekit's ``merge_state_dicts``) with torch's random stream
    seeded per candidate, so a random method (DARE) gives the same tensors for the same recipe.
    """

    kind = "mergekit"

    def __init__(
        self, paths: Sequence[str], base: str, method: str, parameters: dict[str, Any], dtype: str, seed: int = 0
    ) -> None:
        self.template = resolve_model_path(base)
        self.inputs = [model_identity(resolve_model_path(p), dtype) for p in paths]
        self.base_identity = model_identity(self.template, dtype)
        self.method = method
        self.parameters = dict(parameters)
        self.seed = seed
        self.base = load_weights(self.template)
        self.shapes = {name: tuple(t.shape) for name, t in self.base.items()}
        self.numel = sum(t.numel() for t in self.base.values())
        self.models = [load_weights(p) for p in paths]
        self.kind = f"mergekit:{method}"

    def merge(self, vector: Sequence[float]) -> dict[str, Any]:
        """The candidate as mergekit returns it (a state dict of its own tensors)."""
        import torch
        from mergekit.merge_methods import merge_state_dicts

        weights = [float(w) for w in vector]
        if len(weights) != len(self.models):
            raise ValueError(f"expected {len(self.models)} weights, got {len(weights)}")
        inputs: dict[Any, Any] = {"base": self.base, **dict(enumerate(self.models))}
        per_input = {k: dict(enumerate([v] * len(weights))) for k, v in self.parameters.items()}
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(self.seed)
            return merge_state_dicts(
                inputs,
                self.method,
                parameters={**per_input, "weight": dict(enumerate(weights))},
                base="base",
                dtype=torch.float32,
            )

    def materialize_flat(self, vector: Sequence[float], out: Any = None) -> Any:
        out = self._buffer() if out is None else out
        result = self.merge(vector)
        for name, view in flat_views(out, self.shapes).items():
            view.copy_(result.pop(name))
        return out


class ResidentWeights:
    """A loaded model's weights re-pointed at one flat tensor, so a candidate loads with one copy.

    When the model's weights share one device and dtype, each parameter named in ``shapes``
    becomes a view of one flat tensor laid out like the space's candidates: a float32 CPU model
    is then written by the space directly, any other by a single ``copy_`` (a cast or a
    host-to-device transfer).  Otherwise each tensor is copied in place.  No ``load_state_dict``,
    no key matching per candidate.
    """

    def __init__(self, model: Any, shapes: dict[str, tuple[int, ...]], template: str) -> None:
        import torch

        tensors = model.state_dict(keep_vars=True)
        for name, shape in shapes.items():
            if name not in tensors:
                raise MocoError(f"weight search: tensor {name!r} is not in {template}")
            if tuple(tensors[name].shape) != shape:
                raise MocoError(f"weight search: tensor {name!r} has another shape in {template}")
        targets = [tensors[name] for name in shapes]
        self.flat: Any = None
        self.tensors: dict[str, Any] = {}
        if len({(t.dtype, t.device) for t in targets}) == 1:
            total = sum(math.prod(shape) for shape in shapes.values())
            self.flat = torch.empty(total, dtype=targets[0].dtype, device=targets[0].device)
            for target, view in zip(targets, flat_views(self.flat, shapes).values(), strict=True):
                target.data = view
        else:
            self.tensors = {name: tensors[name] for name in shapes}

    def load(self, space: FlatSpace, vector: Sequence[float]) -> None:
        import torch

        with torch.no_grad():
            if self.flat is not None and self.flat.dtype == torch.float32 and self.flat.device.type == "cpu":
                space.materialize_flat(vector, self.flat)
            elif self.flat is not None:
                self.flat.copy_(space.materialize_flat(vector))
            else:
                built = space.materialize(vector)
                for name, tensor in self.tensors.items():
                    tensor.copy_(built[name])


def candidate_recipe(space: Any, vector: Sequence[float], search: dict[str, Any]) -> dict[str, Any]:
    """What determines a candidate's weights (space, inputs, coefficients) plus how it was found."""
    recipe = {
        "kind": f"weight_search:{space.kind}",
        "inputs": space.inputs,
        "base": getattr(space, "base_identity", None),
        "weights": [round(float(w), 10) for w in vector],
        "parameters": getattr(space, "parameters", None),
        "search": search,
    }
    return json.loads(json.dumps(recipe))


class CandidateSlot:
    """One pool member through which every candidate of a search answers.

    ``point(vector)`` makes the member stand for that candidate (its cache identity becomes the
    candidate's recipe); the weights are built and copied into the member's own resident model
    only when the pool actually has to generate, and only when they changed.  That model's
    weights are re-pointed at one flat tensor the first time (``ResidentWeights``), so loading a
    candidate is one matrix-vector product into it (or one copy).
    """

    def __init__(self, pool: Any, name: str, space: Any, search: dict[str, Any], like: ModelConfig) -> None:
        self.pool = pool
        self.name = name
        self.space = space
        self.search = search
        self.like = like
        self.vector: list[float] = []
        self.recipe: dict[str, Any] = {}
        self._key = ""
        self._resident: weakref.WeakKeyDictionary[Any, tuple[ResidentWeights, str]] = weakref.WeakKeyDictionary()
        self.swaps = 0

    def point(self, vector: Sequence[float]) -> str:
        self.vector = [float(v) for v in vector]
        self.recipe = candidate_recipe(self.space, self.vector, self.search)
        self._key = cache_key(**self.recipe)
        config = ModelConfig(
            name=self.name, path=self.space.template, backend=self.like.backend, system_prompt=self.like.system_prompt
        )
        self.pool.set_in_memory(config, {"recipe": self.recipe, "dtype": self.pool.dtype()}, self._swap)
        return self.name

    def _swap(self, loaded: Any) -> None:
        from moco_core.backends.hf import HFModel

        if not isinstance(loaded.handle, HFModel):
            raise MocoError(f"models.{self.like.name}.backend: weight search needs the hf backend")
        model = loaded.handle.model
        entry = self._resident.get(model)
        if entry is not None and entry[1] == self._key:
            return
        weights = entry[0] if entry is not None else ResidentWeights(model, self.space.shapes, self.space.template)
        weights.load(self.space, self.vector)
        self._resident[model] = (weights, self._key)
        self.swaps += 1

    def release(self) -> None:
        self.pool.remove(self.name)


def _config_file(name: str) -> bool:
    """A template file the written model needs (config, tokenizer), not weights or another identity."""
    return not name.endswith((*WEIGHT_FILES, ".index.json")) and name not in (IDENTITY_FILE, ADAPTER_CONFIG)


def write_candidate(space: Any, weights: dict[str, Any], recipe: dict[str, Any], dtype: str) -> str:
    """Write the final candidate once, as a model folder keyed by its recipe, and return the folder.

    The folder holds the template's config and tokenizer, the weights in ``dtype`` and the recipe
    as ``moco_identity.json``; an existing folder with the same recipe is reused.
    """
    from safetensors.torch import save_file

    target = merge_output_dir(recipe)
    if _written(target, recipe):
        return str(target)
    with staged_folder(target, recipe, lambda folder: _written(folder, recipe), replace=True) as partial:
        partial.mkdir(parents=True)
        for file in Path(space.template).iterdir():
            if file.is_file() and _config_file(file.name):
                shutil.copy2(file, partial / file.name)
        torch_dtype = _torch_dtype(dtype)
        tensors = {k: v.detach().to(torch_dtype).contiguous() for k, v in weights.items()}
        save_file(tensors, str(partial / "model.safetensors"), metadata={"format": "pt"})
    return str(target)


def _written(folder: Path, recipe: dict[str, Any]) -> bool:
    identity = folder / IDENTITY_FILE
    return identity.is_file() and json.loads(identity.read_text(encoding="utf-8")) == recipe
