"""The ``moco`` entry point: registers the ``vllm`` backend. vLLM is imported only when a model loads."""

from __future__ import annotations

from collections.abc import Callable

from moco_core.hookspecs import hookimpl
from moco_core.registry import BackendSpec


@hookimpl
def moco_register_backends(register: Callable[..., None]) -> None:
    register(
        BackendSpec(
            key="vllm",
            implementation="moco_vllm.backend:VLLMBackend",
            summary="vLLM's offline engine on local models, with tensor and data parallelism",
            local_paths=True,
            weights=False,
            options="moco_vllm.options:VLLMOptions",
        )
    )
