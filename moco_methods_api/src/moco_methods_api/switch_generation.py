"""switch_generation: a selector LM decides, every ``patch_size`` tokens, which member writes next.

The members exchange text (any tokenizers).  At each patch boundary the selector reads the
query, the numbered members and the answer so far, and names "Model k"; an unparseable reply
keeps the current writer (pool model 0 at the start).

Selector training on dev (skipped when ``selector_model`` is given): per example, a prefix of
random patches by random members, then ``rollouts_per_example`` random continuations of it; a
member's utility is the mean score of the rollouts whose first continuation patch it wrote
(reward model, or the dataset's scorer with ``rollout_score: scorer``); the selector is
LoRA-SFT'ed through the training hook to name the best member (ties: lower index).  Prefixes and
rollouts go through the generation cache and the job is found by its recipe, so a rerun with the
same parameters neither decodes nor trains.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace

from moco_core.backends.hf import row_seed
from moco_core.config import ModelConfig, ScoringConfig
from moco_core.engines.attention_masks import check_uneven_members
from moco_core.engines.text_exchange import Choice, ExchangeView, load_text_exchange
from moco_core.errors import MocoError
from moco_core.method import Method, MethodContext
from moco_core.training import ORIGINAL_LORA
from moco_core.types import Example, GenerationSettings, Prediction, TrainingJob
from moco_core.validation import RunPlan, check_model_param
from moco_methods_api.params import SELECTOR_PROMPT
from moco_methods_api.token_level import cached_decode, check_resident, exchange_result, token_predictions
from moco_methods_api.usage import UsageTally, token_count

SELECTOR = "switch-selector"
MODEL_NUMBER = re.compile(r"\bmodel\s*#?\s*(\d+)", re.IGNORECASE)
PREFIX_PATCHES = 3
"""Training prefixes hold 0 to this many patches."""

Select = Callable[[list[tuple[str, str]]], list[int | None]]
"""(query, answer so far) pairs -> the member index to write the next patch (None: unparsed)."""


def selector_prompt(query: str, partial: str, count: int, template: str = SELECTOR_PROMPT) -> str:
    """What the selector reads: ``params.selector_prompt`` with the query and the answer so far."""
    models = ", ".join(f"Model {k}" for k in range(1, count + 1))
    return template.format(query=query, partial=partial, models=models)


def parse_model(reply: str, count: int) -> int | None:
    for match in MODEL_NUMBER.finditer(reply):
        number = int(match.group(1))
        if 1 <= number <= count:
            return number - 1
    return None


def check_reward_reachable(reward: str) -> None:
    """Offline, refuse a hub reward model that is not in the local cache now, not after the rollouts."""
    from moco_core.models import is_local_path

    if is_local_path(reward) or os.environ.get("HF_HUB_OFFLINE", "").lower() not in {"1", "true", "yes", "on"}:
        return
    from huggingface_hub import try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(reward, "config.json"), str):
        raise MocoError(
            f"params.reward_model: {reward} (rollout_score: reward_model) is not in the local Hugging Face cache and "
            "the hub is offline; give a local reward model folder, a selector_model, or rollout_score: scorer"
        )


@contextmanager
def named_selector(given: bool) -> Iterator[None]:
    """A given selector that fails to load is reported as ``params.selector_model``, not as the pool
    member moco adds it as (a field no config has)."""
    try:
        yield
    except MocoError as exc:
        prefix = f"models.{SELECTOR}.path: "
        if not given or not str(exc).startswith(prefix):
            raise
        raise MocoError(f"params.selector_model: {str(exc)[len(prefix) :]}") from None


class SwitchPolicy:
    """At each row's patch boundary, the writer of the next patch comes from ``choose``."""

    def __init__(self, patch: int, choose: Callable[[list[int], ExchangeView], list[int]]) -> None:
        self.patch = patch
        self.choose = choose
        self.writer: dict[int, int] = {}
        self.log: dict[int, list[dict]] = {}

    def __call__(self, view: ExchangeView) -> dict[int, Choice]:
        due = [p for p in view.active if view.generated(p) % self.patch == 0]
        if due:
            for position, model in zip(due, self.choose(due, view), strict=True):
                self.writer[position] = model
                self.log.setdefault(view.prompt_index(position), []).append(
                    {"at_token": view.generated(position), "model": model}
                )
        choices: dict[int, Choice] = {}
        for model in sorted({self.writer[p] for p in view.active}):
            rows = [p for p in view.active if self.writer[p] == model]
            for position, log_probs in zip(rows, view.log_probs(model, rows), strict=True):
                choices[position] = Choice(model, log_probs)
        return choices


class SwitchGeneration(Method):
    @classmethod
    def check(cls, plan: RunPlan) -> None:
        names = plan.pool_names
        base = plan.params.selector_base_model
        if base is not None and base not in names:
            raise MocoError(f"params.selector_base_model: {base!r} is not a pool model (pool: {', '.join(names)})")
        if plan.params.selector_model is not None:
            check_model_param("params.selector_model", plan.params.selector_model)
        elif not plan.dataset.dev:
            raise MocoError("dataset: switch_generation trains its selector on dev; give the data a dev split")
        if plan.params.reward_model is not None:
            check_model_param("params.reward_model", plan.params.reward_model)
        if plan.params.selector_model is None and plan.params.rollout_score == "reward_model":
            check_reward_reachable(plan.params.reward_model or plan.config.scoring.reward_model)
        selector = plan.params.selector_model or SELECTOR  # a trained selector is a model of its own
        check_resident(plan, [*(m.path for m in plan.config.models), selector], "switch_generation (with its selector)")
        check_uneven_members(plan.config.models, "switch_generation")

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx)
        self.names = ctx.pool.names
        self.tally = UsageTally(ctx, self.names, helpers=[SELECTOR])

    # decoding -------------------------------------------------------------------------------

    def _decode(
        self,
        queries: Sequence[Example],
        policy: Callable[[], SwitchPolicy],
        settings: GenerationSettings,
        starts: Sequence[str] | None = None,
        samples: Sequence[int] | None = None,
    ) -> list[dict]:
        pool = self.ctx.pool
        decoder = load_text_exchange(pool, self.names)
        prompts = [e.prompt for e in queries]
        rendered = decoder.render(prompts, [pool.config(n).system_prompt for n in self.names])
        seeds = [
            row_seed(settings.seed, pool.request(self.names[0], p, sample=s))
            for p, s in zip(prompts, samples or [0] * len(prompts), strict=True)
        ]
        policies: list[SwitchPolicy] = []

        def factory() -> SwitchPolicy:
            policies.append(policy())
            return policies[-1]

        results = decoder.decode(rendered, factory, settings, seeds, starts)
        logs = {i: events for p in policies for i, events in p.log.items()}
        out = []
        for i, result in enumerate(results):
            events = [{"at_token": e["at_token"], "model": self.names[e["model"]]} for e in logs.get(i, [])]
            out.append(exchange_result(result, self.names, events))
        return out

    def _selector_choose(
        self, queries: Sequence[Example], spent: dict[int, int] | None = None
    ) -> Callable[[list[int], ExchangeView], list[int]]:
        """The selector's pick per due row; ``spent`` gathers its generated tokens per query (cost)."""
        count = len(self.names)
        greedy = GenerationSettings(max_new_tokens=8, temperature=0.0, top_p=1.0, seed=self.ctx.settings.seed)

        def choose(positions: list[int], view: ExchangeView) -> list[int]:
            template = self.params.selector_prompt
            prompts = [
                selector_prompt(queries[view.prompt_index(p)].prompt, view.whole_text(p), count, template)
                for p in positions
            ]
            with named_selector(self.params.selector_model is not None):
                replies = self.ctx.pool.generate(SELECTOR, prompts, greedy)
            if spent is not None:
                for p, reply in zip(positions, replies, strict=True):
                    spent[view.prompt_index(p)] = spent.get(view.prompt_index(p), 0) + token_count(reply)
            current = [view.spans(p)[-1].model if view.spans(p) else 0 for p in positions]
            parsed = [parse_model(r.text, count) for r in replies]
            return [c if k is None else k for k, c in zip(parsed, current, strict=True)]

        return choose

    # selector training --------------------------------------------------------------------------

    def _rollout_scores(self, examples: list[Example], outputs: list[str]) -> list[float]:
        if self.params.rollout_score == "scorer":
            return self.ctx.score(examples, outputs)
        options = self.ctx.scoring or ScoringConfig()
        if self.params.reward_model:
            options = options.model_copy(update={"reward_model": self.params.reward_model})
        scores = self.ctx.hook.moco_score(task_type="reward_model", examples=examples, outputs=outputs, options=options)
        if scores is None:
            raise MocoError("params.rollout_score: no reward-model scorer is installed (moco-evals)")
        return list(scores)

    def _scheduled(
        self,
        stage: str,
        examples: Sequence[Example],
        plans: Sequence[list[int]],
        settings: GenerationSettings,
        starts: Sequence[str] | None = None,
        samples: Sequence[int] | None = None,
    ) -> list[dict]:
        """Rows whose writers follow fixed per-patch ``plans``, through the generation cache.

        Each row is keyed by its prompt, plan, start text and sample, so a rerun with the same
        parameters reads every prefix and rollout back instead of decoding it again.
        """
        patch = self.params.patch_size
        texts = list(starts) if starts is not None else [""] * len(examples)
        draws = list(samples) if samples is not None else [0] * len(examples)
        keys = [
            json.dumps({"prompt": e.prompt, "plan": plan, "start": start, "sample": sample}, sort_keys=True)
            for e, plan, start, sample in zip(examples, plans, texts, draws, strict=True)
        ]
        row_of = {key: i for i, key in enumerate(keys)}

        def decode(part: list[str]) -> list[dict]:
            rows = [row_of[k] for k in part]
            chunk = [plans[i] for i in rows]

            def policy() -> SwitchPolicy:
                return SwitchPolicy(
                    patch, lambda due, view: [chunk[view.prompt_index(p)][view.generated(p) // patch] for p in due]
                )

            return self._decode(
                [examples[i] for i in rows],
                policy,
                settings,
                [texts[i] for i in rows] if starts is not None else None,
                [draws[i] for i in rows],
            )

        params = {"stage": stage, "patch_size": patch, "max_new_tokens": settings.max_new_tokens}
        return cached_decode(self.ctx, "switch_generation/training", self.names, params, keys, decode)

    def _training_rows(self) -> list[dict]:
        count, patch = len(self.names), self.params.patch_size
        rng = random.Random(self.ctx.settings.seed)
        examples = self.ctx.dataset.dev[: self.params.train_examples]
        schedules = [[rng.randrange(count) for _ in range(rng.randint(0, PREFIX_PATCHES))] for _ in examples]
        prefix_texts = [""] * len(examples)
        for length in range(1, PREFIX_PATCHES + 1):
            group = [i for i, schedule in enumerate(schedules) if len(schedule) == length]
            if group:
                settings = replace(self.ctx.settings, max_new_tokens=length * patch)
                made = self._scheduled("prefix", [examples[i] for i in group], [schedules[i] for i in group], settings)
                for i, result in zip(group, made, strict=True):
                    prefix_texts[i] = result["text"]
        n = self.params.rollouts_per_example
        rows = [(i, k) for i in range(len(examples)) for k in range(n)]
        steps = self.ctx.settings.max_new_tokens // patch + 1
        plans = [[rng.randrange(count) for _ in range(steps)] for _ in rows]
        rollouts = self._scheduled(
            "rollout",
            [examples[i] for i, _ in rows],
            plans,
            self.ctx.settings,
            starts=[prefix_texts[i] for i, _ in rows],
            samples=[k + 1 for _, k in rows],
        )
        scores = self._rollout_scores([examples[i] for i, _ in rows], [r["text"] for r in rollouts])
        data = []
        for i, example in enumerate(examples):
            utility: dict[int, list[float]] = {}
            for (row_i, _), plan, score in zip(rows, plans, scores, strict=True):
                if row_i == i:
                    utility.setdefault(plan[0], []).append(score)
            best = max(sorted(utility), key=lambda m: sum(utility[m]) / len(utility[m]))
            prompt = selector_prompt(example.prompt, prefix_texts[i], count, self.params.selector_prompt)
            data.append({"prompt": prompt, "completion": f"Model {best + 1}"})
        return data

    def prepare(self) -> None:
        path = self.params.selector_model
        if path is None:
            if not self.ctx.dataset.dev:
                raise MocoError("dataset: switch_generation trains its selector on dev; give the data a dev split")
            base = self.params.selector_base_model or self.names[0]
            job = TrainingJob(
                kind="sft",
                base_model=self.ctx.pool.resolved_path(base),
                data=self._training_rows(),
                hyperparameters={**ORIGINAL_LORA, "epochs": 3},
                seed=self.ctx.settings.seed,
            )
            path = self.ctx.train(job)
            self.ctx.metrics["selector_trained"] = path
        self.ctx.pool.add(ModelConfig(name=SELECTOR, path=str(path)))
        self.selector_path = str(path)

    def predict(self, examples: list[Example]) -> list[Prediction]:
        patch = self.params.patch_size

        def decode(prompts: list[str]) -> list[dict]:
            queries = [
                Example(index=i, id=str(i), question=p, answer=None, task_type="", prompt=p)
                for i, p in enumerate(prompts)
            ]
            spent: dict[int, int] = {}
            choose = self._selector_choose(queries, spent)
            results = self._decode(queries, lambda: SwitchPolicy(patch, choose), self.ctx.settings)
            for i, result in enumerate(results):  # the selector's replies cost tokens too
                result["generated_tokens_by_model"] = {**result["tokens_by_model"], SELECTOR: spent.get(i, 0)}
            return results

        with named_selector(self.params.selector_model is not None):  # a hub selector loads to pin its revision
            params = {
                "patch_size": patch,
                "selector": self.ctx.pool.identity(SELECTOR),
                "selector_prompt": self.params.selector_prompt,
            }
        results = cached_decode(self.ctx, "switch_generation", self.names, params, [e.prompt for e in examples], decode)
        return token_predictions(self.tally, examples, results, "switches")
