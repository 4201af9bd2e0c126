"""Run files that survive anything: a locked output dir, atomic run files, damage reported in one
line, a corrupt cache set aside, and nothing written before every check has passed."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys

import pytest
import yaml
from typer.testing import CliRunner

from moco_core import runfiles
from moco_core.cache import GenerationCache
from moco_core.cli import app
from moco_core.plugins import get_registry
from moco_core.testing import (
    assert_one_line_error,
    scripted_plugins,
    set_responder,
    write_letters_dataset,
)

cli = CliRunner()
HOLD_LOCK = (
    "import sys; from moco_core.runfiles import RunLock; RunLock(sys.argv[1]).acquire(); "
    "print('locked', flush=True); sys.stdin.read()"
)


@pytest.fixture()
def scripted(fresh_cache_dir):
    with scripted_plugins():
        set_responder("always-A", "A because")
        set_responder("always-B", "B!")
        yield


def write_data(tmp_path, n_test=6, n_dev=3):
    return write_letters_dataset(tmp_path, n_test, n_dev)


def write_config(tmp_path, data_path, method="majority_vote"):
    config = {
        "method": method,
        "models": [
            {"name": "right", "path": "always-A", "backend": "scripted"},
            {"name": "wrong", "path": "always-B", "backend": "scripted"},
        ],
        "dataset": {"path": str(data_path)},
        "generation": {"batch_size": 2, "max_new_tokens": 8},
        "output_dir": str(tmp_path / "run"),
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_second_process_is_refused_naming_the_first_and_a_killed_holder_frees_the_dir(tmp_path, tiny_pool_paths):
    if "multiple_choice" not in get_registry().scorers:
        pytest.skip("moco-evals is not installed")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(run_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        data = {
            "name": "d",
            "task_type": "multiple_choice",
            "test": [{"question": "q", "choices": ["x", "y"], "answer": 0}],
        }
        (tmp_path / "data.json").write_text(json.dumps(data))
        config = {
            "method": "majority_vote",
            "models": [{"name": "m", "path": str(tiny_pool_paths[0])}],
            "dataset": {"path": str(tmp_path / "data.json")},
            "output_dir": str(run_dir),
        }
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
        moco = os.path.join(os.path.dirname(sys.executable), "moco")
        second = subprocess.run(
            [moco, "run", str(tmp_path / "config.yaml")], capture_output=True, text=True, timeout=120
        )
        assert second.returncode == 2, second.stderr
        lines = [line for line in second.stderr.splitlines() if line.strip()]
        assert lines == [lines[0]] and f"pid {holder.pid}" in lines[0] and str(run_dir) in lines[0], second.stderr
        assert not (run_dir / "predictions.jsonl").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with runfiles.RunLock(run_dir):  # the kernel dropped the killed holder's lock
        assert (run_dir / runfiles.LOCK_FILE).read_text().strip() == str(os.getpid())


def test_lock_is_held_for_the_whole_run(scripted, tmp_path):
    write_config(tmp_path, write_data(tmp_path))
    seen = []

    def respond(request):
        if not seen:
            with pytest.raises(Exception, match="in use by another moco run") as refused:
                runfiles.RunLock(tmp_path / "run").acquire()
            seen.append(str(refused.value))
        return "A!"

    set_responder("always-A", respond)
    result = cli.invoke(app, ["run", str(tmp_path / "config.yaml")])
    assert result.exit_code == 0, result.output
    assert seen and f"pid {os.getpid()}" in seen[0]


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "config.yaml"
    target.write_text("old: true\n")

    def broken_fsync(descriptor):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runfiles.os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        runfiles.atomic_write_text(target, "new: true\n" * 1000)
    assert target.read_text() == "old: true\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]


def test_a_run_leaves_only_complete_run_files(scripted, tmp_path):
    config = write_config(tmp_path, write_data(tmp_path))
    assert cli.invoke(app, ["run", str(config)]).exit_code == 0
    names = sorted(p.name for p in (tmp_path / "run").iterdir() if p.is_file())
    assert names == [".moco.lock", "config.yaml", "fingerprint.json", "metrics.json", "predictions.jsonl"]
    assert json.loads((tmp_path / "run" / "fingerprint.json").read_text())["data"]


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("config.yaml", lambda text: text[: len(text) // 3]),
        ("config.yaml", lambda text: text.replace("majority_vote", "majority_vote\udcff")),
        ("fingerprint.json", lambda text: text[: len(text) // 2]),
        ("fingerprint.json", lambda text: "[]"),
    ],
)
def test_a_damaged_run_file_is_one_line_naming_it(scripted, tmp_path, name, damage):
    config = write_config(tmp_path, write_data(tmp_path))
    assert cli.invoke(app, ["run", str(config)]).exit_code == 0
    damaged = tmp_path / "run" / name
    damaged.write_bytes(damage(damaged.read_text()).encode("utf-8", "surrogateescape"))
    assert_one_line_error(cli.invoke(app, ["run", str(config)]), str(damaged), "damaged")


def test_a_damaged_middle_prediction_names_file_and_line_and_a_torn_last_line_is_repaired(scripted, tmp_path):
    config = write_config(tmp_path, write_data(tmp_path))
    assert cli.invoke(app, ["run", str(config)]).exit_code == 0
    predictions = tmp_path / "run" / "predictions.jsonl"
    lines = predictions.read_text().splitlines(keepends=True)
    predictions.write_text("".join(lines[:4]) + '{"index": 4, "id": "q4", "outp')  # torn by a kill
    result = cli.invoke(app, ["run", str(config)])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["index"] for line in predictions.read_text().splitlines()] == list(range(6))
    lines = predictions.read_text().splitlines(keepends=True)
    predictions.write_text(lines[0] + lines[1][:20] + "\n" + "".join(lines[2:]))
    assert_one_line_error(cli.invoke(app, ["run", str(config)]), str(predictions), "line 2", "damaged")
    predictions.write_bytes(lines[0].encode() + b'{"index": 1, "id": "\xff"}\n' + "".join(lines[2:]).encode())
    assert_one_line_error(cli.invoke(app, ["run", str(config)]), str(predictions), "line 2", "UTF-8")


def test_a_failed_dev_check_writes_nothing_so_the_corrected_rerun_runs(scripted, tmp_path):
    data = write_data(tmp_path, n_dev=0)
    config = write_config(tmp_path, data, method="single_model")
    assert_one_line_error(cli.invoke(app, ["run", str(config)]), "has no dev split")
    assert not (tmp_path / "run" / "fingerprint.json").exists()
    assert not (tmp_path / "run" / "config.yaml").exists()
    write_data(tmp_path, n_dev=3)
    result = cli.invoke(app, ["run", str(config)])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["score"]["count"] == 6


def _filled_cache(path, count=400):
    cache = GenerationCache(path)
    cache.put_many({f"k{i}": {"text": f"answer {i} " * 20} for i in range(count)})
    cache.close()
    return path


def _bad_header(path):
    data = bytearray(path.read_bytes())
    data[:16] = b"not a database!!"
    path.write_bytes(bytes(data))


def _random_bytes(path):
    path.write_bytes(os.urandom(path.stat().st_size))


def _half_truncated(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _scrambled_pages(path):
    data = bytearray(path.read_bytes())
    data[4096:] = os.urandom(len(data) - 4096)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_bad_header, _random_bytes, _half_truncated, _scrambled_pages])
def test_a_corrupt_cache_is_set_aside_with_one_warning_and_a_fresh_one_used(tmp_path, caplog, damage):
    path = _filled_cache(tmp_path / "generations.sqlite")
    damage(path)
    cache = GenerationCache(path)
    with caplog.at_level(logging.WARNING, logger="moco.cache"):
        found = cache.get_many([f"k{i}" for i in range(400)])
        cache.put_many({"fresh": "value"})
        assert cache.get_many(["fresh"]) == {"fresh": "value"}
    cache.close()
    assert found == {}
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and str(path) in warnings[0] and "damaged generation cache" in warnings[0]
    assert "\n" not in warnings[0]
    aside = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name and not p.name.endswith(("-wal", "-shm"))]
    assert len(aside) == 1 and aside[0].name in warnings[0]
    assert GenerationCache(path).get_many(["fresh"]) == {"fresh": "value"}


def test_a_run_continues_over_a_corrupt_cache(scripted, tmp_path):
    config = write_config(tmp_path, write_data(tmp_path))
    assert cli.invoke(app, ["run", str(config), "--output-dir", str(tmp_path / "first")]).exit_code == 0
    database = next(p for p in (tmp_path / "cache").iterdir() if p.name == "generations.sqlite")
    _random_bytes(database)
    result = cli.invoke(app, ["run", str(config)])
    assert result.exit_code == 0, result.output
    first = json.loads((tmp_path / "first" / "metrics.json").read_text())
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["score"] == first["score"] and metrics["generations"]["cached"] == 0
    assert metrics["generations"]["made"] == first["generations"]["made"] > 0
    assert any(".corrupt-" in p.name for p in (tmp_path / "cache").iterdir())


def test_a_changed_cached_value_is_a_miss(tmp_path):
    path = _filled_cache(tmp_path / "generations.sqlite", count=3)
    connection = sqlite3.connect(path)
    connection.execute("UPDATE entries SET value = replace(value, 'answer 1', 'answer 9') WHERE key = 'k1'")
    connection.commit()
    connection.close()
    found = GenerationCache(path).get_many(["k0", "k1", "k2"])
    assert sorted(found) == ["k0", "k2"]
    assert found["k0"]["text"].startswith("answer 0")


def test_the_cache_checksum_covers_the_key(tmp_path):
    path = _filled_cache(tmp_path / "generations.sqlite", count=2)
    connection = sqlite3.connect(path)
    (value, checksum) = connection.execute("SELECT value, checksum FROM entries WHERE key = 'k0'").fetchone()
    connection.execute("UPDATE entries SET value = ?, checksum = ? WHERE key = 'k1'", (value, checksum))
    connection.commit()
    connection.close()
    assert sorted(GenerationCache(path).get_many(["k0", "k1"])) == ["k0"]
