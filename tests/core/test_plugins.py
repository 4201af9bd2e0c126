from __future__ import annotations

import sys
import types
from importlib.metadata import EntryPoint

import pytest

from moco_core import plugins
from moco_core.errors import MocoError
from moco_core.hookspecs import hookimpl
from moco_core.registry import MethodSpec
from moco_core.testing import registered_plugin


class FakePlugin:
    @hookimpl
    def moco_register_methods(self, register):
        register(MethodSpec(key="fake_method", level="text", implementation="x:Y", summary="a fake"))


def test_registered_plugin_is_seen_then_removed():
    with registered_plugin(FakePlugin(), name="fake") as registry:
        assert registry.methods["fake_method"].summary == "a fake"
    assert "fake_method" not in plugins.get_registry().methods


def test_registration_error_is_kept_not_raised():
    class Broken:
        @hookimpl
        def moco_register_methods(self, register):
            register("not a spec")

    with registered_plugin(Broken(), name="broken") as registry:
        assert "broken" in registry.errors
        assert "expected MethodSpec" in registry.errors["broken"]


@pytest.fixture()
def broken_entry_point(monkeypatch):
    good = types.ModuleType("moco_good_plugin")

    @hookimpl
    def moco_register_methods(register):
        register(MethodSpec(key="good_one", level="text", implementation="x:Y", summary="ok"))

    good.moco_register_methods = moco_register_methods
    monkeypatch.setitem(sys.modules, "moco_good_plugin", good)
    points = [
        EntryPoint(name="bad", value="moco_missing_module_xyz", group="moco"),
        EntryPoint(name="good", value="moco_good_plugin", group="moco"),
    ]
    monkeypatch.setattr(plugins, "entry_points", lambda group: points)
    plugins.reset()
    yield
    plugins.reset()


def test_broken_entry_point_fails_alone(broken_entry_point):
    registry = plugins.get_registry()
    assert "good_one" in registry.methods
    assert "ModuleNotFoundError" in registry.errors["bad"]
    assert any(info.name == "bad" and info.error for info in plugins.plugin_infos())


def test_strict_mode_makes_failure_fatal(broken_entry_point, monkeypatch):
    monkeypatch.setenv("MOCO_STRICT_PLUGINS", "1")
    plugins.reset()
    with pytest.raises(MocoError, match="plugin bad"):
        plugins.get_plugin_manager()


def test_load_plugins_restricts(broken_entry_point, monkeypatch):
    monkeypatch.setenv("MOCO_LOAD_PLUGINS", "good")
    plugins.reset()
    registry = plugins.get_registry()
    assert "good_one" in registry.methods and "bad" not in registry.errors
    assert "hf" in registry.backends
