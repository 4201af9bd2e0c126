from __future__ import annotations

from moco_core.cache import GenerationCache, cache_key


def test_roundtrip_and_persistence(tmp_path):
    path = tmp_path / "c.sqlite"
    cache = GenerationCache(path)
    cache.put_many({"k1": {"text": "a"}, "k2": {"text": "b"}})
    cache.close()
    reopened = GenerationCache(path)
    assert reopened.get_many(["k1", "k2", "k3"]) == {"k1": {"text": "a"}, "k2": {"text": "b"}}


def test_disabled_cache_never_hits(tmp_path):
    cache = GenerationCache(tmp_path / "c.sqlite", enabled=False)
    cache.put_many({"k": {"text": "a"}})
    assert cache.get_many(["k"]) == {}


def test_key_depends_on_every_field():
    base = {"model": {"path": "/m", "files": [["w", 1, 2]]}, "prompt": "p", "sample": 0}
    assert cache_key(**base) == cache_key(**dict(reversed(list(base.items()))))
    assert cache_key(**base) != cache_key(**{**base, "sample": 1})
    assert cache_key(**base) != cache_key(**{**base, "model": {"path": "/m", "files": [["w", 1, 3]]}})


def test_default_location_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("MOCO_CACHE_DIR", str(tmp_path / "x"))
    assert GenerationCache().path == tmp_path / "x" / "generations.sqlite"
