"""Tiny same-architecture models made by perturbing one base differently, and LoRA adapters over it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from moco_core.cache import GenerationCache
from moco_core.config import HardwareConfig, ModelConfig
from moco_core.method import MethodContext
from moco_core.plugins import get_plugin_manager, get_registry
from moco_core.pool import ModelPool
from moco_core.registry import ScorerSpec
from moco_core.testing import write_choice_dataset
from moco_core.types import Dataset, Example, GenerationSettings

GREEDY = GenerationSettings(max_new_tokens=4, temperature=0.0, top_p=1.0, seed=0)


def perturb(base: Path, folder: Path, seed: int, std: float = 0.05) -> Path:
    """A copy of ``base`` with Gaussian noise of ``std`` added to every weight (seeded)."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(base)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * std)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def family(tmp_path_factory) -> dict[str, Path]:
    """``base`` and ``m0``..``m2``: the base perturbed three ways (one tokenizer, same shapes)."""
    from moco_core.testing import build_tiny_model

    root = tmp_path_factory.mktemp("weight_family")
    base = build_tiny_model(root / "base", seed=11)
    models = {"base": base}
    for i in range(3):
        models[f"m{i}"] = perturb(base, root / f"m{i}", seed=100 + i)
    return models


@pytest.fixture(scope="session")
def adapters(family, tmp_path_factory) -> list[Path]:
    """Two random LoRA adapters (r 4) over ``base`` on q/v projections, saved by PEFT."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    root = tmp_path_factory.mktemp("adapters")
    paths = []
    for i in range(2):
        model = LlamaForCausalLM.from_pretrained(family["base"])
        config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)
        peft_model = get_peft_model(model, config)
        generator = torch.Generator().manual_seed(7 + i)
        with torch.no_grad():
            for name, parameter in peft_model.named_parameters():
                if "lora_" in name:
                    parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
        peft_model.save_pretrained(root / f"adapter{i}")
        config_file = root / f"adapter{i}" / "adapter_config.json"
        body = json.loads(config_file.read_text())
        body["base_model_name_or_path"] = str(family["base"])
        config_file.write_text(json.dumps(body))
        paths.append(root / f"adapter{i}")
    return paths


def examples(count: int, prefix: str = "q") -> list[Example]:
    return [
        Example(
            index=i,
            id=f"{prefix}{i}",
            question=f"what is {i} + 1?",
            answer=str(i + 1),
            task_type="toy",
            prompt=f"{i}+1=",
        )
        for i in range(count)
    ]


def make_context(
    paths: dict[str, Path] | list[tuple[str, Path]], work_dir: Path, params, dev: int = 3, test: int = 2
) -> MethodContext:
    """A context over ``paths`` (name -> folder) on CPU, with a toy scorer the test may replace."""
    items = list(paths.items()) if isinstance(paths, dict) else paths
    pm = get_plugin_manager()
    pool = ModelPool(
        [ModelConfig(name=name, path=str(path)) for name, path in items],
        hardware=HardwareConfig(device="cpu", dtype="float32"),
        batch_size=4,
        cache=GenerationCache(work_dir / "generations.sqlite"),
        backends=get_registry().backends,
        hook=pm.hook,
    )
    scorer = ScorerSpec(
        task_type="toy", prompt=lambda e: e.prompt, score=lambda ex, out, options=None: [0.0] * len(out)
    )
    return MethodContext(
        pool=pool,
        dataset=Dataset(name="toy", task_type="toy", dev=examples(dev, "d"), test=examples(test, "t")),
        params=params,
        settings=GREEDY,
        scorer=scorer,
        hook=pm.hook,
        work_dir=work_dir,
    )


def weights_of(folder: str | Path) -> dict:
    from moco_core.weight_space import load_weights

    return load_weights(str(folder))


def run_config(
    tmp_path: Path, models: list[tuple[str, Path]], method: str, params: dict, data: Path, out: str = "run"
) -> Path:
    body = {
        "method": method,
        "params": params,
        "models": [{"name": n, "path": str(p)} for n, p in models],
        "dataset": {"path": str(data)},
        "generation": {"max_new_tokens": 3, "temperature": 0.0, "seed": 1, "batch_size": 4},
        "hardware": {"device": "cpu"},
        "output_dir": str(tmp_path / out),
    }
    path = tmp_path / f"{method}-{out}.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def mc_file(tmp_path: Path, n_dev: int = 2, n_test: int = 2) -> Path:
    return write_choice_dataset(tmp_path / "tiny_mc.json", n_dev, n_test)


def moco_run(config: Path, command: str = "run") -> tuple[int, str]:
    """``moco run CONFIG`` (or ``validate``) in this process: the real CLI without a second start-up."""
    from typer.testing import CliRunner

    from moco_core.cli import app

    result = CliRunner().invoke(app, [command, str(config)])
    return result.exit_code, result.output
