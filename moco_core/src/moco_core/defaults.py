"""Core's default implementations of the capability hooks; any plugin can replace them.

Registered by the plugin manager itself (not an entry point), so restricting entry points with
``MOCO_LOAD_PLUGINS`` never removes the defaults.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moco_core.hookspecs import hookimpl
from moco_core.registry import BackendSpec, ScorerSpec
from moco_core.types import Example, Generation, GenerationRequest, GenerationSettings, MergeJob, TrainingJob


@hookimpl
def moco_register_backends(register: Callable[..., None]) -> None:
    register(
        BackendSpec(
            key="hf",
            implementation="moco_core.backends.hf:HFBackend",
            summary="Hugging Face transformers, batched, seeded per row",
        )
    )
    register(
        BackendSpec(
            key="openai",
            implementation="moco_core.backends.openai:OpenAIBackend",
            summary="any OpenAI-compatible server (vLLM, SGLang, TGI, llama.cpp, Ollama), concurrent, with retries",
            local_paths=False,
            weights=False,
            options="moco_core.backends.openai:OpenAIOptions",
        )
    )
    register(
        BackendSpec(
            key="bank",
            implementation="moco_core.backends.bank:BankBackend",
            summary="answers from a response bank (moco bank): zero generation",
            local_paths=False,
            weights=False,
            logprobs=False,
            generates=False,
            options="moco_core.backends.bank:BankOptions",
        )
    )


@hookimpl
def moco_register_scorers(register: Callable[..., None]) -> None:
    from moco_core.banks.bank import BANK_TASK_TYPE, bank_score

    register(
        ScorerSpec(
            task_type=BANK_TASK_TYPE,
            prompt=lambda example: example.question,
            extract=lambda example, output: output.strip() or None,
            score=lambda examples, outputs, options=None: [
                bank_score(e, o) for e, o in zip(examples, outputs, strict=True)
            ],
            metric="bank score",
        )
    )


@hookimpl
def moco_generate(model: Any, requests: list[GenerationRequest], settings: GenerationSettings) -> list[Generation]:
    return model.backend.generate(model.handle, requests, settings, model.batch_size)


@hookimpl
def moco_score(task_type: str, examples: list[Example], outputs: list[str], options: Any) -> list[float] | None:
    from moco_core.plugins import get_registry

    scorer = get_registry().scorers.get(task_type)
    return None if scorer is None else scorer.score(examples, outputs, options)


@hookimpl
def moco_merge(job: MergeJob) -> str:
    from moco_core.merging import run_mergekit

    return run_mergekit(job)


@hookimpl
def moco_train(job: TrainingJob) -> str:
    from moco_core.training import train

    return train(job)
