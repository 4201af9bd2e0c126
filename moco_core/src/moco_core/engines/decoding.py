"""Token-level joint decoding: several Hugging Face models that share a vocabulary pick each
token together.

Every model reads its own rendered prompt (its own system prompt, so its own length and
padding) and keeps one KV cache for the whole continuation: the prompt is encoded once and
each later step feeds only the chosen token.  At every step the models' next-token
log-probabilities go through a ``combine`` function (a weighted mixture, a contrast, a
switch), an optional ``step_hook`` may observe or replace the result, and one token per row
is drawn with the same per-row seeding as the hf backend, so a row's text never depends on
which other prompts share its batch.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from moco_core.backends.hf import (
    HFModel,
    RowSeededSampler,
    active_adapter,
    adds_special_tokens,
    eos_ids,
    render_prompt,
)
from moco_core.engines.attention_masks import eager_dtype, uneven_windows, windowed_masks
from moco_core.errors import MocoError
from moco_core.types import GenerationSettings

Combine = Callable[[list[torch.Tensor]], torch.Tensor]
"""Maps each model's log-probabilities ``(batch, vocab)`` to the log-probabilities to sample from."""


@dataclass
class DecodeStep:
    """What a step hook sees of one decoding step of one batch.

    ``rows`` are the positions, in the prompts given to ``decode``, of the tensor rows; they
    are stable for the whole batch, so a hook can keep per-row state (a cascade's "switched"
    flag) keyed by them.  ``log_probs`` are per model, ``combined`` is what ``combine``
    returned; ``finished`` marks rows that have already stopped (their token is ignored).
    """

    index: int
    rows: list[int]
    log_probs: list[torch.Tensor]
    combined: torch.Tensor
    finished: torch.Tensor
    hidden: list[torch.Tensor | None] | None = None
    """Per model, its last-layer hidden state at the last position ``(batch, hidden)``, for the
    models named in ``decode(hidden_states=...)``; None for the others."""


StepHook = Callable[[DecodeStep], torch.Tensor | None]
"""Called once per step after ``combine``; a returned tensor replaces the combined log-probs."""


def _forward_parameters(model: Any) -> set[str]:
    return set(inspect.signature(type(model).forward).parameters)


class _ModelStream:
    """One model's side of a batch: its left-padded prompts, attention mask and KV cache."""

    def __init__(
        self, hf: HFModel, texts: Sequence[str], pad_id: int, keep_hidden: bool = False, uneven: bool = False
    ) -> None:
        """``uneven``: the engine feeds rows unevenly (masked gaps between a row's tokens) or takes
        tokens back, so every layer keeps every token and forwards get masks that count sliding
        windows in live tokens (``attention_masks``); models whose layers cannot are refused."""
        from transformers import DynamicCache

        self.hf = hf
        self.keep_hidden = keep_hidden
        self.hidden: torch.Tensor | None = None
        encoded = hf.tokenizer(list(texts), add_special_tokens=adds_special_tokens(hf.tokenizer))["input_ids"]
        width = max(len(ids) for ids in encoded)
        input_ids = torch.tensor([[pad_id] * (width - len(ids)) + ids for ids in encoded], device=hf.device)
        self.attention_mask = torch.tensor(
            [[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded], device=hf.device
        )
        position_ids = (self.attention_mask.cumsum(-1) - 1).masked_fill(self.attention_mask == 0, 0)
        parameters = _forward_parameters(hf.model)
        self._cache_argument = "cache" if "cache" in parameters else "past_key_values"
        self._keep_last = "logits_to_keep" in parameters
        self.windows = uneven_windows(hf.model) if uneven else None
        self._eager = eager_dtype(hf.model)
        self.cache = DynamicCache() if uneven else DynamicCache(config=hf.model.config)
        self.next_position = position_ids[:, -1:] + 1
        self.logits = self._forward(input_ids, position_ids)

    def _forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        extra: dict[str, Any] = {self._cache_argument: self.cache}
        if self._keep_last:
            extra["logits_to_keep"] = 1
        if self.keep_hidden:
            extra["output_hidden_states"] = True
        with active_adapter(self.hf):
            output = self.hf.model(
                input_ids=input_ids,
                attention_mask=self.mask_for(self.attention_mask, input_ids.shape[1]),
                position_ids=position_ids,
                use_cache=True,
                **extra,
            )
        if self.keep_hidden:
            self.hidden = output.hidden_states[-1][:, -1, :]
        return output.logits[:, -1, :]

    def mask_for(self, mask: Any, queries: int) -> Any:
        """The attention mask to give a forward of ``queries`` new columns: a 2D ``mask`` as is,
        or, for a model with sliding windows, 4D masks that count windows in live tokens."""
        if self.windows is None or not isinstance(mask, torch.Tensor) or mask.dim() != 2:
            return mask
        return windowed_masks(mask, queries, self.windows, self._eager)

    def advance(self, tokens: torch.Tensor) -> None:
        """Append one token per row and compute the next logits from the cache alone."""
        tokens = tokens.to(self.hf.device)
        ones = torch.ones_like(self.attention_mask[:, :1])
        self.attention_mask = torch.cat([self.attention_mask, ones], dim=-1)
        position_ids = self.next_position
        self.next_position = position_ids + 1
        self.logits = self._forward(tokens.unsqueeze(-1), position_ids)


class JointDecoder:
    """Decodes with several models at once, one shared token stream per prompt.

    The models must share one vocabulary (the same tokenizer); lm_head rows beyond it (padding
    some checkpoints add for alignment) are dropped so every distribution covers the same ids.
    """

    def __init__(self, models: Sequence[HFModel], batch_size: int = 16) -> None:
        if not models:
            raise MocoError("joint decoding needs at least one model")
        first = models[0].tokenizer.get_vocab()
        for index, other in enumerate(models[1:], start=1):
            if other.tokenizer.get_vocab() != first:
                raise MocoError(f"joint decoding needs one shared vocabulary; model {index} has another tokenizer")
        self.models = list(models)
        self.batch_size = batch_size
        self.tokenizer = models[0].tokenizer
        self.device = models[0].device
        self.vocab_size = len(self.tokenizer)
        self.stop_ids = {i for m in models for i in eos_ids(m) if i < self.vocab_size}
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else min(self.stop_ids, default=0)

    def _own_vocabularies(self, models: Sequence[HFModel], batch_size: int) -> None:
        """Set-up for subclasses whose models keep their own tokenizers: stop and pad ids per model."""
        if not models:
            raise MocoError("joint decoding needs at least one model")
        self.models = list(models)
        self.batch_size = batch_size
        self.tokenizer = models[0].tokenizer
        self.device = models[0].device
        self.stops = [{i for i in eos_ids(m) if i < len(m.tokenizer)} for m in models]
        self.stop_ids = self.stops[0]
        self.pads = [
            m.tokenizer.pad_token_id if m.tokenizer.pad_token_id is not None else min(s, default=0)
            for m, s in zip(models, self.stops, strict=True)
        ]
        self.pad_id = self.pads[0]

    def render(self, prompts: Sequence[str], system_prompts: Sequence[str | None]) -> list[list[str]]:
        """Each model's chat-rendered prompts, with that model's own system prompt."""
        if len(system_prompts) != len(self.models):
            raise ValueError(f"expected {len(self.models)} system prompts, got {len(system_prompts)}")
        return [
            [render_prompt(m.tokenizer, p, system) for p in prompts]
            for m, system in zip(self.models, system_prompts, strict=True)
        ]

    def decode(
        self,
        prompts_per_model: Sequence[Sequence[str]],
        combine: Combine,
        settings: GenerationSettings,
        seeds: Sequence[int],
        step_hook: StepHook | None = None,
        hidden_states: Sequence[int] = (),
    ) -> list[str]:
        """One continuation per prompt, as text (see ``decode_ids``)."""
        ids = self.decode_ids(prompts_per_model, combine, settings, seeds, step_hook, hidden_states)
        return [self.text(row) for row in ids]

    def text(self, ids: Sequence[int]) -> str:
        """A continuation's token ids as text."""
        return self.tokenizer.decode(list(ids), skip_special_tokens=True).strip()

    @torch.inference_mode()
    def decode_ids(
        self,
        prompts_per_model: Sequence[Sequence[str]],
        combine: Combine,
        settings: GenerationSettings,
        seeds: Sequence[int],
        step_hook: StepHook | None = None,
        hidden_states: Sequence[int] = (),
    ) -> list[list[int]]:
        """One continuation per prompt, as the chosen token ids up to (not counting) the first stop
        id; ``prompts_per_model[m][i]`` is model m's text of prompt i.

        ``seeds[i]`` seeds prompt i's sampling stream: ``row_seed(seed, pool.request(anchor,
        prompt))`` for the member the decode leans on, so all weight on it reproduces its own
        samples (the pool's one seeding rule); greedy when the temperature is 0.  Prompts are
        grouped by length into batches of ``batch_size``.
        ``hidden_states`` names the models whose last hidden state the step hook sees.
        """
        if len(prompts_per_model) != len(self.models):
            raise ValueError(f"expected prompts for {len(self.models)} models, got {len(prompts_per_model)}")
        count = len(seeds)
        if any(len(texts) != count for texts in prompts_per_model):
            raise ValueError("every model needs exactly one prompt per seed")
        special = adds_special_tokens(self.tokenizer)
        lengths = [len(self.tokenizer(t, add_special_tokens=special)["input_ids"]) for t in prompts_per_model[0]]
        order = sorted(range(count), key=lambda i: -lengths[i])
        results: list[list[int]] = [[] for _ in range(count)]
        for start in range(0, count, self.batch_size):
            rows = order[start : start + self.batch_size]
            texts = [[texts[i] for i in rows] for texts in prompts_per_model]
            batch = self._decode_batch(
                rows, texts, combine, settings, [seeds[i] for i in rows], step_hook, set(hidden_states)
            )
            for i, ids in zip(rows, batch, strict=True):
                results[i] = ids
        return results

    def _decode_batch(
        self,
        rows: list[int],
        texts: list[list[str]],
        combine: Combine,
        settings: GenerationSettings,
        seeds: list[int],
        step_hook: StepHook | None,
        hidden_states: set[int] | None = None,
    ) -> list[list[int]]:
        hidden_states = hidden_states or set()
        streams = [
            _ModelStream(m, t, self.pad_id, keep_hidden=i in hidden_states)
            for i, (m, t) in enumerate(zip(self.models, texts, strict=True))
        ]
        width = min([self.vocab_size] + [s.logits.shape[-1] for s in streams])
        sampler = RowSeededSampler(seeds, settings.temperature, settings.top_p)
        stop = torch.tensor(sorted(self.stop_ids), dtype=torch.long, device=self.device)
        finished = torch.zeros(len(rows), dtype=torch.bool, device=self.device)
        chosen: list[torch.Tensor] = []
        for index in range(settings.max_new_tokens):
            log_probs = [torch.log_softmax(s.logits[:, :width].float(), dim=-1).to(self.device) for s in streams]
            combined = combine(log_probs)
            if step_hook is not None:
                hidden = [s.hidden for s in streams]
                replaced = step_hook(DecodeStep(index, rows, log_probs, combined, finished.clone(), hidden))
                combined = combined if replaced is None else replaced
            tokens = sampler(None, combined).argmax(dim=-1)
            tokens = tokens.masked_fill(finished, self.pad_id)
            chosen.append(tokens)
            finished |= torch.isin(tokens, stop)
            if bool(finished.all()) or index + 1 == settings.max_new_tokens:
                break
            for stream in streams:
                stream.advance(tokens)
        rows_ids = torch.stack(chosen, dim=-1).tolist() if chosen else [[] for _ in rows]
        return [ids[: next((i for i, t in enumerate(ids) if t in self.stop_ids), len(ids))] for ids in rows_ids]


def check_resident(limit: int | None, models: int, purpose: str) -> None:
    """Refuse a ``hardware.max_resident_models`` below the ``models`` an engine keeps loaded at once
    (evicting one mid-decode would break it); methods call it at plan time, before any load."""
    if limit is not None and limit < models:
        raise MocoError(
            f"hardware.max_resident_models: {purpose} keeps {models} models loaded at once, but the limit is {limit}"
        )


def load_hf_members(pool: Any, names: Sequence[str], purpose: str = "joint decoding") -> list[HFModel]:
    """Pool members ``names``, all loaded at once, as ``HFModel`` handles (engines read their logits).

    ``pool`` is a ``moco_core.pool.ModelPool``; a resident-model cap below the distinct models and a
    member on a backend other than hf are refused in one line naming ``purpose``.
    """
    distinct = {(pool.config(n).backend, pool.resolved_path(n)) for n in names}
    check_resident(pool.hardware.max_resident_models, len(distinct), purpose)
    handles = []
    for name in names:
        handle = pool.load(name).handle
        if not isinstance(handle, HFModel):
            raise MocoError(f"models.{name}.backend: {purpose} needs the hf backend (logits of every step)")
        handles.append(handle)
    return handles


def load_joint_decoder(pool: Any, names: Sequence[str]) -> JointDecoder:
    """A decoder over pool members ``names`` (hf backend), all loaded at once."""
    return JointDecoder(load_hf_members(pool, names), batch_size=pool.batch_size)
