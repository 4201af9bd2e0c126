"""The model pool: named members, shared loaded copies, LRU residency, placement, caching.

Methods ask the pool for whole batches per member ("every dev item for model A"), so the pool
loads each model once per round even when ``max_resident_models`` is smaller than the pool.
Members with the same path and backend share one loaded copy and differ only in system prompt.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from moco_core.cache import GenerationCache, cache_key
from moco_core.compute import ComputeCounter
from moco_core.config import HardwareConfig, ModelConfig
from moco_core.errors import MocoError
from moco_core.models import adapter_base, model_identity, resolve_model_path
from moco_core.types import Generation, GenerationRequest, GenerationSettings

log = logging.getLogger(__name__)

DECODING_VERSION = 3
"""Bumped whenever the way a generation is decoded changes, so older cache entries are not served."""
CHUNK_BATCHES = 8
"""Batches per backend call; finished chunks are cached at once, so an interrupted run keeps them."""


@dataclass
class LoadedModel:
    """A model in memory: ``handle`` is whatever its backend returned from ``load``."""

    path: str
    backend_key: str
    backend: Any
    handle: Any
    identity: dict[str, Any]
    batch_size: int


@dataclass
class GenerationStats:
    made: int = 0
    cached: int = 0


@dataclass
class _Member:
    config: ModelConfig
    resolved_path: str | None = None
    identity: dict[str, Any] | None = None
    swap: Callable[[LoadedModel], None] | None = None
    """Set for an in-memory member: puts its current weights into its own loaded copy."""


def generation_progress(name: str, total: int, chunk: int) -> Any:
    """A progress bar for generation calls longer than one chunk, shown only on a terminal."""
    import sys

    from tqdm import tqdm

    return tqdm(
        total=total, desc=f"generate {name}", unit="gen", leave=False, disable=total <= chunk or not sys.stderr.isatty()
    )


def resolve_dtype(dtype: str, device: str) -> str:
    if dtype != "auto":
        return dtype
    if device.startswith("cuda"):
        import torch

        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "float32"


class ModelPool:
    """The models of a run, addressed by name; generation goes through the cache and hooks.

    ``compute`` counts every member's generated tokens (new and cached apart) and, through the
    meter a backend attaches to a loaded model, its forward passes (:mod:`moco_core.compute`).
    """

    def __init__(
        self,
        models: Sequence[ModelConfig],
        hardware: HardwareConfig | None = None,
        batch_size: int = 16,
        cache: GenerationCache | None = None,
        backends: dict[str, Any] | None = None,
        hook: Any = None,
    ) -> None:
        self.hardware = hardware or HardwareConfig()
        self.batch_size = batch_size
        self.cache = cache or GenerationCache(enabled=False)
        self.stats = GenerationStats()
        self.compute = ComputeCounter()
        self._members: dict[str, _Member] = {m.name: _Member(m) for m in models}
        self._backend_specs = backends or {}
        self._backends: dict[str, Any] = {}
        self._resident: OrderedDict[tuple[str, str], LoadedModel] = OrderedDict()
        self._adapters: dict[tuple[str, str], tuple[tuple[str, str], LoadedModel]] = {}
        self._next_gpu = 0
        self._hook = hook

    @property
    def names(self) -> list[str]:
        return list(self._members)

    def __len__(self) -> int:
        return len(self._members)

    def config(self, name: str) -> ModelConfig:
        return self._member(name).config

    def description(self, name: str) -> str:
        return self._member(name).config.description or ""

    def add(self, model: ModelConfig) -> None:
        """Add a member mid-run (a merged or trained model); replaces one of the same name."""
        self._members[model.name] = _Member(model)

    def set_in_memory(self, model: ModelConfig, identity: dict[str, Any], swap: Callable[[LoadedModel], None]) -> None:
        """Add or update a member whose weights live in memory (a weight-search candidate).

        It gets its own loaded copy of ``model.path`` (never shared with a member of that path);
        before each uncached generation ``swap`` writes the current weights into that copy in
        place, and ``identity`` (the candidate's recipe) keys its generations in the cache.
        """
        member = _Member(model, identity={"backend": model.backend, **identity}, swap=swap)
        self._members[model.name] = member

    def _resident_key(self, name: str) -> tuple[str, str]:
        member = self._member(name)
        path = self.resolved_path(name)
        if member.config.backend_options:  # the same model name on two servers is two models
            path = f"{path}#{cache_key(options=member.config.backend_options)[:16]}"
        return (member.config.backend, f"{path}#{name}" if member.swap is not None else path)

    def remove(self, name: str) -> None:
        if name in self._members and self._members[name].swap is not None:
            self._evict(self._resident_key(name))
        for loaded in self._resident.values():
            meter = getattr(loaded.handle, "meter", None)
            if meter is not None:
                meter.unbind(name)
        member = self._members.pop(name, None)
        if member is not None and member.resolved_path is not None:
            self._adapters.pop((member.config.backend, member.resolved_path), None)
        if member is not None and member.swap is None and member.resolved_path is not None:
            key = (member.config.backend, member.resolved_path)
            if not any(m.resolved_path == member.resolved_path for m in self._members.values()):
                self._evict(key)

    def _member(self, name: str) -> _Member:
        try:
            return self._members[name]
        except KeyError:
            raise MocoError(f"pool has no model named {name!r} (members: {', '.join(self._members)})") from None

    def device(self) -> str:
        device = self.hardware.device
        if device != "auto":
            return device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def dtype(self) -> str:
        return resolve_dtype(self.hardware.dtype, self.device())

    def _local_paths(self, backend: str) -> bool:
        spec = self._backend_specs.get(backend)
        return spec is None or spec.local_paths

    def resolved_path(self, name: str) -> str:
        member = self._member(name)
        if member.resolved_path is None:
            path = member.config.path
            member.resolved_path = resolve_model_path(path) if self._local_paths(member.config.backend) else path
        return member.resolved_path

    def identity(self, name: str) -> dict[str, Any]:
        member = self._member(name)
        if member.identity is None:
            path = self.resolved_path(name)
            if self._local_paths(member.config.backend):
                identity = model_identity(path, self.dtype())
                if identity.get("revision") == "unresolved":
                    self.load(name)  # downloads the hub model, which pins its revision
                    identity = model_identity(path, self.dtype())
                base = self.base_path(name)
                if base is not None:
                    identity["base"] = model_identity(base, self.dtype())
            else:
                describe = getattr(self._backend(member.config.backend), "identity", None)
                identity = describe(path, member.config.backend_options) if describe else {"path": path}
            member.identity = {"backend": member.config.backend, **identity}
        return member.identity

    def _backend(self, key: str) -> Any:
        if key not in self._backends:
            spec = self._backend_specs.get(key)
            if spec is None:
                raise MocoError(f"no generation backend {key!r} is registered")
            self._backends[key] = spec.load()()
        return self._backends[key]

    def _placement(self, path: str) -> tuple[str, str | None]:
        device = self.device()
        if device != "cuda":
            return device, None
        import torch

        count = torch.cuda.device_count()
        gpu = self._next_gpu % count
        self._next_gpu += 1
        from pathlib import Path

        folder = Path(path)
        size = sum(p.stat().st_size for p in folder.glob("*.safetensors")) if folder.is_dir() else 0
        free, _ = torch.cuda.mem_get_info(gpu)
        if size and size > 0.8 * free:
            return device, "auto"
        return f"cuda:{gpu}", None

    def base_path(self, name: str) -> str | None:
        """The resolved base model of an adapter member; None for a full model."""
        member = self._member(name)
        if member.swap is not None or not self._local_paths(member.config.backend):
            return None
        base = adapter_base(self.resolved_path(name), member.config.base)
        return resolve_model_path(base) if base else None

    def load(self, name: str) -> LoadedModel:
        """The member's model, loaded once and kept (least recently used evicted at the cap).

        An adapter member is a view of its base, loaded once for every adapter over it.
        """
        base = self.base_path(name)
        if base is not None:
            loaded = self._load_adapter(name, base)
        else:
            loaded = self._load_resident(name, self._resident_key(name), self.resolved_path(name))
        meter = getattr(loaded.handle, "meter", None)
        if meter is not None:  # the backend counts forward calls: name them after this member
            meter.bind(self.compute, name, getattr(loaded.handle, "adapter", None))
        return loaded

    def _load_adapter(self, name: str, base: str) -> LoadedModel:
        member = self._member(name)
        path = self.resolved_path(name)
        key = (member.config.backend, path)
        base_key = (member.config.backend, base)
        loaded = self._load_resident(name, base_key, base)
        if key in self._adapters and self._adapters[key][0] == base_key:
            return self._adapters[key][1]
        if not hasattr(loaded.backend, "load_adapter"):
            raise MocoError(f"models.{name}.path: backend {member.config.backend!r} cannot load adapters")
        log.info("loading adapter %s (%s) over %s", name, path, base)
        adapter_name = "adapter_" + cache_key(adapter=self.identity(name))[:12]  # a retrained folder loads anew
        handle = loaded.backend.load_adapter(loaded.handle, path, adapter_name)
        view = LoadedModel(path, member.config.backend, loaded.backend, handle, self.identity(name), self.batch_size)
        self._adapters[key] = (base_key, view)
        return view

    def _load_resident(self, name: str, key: tuple[str, str], path: str) -> LoadedModel:
        member = self._member(name)
        if key in self._resident:
            self._resident.move_to_end(key)
            return self._resident[key]
        limit = self.hardware.max_resident_models
        while limit is not None and len(self._resident) >= limit:
            self._evict(next(iter(self._resident)))
        backend = self._backend(member.config.backend)
        device, device_map = self._placement(path)
        log.info("loading %s (%s) on %s", name, path, device_map or device)
        try:
            options = {"options": member.config.backend_options} if member.config.backend_options else {}
            handle = backend.load(path, device, self.dtype(), device_map, **options)
        except (OSError, ValueError, KeyError) as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MocoError(f"models.{name}.path: cannot load {member.config.path}: {detail}") from None
        loaded = LoadedModel(path, member.config.backend, backend, handle, {}, self.batch_size)
        self._resident[key] = loaded
        if path == self.resolved_path(name):
            loaded.identity = self.identity(name)
        else:  # the base of an adapter member
            loaded.identity = {"backend": member.config.backend, **model_identity(path, self.dtype())}
        return loaded

    def _evict(self, key: tuple[str, str]) -> None:
        loaded = self._resident.pop(key, None)
        for adapter_key in [k for k, (base_key, _) in self._adapters.items() if base_key == key]:
            del self._adapters[adapter_key]
        if loaded is not None:
            log.info("unloading %s", loaded.path)
            loaded.backend.unload(loaded.handle)

    def resident(self) -> list[str]:
        return [path for _, path in self._resident]

    def close(self) -> None:
        for key in list(self._resident):
            self._evict(key)

    def stream(self, name: str) -> str:
        """Member ``name``'s random stream: part of every row seed of its generations.

        It comes from the model's identity, so pool members draw independent samples.
        """
        return cache_key(stream=self.identity(name))[:16]

    def request(self, name: str, prompt: str, sample: int = 0) -> GenerationRequest:
        """The request ``generate`` makes of a plain prompt for member ``name``.

        Joint decoders seed rows by ``row_seed`` of it, so a decode anchored on a member draws
        exactly what that member's own sampling draws (one seeding rule for both).
        """
        member = self._member(name)
        return GenerationRequest(prompt, member.config.system_prompt, sample, False, self.stream(name))

    def generate(
        self,
        name: str,
        prompts: Sequence[str | GenerationRequest],
        settings: GenerationSettings,
        logprobs: bool = False,
    ) -> list[Generation]:
        """One generation per prompt from member ``name``: cached ones read, the rest batched."""
        member = self._member(name)
        identity = self.identity(name)
        stream = self.stream(name)
        requests = [
            replace(p, stream=stream)
            if isinstance(p, GenerationRequest)
            else GenerationRequest(p, member.config.system_prompt, 0, logprobs, stream)
            for p in prompts
        ]
        keys = [
            cache_key(
                kind="generation",
                decoding=DECODING_VERSION,
                model=identity,
                system_prompt=r.system_prompt,
                prompt=r.prompt,
                settings=settings.cache_fields(),
                sample=r.sample,
                logprobs=r.logprobs,
            )
            for r in requests
        ]
        found = self.cache.get_many(list(dict.fromkeys(keys)))
        results: list[Generation | None] = [
            Generation.from_json(found[k], cached=True) if k in found else None for k in keys
        ]
        missing = [i for i, r in enumerate(results) if r is None]
        unique_missing = list({keys[i]: i for i in missing}.values())
        if unique_missing:
            loaded = self.load(name)
            if member.swap is not None:
                member.swap(loaded)
            by_key: dict[str, Generation] = {}
            chunk = self.batch_size * CHUNK_BATCHES
            bar = generation_progress(name, len(unique_missing), chunk)
            for start in range(0, len(unique_missing), chunk):
                rows = unique_missing[start : start + chunk]
                with self.compute.serving(name):
                    fresh = self._hook.moco_generate(
                        model=loaded, requests=[requests[i] for i in rows], settings=settings
                    )
                if fresh is None or len(fresh) != len(rows):
                    raise MocoError(f"backend {member.config.backend!r} returned no generations for {name}")
                self.compute.generated(name, fresh)
                made = {keys[i]: g for i, g in zip(rows, fresh, strict=True)}
                self.cache.put_many({k: g.to_json() for k, g in made.items()})
                by_key.update(made)
                self.stats.made += len(rows)
                bar.update(len(rows))
            bar.close()
            results = [r if r is not None else by_key[k] for r, k in zip(results, keys, strict=True)]
        self.stats.cached += len(requests) - len(unique_missing)
        fresh_rows = set(unique_missing)
        self.compute.cached(name, [r for i, r in enumerate(results) if i not in fresh_rows and r is not None])
        return [r for r in results if r is not None]

    def samples(
        self, name: str, prompts: Sequence[str], settings: GenerationSettings, n: int
    ) -> list[list[Generation]]:
        """``n`` independent samples per prompt, generated in one batched call."""
        system = self._member(name).config.system_prompt
        requests = [GenerationRequest(p, system, s) for p in prompts for s in range(n)]
        flat = self.generate(name, requests, settings)
        return [flat[i * n : (i + 1) * n] for i in range(len(prompts))]
