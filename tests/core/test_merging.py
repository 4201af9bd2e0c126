"""Core's default merge (mergekit through its Python API) on tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from moco_core.cache import default_cache_dir
from moco_core.errors import MocoError
from moco_core.merging import merge_configuration, merge_output_dir, merge_recipe, run_mergekit
from moco_core.models import IDENTITY_FILE, model_identity
from moco_core.types import MergeJob


def _tensors(folder: Path) -> dict:
    tensors = {}
    for file in sorted(folder.glob("*.safetensors")):
        tensors.update(load_file(file))
    return tensors


def test_linear_merge_is_the_average_and_records_its_recipe(tiny_pool_paths, tmp_path):
    first, second = tiny_pool_paths[:2]
    job = MergeJob(models=[str(first), str(second)], output_dir=str(tmp_path / "merged"), weights=[0.5, 0.5])

    folder = Path(run_mergekit(job))

    a, b, merged = _tensors(first), _tensors(second), _tensors(folder)
    assert set(merged) == set(a)
    for name, tensor in merged.items():
        assert tensor.dtype == a[name].dtype
        assert tensor.allclose((a[name] + b[name]) / 2, atol=1e-6), name
    assert (folder / "tokenizer.json").is_file()
    recipe = json.loads((folder / IDENTITY_FILE).read_text())
    assert recipe == merge_recipe(job)
    assert recipe["weights"] == [0.5, 0.5]
    assert recipe["models"][0] == json.loads(json.dumps(model_identity(str(first), "float32")))
    assert model_identity(str(folder), "float32") == {"recipe": recipe, "dtype": "float32"}


def test_a_repeated_job_reuses_the_folder(tiny_pool_paths, tmp_path, monkeypatch):
    job = MergeJob(models=[str(p) for p in tiny_pool_paths[:2]], output_dir=str(tmp_path / "merged"))
    folder = Path(run_mergekit(job))
    written = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}

    import mergekit.merge

    def refuse(*args, **kwargs):
        raise AssertionError("a complete merge was merged again")

    monkeypatch.setattr(mergekit.merge, "run_merge", refuse)
    assert run_mergekit(job) == str(folder)
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == written
    assert not list(tmp_path.glob("*.partial-*"))


def test_a_changed_recipe_replaces_a_stale_merge(tiny_pool_paths, tmp_path):
    models = [str(p) for p in tiny_pool_paths[:2]]
    output = str(tmp_path / "merged")
    run_mergekit(MergeJob(models=models, output_dir=output, weights=[0.5, 0.5]))
    folder = Path(run_mergekit(MergeJob(models=models, output_dir=output, weights=[0.25, 0.75])))

    a, b, merged = _tensors(tiny_pool_paths[0]), _tensors(tiny_pool_paths[1]), _tensors(folder)
    name = next(iter(merged))
    assert merged[name].allclose(0.25 * a[name] + 0.75 * b[name], atol=1e-6)
    assert json.loads((folder / IDENTITY_FILE).read_text())["weights"] == [0.25, 0.75]


def test_refuses_to_overwrite_a_folder_it_did_not_write(tiny_pool_paths, tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    job = MergeJob(models=[str(p) for p in tiny_pool_paths[:2]], output_dir=str(foreign))
    with pytest.raises(MocoError, match="refusing to overwrite"):
        run_mergekit(job)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_merge_output_dir_is_content_addressed_under_the_cache(tiny_pool_paths):
    models = [str(p) for p in tiny_pool_paths[:2]]
    half = merge_recipe(MergeJob(models=models, output_dir="", weights=[0.5, 0.5]))
    same = merge_recipe(MergeJob(models=models, output_dir="elsewhere", weights=[0.5, 0.5]))
    other = merge_recipe(MergeJob(models=models, output_dir="", weights=[0.3, 0.7]))

    assert merge_output_dir(half) == merge_output_dir(same)
    assert merge_output_dir(half) != merge_output_dir(other)
    assert merge_output_dir(half).parent == default_cache_dir() / "merges"


def test_per_model_parameters_and_global_parameters(tiny_pool_paths):
    base, *models = (str(p) for p in tiny_pool_paths)
    job = MergeJob(
        models=models,
        output_dir="",
        method="dare_ties",
        base_model=base,
        weights=[0.6, 0.4],
        parameters={"density": [0.3, 0.7], "lambda": 0.9},
        dtype="bfloat16",
    )

    config = merge_configuration(job)

    assert [m.parameters for m in config.models] == [
        {"weight": 0.6, "density": 0.3},
        {"weight": 0.4, "density": 0.7},
    ]
    assert config.parameters == {"lambda": 0.9}
    assert config.base_model.model.path == base
    assert (config.dtype, config.out_dtype) == ("float32", "bfloat16")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"parameters": {"densty": 0.5}}, "no parameter 'densty'"),
        ({"weights": [1.0]}, "1 weights given for 2 models"),
        ({"method": "no_such_merge"}, "no merge method"),
    ],
)
def test_bad_jobs_are_refused_in_one_line(tiny_pool_paths, changes, message):
    job = MergeJob(models=[str(p) for p in tiny_pool_paths[:2]], output_dir="", **changes)
    with pytest.raises(MocoError, match=message):
        merge_configuration(job)
