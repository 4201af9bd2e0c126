"""co_llm: a generator that learns when to defer single tokens to an assistant (one tokenizer).

A ``<|defer|>`` output vector on the generator gives p(defer) = sigmoid(h·w + b) from its last
hidden state at every step (trained through moco's training engine, see ``co_llm_training``).
Both models decode one token stream with the joint decoder, each with its own KV cache; where
p(defer) exceeds the threshold the assistant's token is taken (``strategy: defer``), or the two
distributions are mixed by p (``compose``).  ``threshold_warmup`` raises the threshold over the
first 15 steps, easing from 1.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from moco_core.backends.hf import row_seed
from moco_core.config import ModelConfig
from moco_core.engines.decoding import DecodeStep, JointDecoder, load_joint_decoder
from moco_core.errors import MocoError
from moco_core.method import Method, MethodContext
from moco_core.types import Example, Prediction, TrainingJob
from moco_core.validation import RunPlan
from moco_methods_api.co_llm_training import (
    HEAD_FILE,
    HEAD_KIND,
    HEAD_LR,
    HEAD_STEPS,
    MARGINAL_KIND,
    training_rows,
)
from moco_methods_api.token_level import (
    cached_decode,
    check_resident,
    token_predictions,
    token_spans,
)
from moco_methods_api.usage import UsageTally

WARMUP_STEPS = 15
TRAINED = "co_llm-generator"


def gold_continuation(example: Example) -> str:
    """The text a gold answer is written as (multiple choice: "The answer is (K).")."""
    answer: Any = example.answer
    if isinstance(answer, list):
        answer = answer[0] if answer else ""
    if example.choices:
        return f"The answer is ({answer})."
    return str(answer)


def step_threshold(threshold: float, warmup: str, step: int) -> float:
    """The threshold at ``step``: from 1 (never defer) down to ``threshold`` over the warm-up."""
    if warmup == "none" or step >= WARMUP_STEPS:
        return threshold
    progress = step / WARMUP_STEPS
    if warmup == "cosine":
        progress = (1 - math.cos(math.pi * progress)) / 2
    return 1.0 - (1.0 - threshold) * progress


class DeferHook:
    """Per step: p(defer) per row, the assistant's (or the mixed) distribution where it defers."""

    def __init__(self, w: torch.Tensor, b: torch.Tensor, threshold: float, warmup: str, strategy: str) -> None:
        self.w, self.b = w, b
        self.threshold, self.warmup, self.strategy = threshold, warmup, strategy
        self.deferred: dict[int, list[int]] = {}
        self.steps: dict[int, int] = {}

    def __call__(self, step: DecodeStep) -> torch.Tensor:
        assert step.hidden is not None and step.hidden[0] is not None
        hidden = step.hidden[0].float()
        p = torch.sigmoid(hidden @ self.w.to(hidden.device) + self.b.to(hidden.device)).to(step.combined.device)
        generator, assistant = step.log_probs
        defer = p > step_threshold(self.threshold, self.warmup, step.index)
        for i, row in enumerate(step.rows):
            if not bool(step.finished[i]):
                self.steps[row] = self.steps.get(row, 0) + 1
                if bool(defer[i]):
                    self.deferred.setdefault(row, []).append(step.index)
        if self.strategy == "compose":
            weight = p.clamp(1e-6, 1 - 1e-6).unsqueeze(-1)
            return torch.logaddexp(torch.log1p(-weight) + generator, torch.log(weight) + assistant)
        return torch.where(defer.unsqueeze(-1), assistant, generator)


def row_result(decoder: JointDecoder, hook: DeferHook, row: int, ids: list[int], names: list[str]) -> dict[str, Any]:
    """Row ``row``'s text, spans, tokens per model and deferred steps; a stop token counts for nobody."""
    deferred = [step for step in hook.deferred.get(row, []) if step < len(ids)]
    writers = [0] * len(ids)
    for step in deferred:
        writers[step] = 1
    spans = token_spans(decoder.tokenizer, ids, writers, names)
    tokens = {names[0]: len(ids) - len(deferred), names[1]: len(deferred)}
    return {"text": decoder.text(ids), "spans": spans, "tokens_by_model": tokens, "log": deferred}


class CoLLM(Method):
    @classmethod
    def check(cls, plan: RunPlan) -> None:
        paths = [m.path for m in plan.config.models]
        if plan.params.finetune:  # the fine-tuned generator is a model of its own
            paths[0] = TRAINED
        check_resident(plan, paths, "co_llm")
        key = plan.params.training_dataset
        if key is not None:
            from moco_core.plugins import get_registry

            if key not in get_registry().datasets:
                raise MocoError(f"params.training_dataset: unknown dataset {key!r} (see moco list-datasets)")
            try:
                data = get_registry().datasets[key].load(os.environ.get("MOCO_DATA_DIR"))
            except MocoError as exc:
                raise MocoError(f"params.training_dataset: {exc}") from None
            if not data.dev and not data.test:
                raise MocoError(f"params.training_dataset: {key} has no examples to train on")
            if data.task_type not in get_registry().scorers:
                raise MocoError(f"params.training_dataset: no installed plugin prompts task type {data.task_type!r}")
        elif not plan.dataset.dev:
            raise MocoError("dataset: co_llm trains on the dev split's gold answers; give the data a dev split")

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx)
        self.names = ctx.pool.names
        self.tally = UsageTally(ctx, self.names)

    def _training_examples(self) -> list[Example]:
        key = self.params.training_dataset
        if key is None:
            if not self.ctx.dataset.dev:
                raise MocoError("dataset: co_llm trains on the dev split's gold answers; give the data a dev split")
            return self.ctx.dataset.dev
        from moco_core.plugins import get_registry

        registry = get_registry()
        data = registry.datasets[key].load(os.environ.get("MOCO_DATA_DIR"))
        scorer = registry.scorers.get(data.task_type)
        if scorer is None:
            raise MocoError(f"params.training_dataset: no installed plugin prompts task type {data.task_type!r}")
        tested = {e.prompt for e in self.ctx.dataset.test}
        examples = []
        for example in data.dev + data.test:
            example.prompt = scorer.prompt(example)  # the registry's loader leaves it unset
            if example.prompt not in tested:  # never train on this run's test answers
                examples.append(example)
        if not examples:
            raise MocoError(f"params.training_dataset: every item of {key} is a test query of this run")
        return examples

    def prepare(self) -> None:
        pool, settings = self.ctx.pool, self.ctx.settings
        generator = self.names[0]
        examples = self._training_examples()
        rows = training_rows(
            pool,
            self.names,
            lambda: (pool.load(generator).handle, pool.load(self.names[1]).handle),
            [e.prompt for e in examples],
            [gold_continuation(e) for e in examples],
        )
        base = pool.resolved_path(generator)
        head_job = TrainingJob(
            kind=HEAD_KIND,
            base_model=base,
            data=rows,
            adapter="full",
            hyperparameters={"max_steps": HEAD_STEPS, "lr": HEAD_LR},
            seed=settings.seed,
        )
        folder = self.ctx.train(head_job)
        self.members = list(self.names)
        if self.params.finetune:
            hyper = {"epochs": self.params.epochs, "lr": self.params.lr, "init_from": folder}
            job = TrainingJob(MARGINAL_KIND, base, rows, adapter="full", hyperparameters=hyper, seed=settings.seed)
            folder = self.ctx.train(job)
            config = pool.config(generator)
            pool.add(ModelConfig(name=TRAINED, path=folder, system_prompt=config.system_prompt))
            self.members[0] = TRAINED
        head = load_file(str(Path(folder) / HEAD_FILE))
        self.w, self.b = head["w"], head["b"]
        positives = sum(sum(row["defer_labels"]) for row in rows)
        self.ctx.metrics["defer_head"] = {"folder": folder, "positive_labels": positives}

    def predict(self, examples: list[Example]) -> list[Prediction]:
        pool, settings, params = self.ctx.pool, self.ctx.settings, self.params

        def decode(prompts: list[str]) -> list[dict]:
            decoder = load_joint_decoder(pool, self.members)
            rendered = decoder.render(prompts, [pool.config(n).system_prompt for n in self.members])
            seeds = [row_seed(settings.seed, pool.request(self.members[0], p)) for p in prompts]
            hook = DeferHook(self.w, self.b, params.threshold, params.threshold_warmup, params.strategy)
            ids = decoder.decode_ids(rendered, lambda lp: lp[0], settings, seeds, step_hook=hook, hidden_states=[0])
            return [row_result(decoder, hook, i, row, self.names) for i, row in enumerate(ids)]

        settings_key = {
            "threshold": params.threshold,
            "warmup": params.threshold_warmup,
            "strategy": params.strategy,
            "head": [float(v) for v in self.b.flatten()] + [float(self.w.abs().sum())],
            "members": [pool.identity(n) for n in self.members],
            "spans": True,  # results of before spans were recorded are not served
        }
        results = cached_decode(self.ctx, "co_llm", self.names, settings_key, [e.prompt for e in examples], decode)
        return token_predictions(self.tally, examples, results, "deferred_at")
