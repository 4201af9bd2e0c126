"""The one plugin manager: entry points of group ``moco`` loaded one at a time.

Built-in families are found exactly like a third-party plugin.  A plugin that fails to import
or to register is recorded with its error and everything else keeps working, unless
``MOCO_STRICT_PLUGINS=1``.  ``MOCO_LOAD_PLUGINS=a,b`` restricts which entry points load.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib.metadata import entry_points, version
from typing import Any

import pluggy

from moco_core import hookspecs
from moco_core.errors import MocoError
from moco_core.registry import BackendSpec, DatasetSpec, MethodSpec, Registry, ScorerSpec

ENTRY_POINT_GROUP = "moco"
CORE_PLUGIN = "moco_core.defaults"


@dataclass
class PluginInfo:
    """One loaded (or failed) plugin: its entry-point name, distribution and hooks."""

    name: str
    distribution: str
    version: str
    hooks: list[str] = field(default_factory=list)
    error: str | None = None


_manager: pluggy.PluginManager | None = None
_plugins: dict[str, PluginInfo] = {}
_registry: Registry | None = None


def _strict() -> bool:
    return os.environ.get("MOCO_STRICT_PLUGINS", "") not in ("", "0", "false")


def _record_failure(info: PluginInfo, error: str) -> None:
    info.error = error
    if _strict():
        raise MocoError(f"plugin {info.name} ({info.distribution}) failed: {error}")


def get_plugin_manager() -> pluggy.PluginManager:
    """Build the plugin manager once; later calls return the same one."""
    global _manager
    if _manager is not None:
        return _manager
    pm = pluggy.PluginManager("moco")
    pm.add_hookspecs(hookspecs)
    from moco_core import defaults

    pm.register(defaults, name=CORE_PLUGIN)
    _plugins[CORE_PLUGIN] = PluginInfo(CORE_PLUGIN, "moco-core", version("moco-core"))
    allowed = os.environ.get("MOCO_LOAD_PLUGINS")
    allowed_names = {n.strip() for n in allowed.split(",")} if allowed is not None else None
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if allowed_names is not None and ep.name not in allowed_names:
            continue
        dist = ep.dist.name if ep.dist else "?"
        info = PluginInfo(ep.name, dist, ep.dist.version if ep.dist else "?")
        _plugins[ep.name] = info
        try:
            module = ep.load()
            pm.register(module, name=ep.name)
        except Exception as exc:  # a broken plugin fails alone
            _record_failure(info, f"{type(exc).__name__}: {exc}")
    _manager = pm
    for name, info in _plugins.items():
        plugin = pm.get_plugin(name)
        if plugin is not None:
            info.hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
    return pm


def plugin_infos() -> list[PluginInfo]:
    get_plugin_manager()
    return list(_plugins.values())


def _collect(registry: Registry, hook_name: str, kind: type, target: dict[str, Any], key_attr: str) -> None:
    pm = get_plugin_manager()
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        info = _plugins.get(impl.plugin_name)
        distribution = info.distribution if info else impl.plugin_name

        def register(spec: Any, _dist: str = distribution) -> None:
            if not isinstance(spec, kind):
                raise TypeError(f"{hook_name} registered {type(spec).__name__}, expected {kind.__name__}")
            spec.distribution = spec.distribution or _dist
            key = getattr(spec, key_attr)
            if key in target and target[key].distribution != spec.distribution:
                raise ValueError(f"{key!r} is already registered by {target[key].distribution}")
            target[key] = spec

        try:
            impl.function(register=register)
        except Exception as exc:
            message = f"{hook_name}: {type(exc).__name__}: {exc}"
            registry.errors[impl.plugin_name] = message
            if info is not None:
                _record_failure(info, message)
            elif _strict():
                raise MocoError(f"plugin {impl.plugin_name} failed: {message}") from exc


def get_registry() -> Registry:
    """Everything registered by the loaded plugins (built once, reset by ``reset``)."""
    global _registry
    if _registry is None:
        registry = Registry()
        _collect(registry, "moco_register_methods", MethodSpec, registry.methods, "key")
        _collect(registry, "moco_register_datasets", DatasetSpec, registry.datasets, "key")
        _collect(registry, "moco_register_scorers", ScorerSpec, registry.scorers, "task_type")
        _collect(registry, "moco_register_backends", BackendSpec, registry.backends, "key")
        for name, info in _plugins.items():
            if info.error:
                registry.errors.setdefault(name, info.error)
        _registry = registry
    return _registry


def reset() -> None:
    """Forget the manager and registry so the next call reloads (tests, long sessions)."""
    global _manager, _registry
    _manager = None
    _registry = None
    _plugins.clear()


def refresh_registry() -> Registry:
    """Rebuild the registry from the current manager (after ``register``/``unregister``)."""
    global _registry
    _registry = None
    return get_registry()
