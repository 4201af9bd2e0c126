"""The default generation backend: Hugging Face transformers, batched and seeded per row.

Sampling is done by a logits processor that draws each row's token from that row's own
random stream (seeded by run seed, prompt and sample index), then hands ``generate`` a
one-hot choice to take greedily.  A row's text therefore does not depend on which other
prompts share its batch, which makes cached and fresh generations interchangeable.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
)
from transformers.utils import logging as hf_logging

from moco_core.compute import ForwardMeter
from moco_core.types import Generation, GenerationRequest, GenerationSettings


@dataclass
class HFModel:
    """A loaded transformers model with its tokenizer and input device.

    Adapter members are views of their base's handle: ``model`` is the PEFT model shared by
    every adapter over that base and ``adapter`` names the one this view generates with.
    Adapter layers stay disabled outside a view's generation call, so the base's own handle
    (``peft`` holds the wrapper, ``model`` the plain model) still computes the base. ``meter``
    counts the loaded model's forward calls (shared by the base and its adapter views).
    """

    model: Any
    tokenizer: Any
    device: torch.device
    adapter: str | None = None
    peft: Any = None
    meter: ForwardMeter | None = None


@contextlib.contextmanager
def active_adapter(handle: HFModel) -> Iterator[None]:
    """Run the block with ``handle``'s adapter switched on (nothing to do for a plain model)."""
    if handle.adapter is None:
        yield
        return
    handle.model.set_adapter(handle.adapter)
    handle.model.base_model.enable_adapter_layers()
    meter = handle.meter
    previous = meter.active_adapter if meter is not None else None
    if meter is not None:
        meter.active_adapter = handle.adapter
    try:
        yield
    finally:
        handle.model.base_model.disable_adapter_layers()
        if meter is not None:
            meter.active_adapter = previous


def row_seed(seed: int, request: GenerationRequest) -> int:
    """The row's random stream: run seed, prompt, sample index and the model (``request.stream``).

    Including the model keeps different pool members' samples independent of each other.
    """
    text = f"{seed}\x00{request.system_prompt or ''}\x00{request.prompt}\x00{request.sample}\x00{request.stream}"
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") >> 1


class RowSeededSampler(LogitsProcessor):
    """Temperature + top-p sampling with one generator per row; greedy at temperature 0.

    With ``record_logprobs`` it keeps, per step, log p(chosen token) and log p(top token) under
    the raw distribution: two numbers per row instead of a full-vocabulary tensor per step.
    """

    def __init__(self, seeds: list[int], temperature: float, top_p: float, record_logprobs: bool = False) -> None:
        self.temperature = temperature
        self.top_p = top_p
        self.generators = [torch.Generator().manual_seed(s) for s in seeds]
        self.record_logprobs = record_logprobs
        self.chosen_logprobs: list[torch.Tensor] = []
        self.top_logprobs: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.temperature == 0:
            self._record(scores, scores.argmax(dim=-1, keepdim=True))
            return scores
        probs = torch.softmax(scores.float() / self.temperature, dim=-1)
        sorted_probs, sorted_ids = torch.sort(probs, dim=-1, descending=True)
        cumulative = torch.cumsum(sorted_probs, dim=-1)
        sorted_probs = sorted_probs.masked_fill(cumulative - sorted_probs > self.top_p, 0.0)
        cumulative = torch.cumsum(sorted_probs, dim=-1)
        draws = torch.stack([torch.rand((), generator=g) for g in self.generators]).to(scores.device)
        threshold = draws * cumulative[:, -1]
        positions = torch.searchsorted(cumulative, threshold.unsqueeze(-1)).clamp(max=scores.shape[-1] - 1)
        chosen = sorted_ids.gather(-1, positions)
        self._record(scores, chosen)
        choice = torch.full_like(scores, float("-inf"))
        return choice.scatter(-1, chosen, 0.0)

    def _record(self, scores: torch.Tensor, chosen: torch.Tensor) -> None:
        if self.record_logprobs:
            log_probs = torch.log_softmax(scores.float(), dim=-1)
            self.chosen_logprobs.append(log_probs.gather(-1, chosen).squeeze(-1))
            self.top_logprobs.append(log_probs.max(dim=-1).values)


def render_prompt(tokenizer: Any, prompt: str, system_prompt: str | None) -> str:
    """The chat-templated prompt when the tokenizer has a template, else plain text."""
    if not getattr(tokenizer, "chat_template", None):
        return f"{system_prompt}\n\n{prompt}" if system_prompt else prompt
    user = {"role": "user", "content": prompt}
    if system_prompt:
        try:
            messages = [{"role": "system", "content": system_prompt}, user]
            return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        except Exception:  # templates without a system role (Gemma) raise; fold it into the user turn
            user = {"role": "user", "content": f"{system_prompt}\n\n{prompt}"}
    return tokenizer.apply_chat_template([user], add_generation_prompt=True, tokenize=False)


def adds_special_tokens(tokenizer: Any) -> bool:
    """Plain-text prompts need the tokenizer's BOS; a chat template already writes its own."""
    return not getattr(tokenizer, "chat_template", None)


def eos_ids(hf: HFModel) -> set[int]:
    ids: set[int] = set()
    config_eos = getattr(hf.model.generation_config, "eos_token_id", None)
    for value in (config_eos, hf.tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif value:
            ids.update(value)
    return ids


@contextlib.contextmanager
def neutral_generation_config(model: Any) -> Iterator[None]:
    """Generate with only the run's settings, not the model's shipped defaults.

    A model's ``generation_config.json`` may carry a repetition penalty, top-k or n-gram
    blocking; transformers falls back to those for anything a call leaves unset.  Every method
    must decode the same way (single models and joint decoding alike), so during the call the
    model sees a config holding only its special tokens.
    """
    if hasattr(model, "get_base_model"):  # a PEFT model generates through the model it wraps
        model = model.get_base_model()
    original = model.generation_config
    model.generation_config = GenerationConfig(
        bos_token_id=original.bos_token_id, eos_token_id=original.eos_token_id, pad_token_id=original.pad_token_id
    )
    try:
        yield
    finally:
        model.generation_config = original


class HFBackend:
    """Loads local folders or hub ids with transformers and generates in padded batches."""

    def load(self, path: str, device: str, dtype: str, device_map: str | None = None) -> HFModel:
        if not sys.stderr.isatty():
            hf_logging.disable_progress_bar()
        torch_dtype = getattr(torch, dtype)
        tokenizer = AutoTokenizer.from_pretrained(path)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        if device_map:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, device_map=device_map)
            input_device = next(model.parameters()).device
        else:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype).to(device)
            input_device = torch.device(device)
        model.eval()
        meter = ForwardMeter()
        model.register_forward_pre_hook(meter.pre_hook, with_kwargs=True)
        return HFModel(model, tokenizer, input_device, meter=meter)

    def load_adapter(self, handle: HFModel, path: str, name: str) -> HFModel:
        """A view of the loaded base ``handle`` that generates through the PEFT adapter at ``path``."""
        from peft import PeftModel

        if handle.peft is None:
            handle.peft = PeftModel.from_pretrained(handle.model, path, adapter_name=name)
        elif name not in handle.peft.peft_config:
            handle.peft.load_adapter(path, adapter_name=name)
        handle.peft.eval()
        handle.peft.base_model.disable_adapter_layers()
        return HFModel(handle.peft, handle.tokenizer, handle.device, adapter=name, meter=handle.meter)

    def unload(self, handle: HFModel) -> None:
        handle.model = None
        handle.peft = None
        gc.collect()  # transformers models sit in reference cycles; free them before releasing GPU memory
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def generate(
        self, handle: HFModel, requests: list[GenerationRequest], settings: GenerationSettings, batch_size: int
    ) -> list[Generation]:
        texts = [render_prompt(handle.tokenizer, r.prompt, r.system_prompt) for r in requests]
        special = adds_special_tokens(handle.tokenizer)
        lengths = [len(handle.tokenizer(t, add_special_tokens=special)["input_ids"]) for t in texts]
        order = sorted(range(len(requests)), key=lambda i: -lengths[i])
        results: list[Generation | None] = [None] * len(requests)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            batch = self._generate_batch(handle, [requests[i] for i in rows], [texts[i] for i in rows], settings)
            for i, generation in zip(rows, batch, strict=True):
                generation.prompt_tokens = lengths[i]
                results[i] = generation
        return [r for r in results if r is not None]

    @torch.inference_mode()
    def _generate_batch(
        self, handle: HFModel, requests: list[GenerationRequest], texts: list[str], settings: GenerationSettings
    ) -> list[Generation]:
        tokenizer = handle.tokenizer
        special = adds_special_tokens(tokenizer)
        encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=special).to(handle.device)
        want_logprobs = any(r.logprobs for r in requests)
        seeds = [row_seed(settings.seed, r) for r in requests]
        sampler = RowSeededSampler(seeds, settings.temperature, settings.top_p, record_logprobs=want_logprobs)
        stop_ids = eos_ids(handle)
        with neutral_generation_config(handle.model), active_adapter(handle):
            output = handle.model.generate(
                **encoded,
                max_new_tokens=settings.max_new_tokens,
                do_sample=False,
                logits_processor=LogitsProcessorList([sampler]),
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=sorted(stop_ids) or None,
                return_dict_in_generate=True,
            )
        new_tokens = output.sequences[:, encoded["input_ids"].shape[1] :]
        chosen_logprobs = torch.stack(sampler.chosen_logprobs, dim=1) if want_logprobs else None
        top_logprobs = torch.stack(sampler.top_logprobs, dim=1) if want_logprobs else None
        generations = []
        for row, request in enumerate(requests):
            tokens = new_tokens[row].tolist()
            end = next((i for i, t in enumerate(tokens) if t in stop_ids), len(tokens))
            text = tokenizer.decode(tokens[:end], skip_special_tokens=True)
            generation = Generation(text=text.strip(), tokens=min(end + 1, len(tokens)))
            if request.logprobs and chosen_logprobs is not None and top_logprobs is not None:
                generation.token_logprobs = chosen_logprobs[row, :end].tolist()
                generation.top_logprobs = top_logprobs[row, :end].tolist()
            generations.append(generation)
        return generations
