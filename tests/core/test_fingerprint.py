"""Model identity from content: copies, moves and touches keep it; changed bytes never do."""

from __future__ import annotations

import os
import shutil

from moco_core.cache import GenerationCache
from moco_core.config import HardwareConfig, ModelConfig
from moco_core.fingerprint import DigestMemo, folder_fingerprint
from moco_core.models import IDENTITY_SUFFIXES, model_identity
from moco_core.plugins import get_plugin_manager, get_registry
from moco_core.pool import ModelPool
from moco_core.types import GenerationSettings

SAMPLED = GenerationSettings(max_new_tokens=8, temperature=1.0, top_p=0.95, seed=5)
PROMPTS = [f"question number {i}" for i in range(4)]


def _folder(root, files):
    root.mkdir(parents=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    return root


def test_fingerprint_ignores_location_and_timestamps(tmp_path):
    memo = DigestMemo(tmp_path / "memo.sqlite")
    original = _folder(tmp_path / "a", {"model.safetensors": b"weights", "config.json": b"{}", "notes.md": b"x"})
    before = folder_fingerprint(original, IDENTITY_SUFFIXES, memo)
    copy = tmp_path / "elsewhere" / "b"
    shutil.copytree(original, copy)
    os.utime(copy / "model.safetensors", ns=(1, 1))
    assert folder_fingerprint(copy, IDENTITY_SUFFIXES, memo) == before
    (original / "notes.md").write_bytes(b"not a model file")
    assert folder_fingerprint(original, IDENTITY_SUFFIXES, memo) == before
    (original / "config.json").write_bytes(b"{ }")
    assert folder_fingerprint(original, IDENTITY_SUFFIXES, memo) != before


def test_same_size_overwrite_with_restored_mtime_is_noticed(tmp_path):
    memo = DigestMemo(tmp_path / "memo.sqlite")
    folder = _folder(tmp_path / "m", {"model.safetensors": b"AAAA", "config.json": b"{}"})
    weights = folder / "model.safetensors"
    stat = weights.stat()
    before = folder_fingerprint(folder, IDENTITY_SUFFIXES, memo)
    weights.write_bytes(b"BBBB")
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert weights.stat().st_size == stat.st_size and weights.stat().st_mtime_ns == stat.st_mtime_ns
    assert folder_fingerprint(folder, IDENTITY_SUFFIXES, memo) != before


def test_digests_are_memoised(tmp_path, monkeypatch):
    import moco_core.fingerprint as fingerprint

    memo = DigestMemo(tmp_path / "memo.sqlite")
    folder = _folder(tmp_path / "m", {"model.safetensors": b"weights", "config.json": b"{}"})
    first = folder_fingerprint(folder, IDENTITY_SUFFIXES, memo)
    hashed = []
    monkeypatch.setattr(fingerprint, "hash_file", lambda path: hashed.append(path) or "x")
    assert folder_fingerprint(folder, IDENTITY_SUFFIXES, memo) == first
    assert hashed == []


def test_unusable_memo_still_fingerprints(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    folder = _folder(tmp_path / "m", {"model.safetensors": b"weights"})
    good = folder_fingerprint(folder, IDENTITY_SUFFIXES, DigestMemo(tmp_path / "memo.sqlite"))
    assert folder_fingerprint(folder, IDENTITY_SUFFIXES, DigestMemo(blocker / "memo.sqlite")) == good


def test_identity_holds_no_path(tiny_pool_paths, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_pool_paths[0], copy)
    identity = model_identity(str(copy), "float32")
    assert str(tmp_path) not in str(identity)
    assert identity == model_identity(str(tiny_pool_paths[0]), "float32")


def _sample(path, tmp_path):
    pool = ModelPool(
        [ModelConfig(name="m", path=str(path))],
        HardwareConfig(device="cpu"),
        4,
        GenerationCache(tmp_path / "cache.sqlite", enabled=False),
        get_registry().backends,
        get_plugin_manager().hook,
    )
    try:
        return [g.text for g in pool.generate("m", PROMPTS, SAMPLED)]
    finally:
        pool.close()


def test_sampled_text_survives_copy_move_and_touch(tiny_pool_paths, tmp_path):
    original = _sample(tiny_pool_paths[0], tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(tiny_pool_paths[0], copy)
    moved = tmp_path / "moved" / "model"
    moved.parent.mkdir()
    copy.rename(moved)
    for file in moved.iterdir():
        file.touch()
    assert _sample(moved, tmp_path) == original
    assert _sample(tiny_pool_paths[1], tmp_path) != original
