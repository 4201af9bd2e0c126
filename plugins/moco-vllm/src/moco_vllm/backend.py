"""Generation with vLLM's offline engine, one engine per data-parallel replica, each in its own process.

vLLM refuses ``data_parallel_size > 1`` inside one process, so every replica (``tensor_parallel_size``
GPUs of its own) runs in a spawned worker; rows are split evenly between replicas. Each row carries
its own seed (``row_seed``, as the hf and openai backends), so a row's text does not depend on which
replica made it or which rows shared its batch. Prompts are rendered with the hf backend's chat
template code, so the same model gives the same prompt tokens under both backends.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing as mp
import os
import signal
from dataclasses import dataclass
from typing import Any

from moco_core.backends.hf import row_seed
from moco_core.errors import MocoError
from moco_core.types import Generation, GenerationRequest, GenerationSettings
from moco_vllm.options import VLLMOptions

Row = tuple[str, "str | None", int, bool]
"""What a worker needs of a request: prompt, system prompt, seed, whether to return log-probs."""


@dataclass
class Replica:
    process: Any
    connection: Any


@dataclass
class VLLMModel:
    path: str
    replicas: list[Replica]


def replica_devices(device: str, replica: int, per_replica: int) -> str | None:
    """``CUDA_VISIBLE_DEVICES`` of one replica: its own block of GPUs, counted from ``cuda:N`` (0 for ``cuda``)."""
    if not device.startswith("cuda"):
        return None
    import torch

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
    first = int(device.partition(":")[2] or 0) + replica * per_replica
    block = ids[first : first + per_replica]
    if len(block) < per_replica:
        raise MocoError(
            f"backend_options: data_parallel_size x tensor_parallel_size needs GPUs {first}..{first + per_replica - 1} "
            f"from {device}, but {len(ids)} are visible"
        )
    return ",".join(block)


def _engine(path: str, dtype: str, options: VLLMOptions) -> Any:
    from vllm import LLM

    return LLM(
        model=path,
        dtype=dtype,
        tensor_parallel_size=options.tensor_parallel_size,
        gpu_memory_utilization=options.gpu_memory_utilization,
        max_model_len=options.max_model_len,
        enforce_eager=options.enforce_eager,
        seed=0,
    )


def _generate_rows(llm: Any, rows: list[Row], settings: GenerationSettings) -> list[tuple[str, Any, Any, int, int]]:
    from vllm import SamplingParams

    from moco_core.backends.hf import adds_special_tokens, render_prompt

    tokenizer = llm.get_tokenizer()
    special = adds_special_tokens(tokenizer)
    prompts = [
        {"prompt_token_ids": tokenizer(render_prompt(tokenizer, p, s), add_special_tokens=special)["input_ids"]}
        for p, s, _, _ in rows
    ]
    greedy = settings.temperature == 0
    params = [
        SamplingParams(
            max_tokens=settings.max_new_tokens,
            temperature=settings.temperature,
            top_p=1.0 if greedy else settings.top_p,
            seed=seed,
            logprobs=1 if logprobs else None,  # vLLM adds the sampled token to the top one
        )
        for _, _, seed, logprobs in rows
    ]
    results = []
    for output, row in zip(llm.generate(prompts, params, use_tqdm=False), rows, strict=True):
        completion = output.outputs[0]
        chosen = top = None
        if row[3] and completion.logprobs is not None:
            steps = list(zip(completion.token_ids, completion.logprobs, strict=True))
            if completion.finish_reason == "stop" and not isinstance(completion.stop_reason, str):
                steps = steps[:-1]  # the end token: not part of the text, and the hf backend leaves it out
            chosen = [float(step[token].logprob) for token, step in steps]
            top = [max(float(entry.logprob) for entry in step.values()) for _, step in steps]
        counts = (len(completion.token_ids), len(output.prompt_token_ids or []))
        results.append((completion.text.strip(), chosen, top, *counts))
    return results


def _serve(connection: Any, path: str, dtype: str, options: dict[str, Any], devices: str | None) -> None:
    """A replica's process: build the engine, then answer ``(rows, settings)`` until sent None.

    It leads its own process group, so the engine processes vLLM starts go down with it if it is killed.
    """
    os.setpgrp()
    parsed = VLLMOptions.model_validate(options)
    if devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = devices
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(parsed.kv_cache_space_gb))
    llm = None
    try:
        llm = _engine(path, dtype, parsed)
        connection.send(("ready", None))
        while (message := connection.recv()) is not None:
            connection.send(("done", _generate_rows(llm, *message)))
    except Exception as exc:  # reported to the parent as one line; the traceback is in this process's stderr
        connection.send(("error", f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"))
        raise
    finally:
        if llm is not None:
            llm.llm_engine.engine_core.shutdown()


_LIVE: list[VLLMModel] = []


def _stop(handle: VLLMModel) -> None:
    for replica in handle.replicas:
        if replica.process.is_alive():
            with contextlib.suppress(OSError):  # the replica already died
                replica.connection.send(None)
            replica.process.join(timeout=60)
        if replica.process.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(replica.process.pid, signal.SIGKILL)
            replica.process.join()
    handle.replicas = []
    if handle in _LIVE:
        _LIVE.remove(handle)


@atexit.register
def _stop_all() -> None:
    """Workers are not daemons (vLLM starts processes of its own), so stop them before exit waits on them."""
    for handle in list(_LIVE):
        _stop(handle)


def _receive(handle: VLLMModel, replica: Replica, timeout_s: float | None, doing: str) -> Any:
    if not replica.connection.poll(timeout_s):
        _stop(handle)
        raise MocoError(f"vllm backend: {handle.path}: no answer from a replica within {timeout_s:.0f} s ({doing})")
    try:
        kind, value = replica.connection.recv()
    except EOFError:
        kind, value = "error", f"the replica process exited with {replica.process.exitcode}"
    if kind == "error":
        _stop(handle)
        raise MocoError(f"vllm backend: {handle.path}: {doing} failed: {value}")
    return value


class VLLMBackend:
    """Local folders or hub ids generated by vLLM; text and log-probs only (no per-step logits here)."""

    def load(
        self, path: str, device: str, dtype: str, device_map: str | None = None, options: dict[str, Any] | None = None
    ) -> VLLMModel:
        parsed = VLLMOptions.model_validate(options or {})
        context = mp.get_context("spawn")
        handle = VLLMModel(path, [])
        _LIVE.append(handle)
        for r in range(parsed.data_parallel_size):
            devices = replica_devices(device, r, parsed.tensor_parallel_size)
            parent, child = context.Pipe()
            process = context.Process(target=_serve, args=(child, path, dtype, parsed.model_dump(), devices))
            process.start()
            child.close()
            handle.replicas.append(Replica(process, parent))
        for replica in handle.replicas:
            _receive(handle, replica, parsed.startup_timeout_s, "starting the engine")
        return handle

    def unload(self, handle: VLLMModel) -> None:
        _stop(handle)

    def generate(
        self, handle: VLLMModel, requests: list[GenerationRequest], settings: GenerationSettings, batch_size: int
    ) -> list[Generation]:
        """``batch_size`` is not used: vLLM schedules its own batches from every row it is given."""
        if not handle.replicas:
            raise MocoError(f"vllm backend: {handle.path}: the engine was stopped after an error; load it again")
        rows: list[Row] = [
            (r.prompt, r.system_prompt, row_seed(settings.seed, r) % 2**31, r.logprobs) for r in requests
        ]
        share = -(-len(rows) // len(handle.replicas))
        shards = [(replica, rows[i * share : (i + 1) * share]) for i, replica in enumerate(handle.replicas)]
        shards = [(replica, shard) for replica, shard in shards if shard]
        for replica, shard in shards:
            replica.connection.send((shard, settings))
        results = [item for replica, _ in shards for item in _receive(handle, replica, None, "generation")]
        return [
            Generation(text, chosen, top, tokens=tokens, prompt_tokens=prompt_tokens)
            for text, chosen, top, tokens, prompt_tokens in results
        ]
