"""nudging: a base model writes while it is sure; where it is not, a nudging model writes a word.

The first token comes from the nudging model, which keeps writing until its word is complete
(its next token holds whitespace, so it would start a new word) and the base's top-1
probability (temperature 1) at the text so far is at least ``gamma``; then the base writes
until its top-1 falls below ``gamma``.  As in the original, both models look at every step: the
base's top-1 decides in both modes, the nudging model's next token decides where its word ends.
The models may use different tokenizers: they exchange text through the text exchange engine.
``gamma_search`` and ``search_nudging`` pick gamma and the nudging member on dev; when no
setting scores above 0 the configured defaults stay.
"""

from __future__ import annotations

import math

from moco_core.backends.hf import row_seed
from moco_core.engines.attention_masks import check_uneven_members
from moco_core.engines.text_exchange import Choice, ExchangeView, load_text_exchange
from moco_core.errors import MocoError
from moco_core.method import Method, MethodContext
from moco_core.types import Example, Prediction
from moco_core.validation import RunPlan
from moco_methods_api.token_level import cached_decode, check_resident, exchange_result, token_predictions
from moco_methods_api.usage import UsageTally


class NudgingPolicy:
    """Per-row state machine: who writes, and the base's top-1 probability at every handover."""

    def __init__(self, base: int, nudger: int, gamma: float) -> None:
        self.base = base
        self.nudger = nudger
        self.gamma = gamma
        self.nudging: dict[int, bool] = {}
        self.written: dict[int, int] = {}
        """Per row, tokens the nudging model has written since it took over."""
        self.log: dict[int, list[dict]] = {}

    def _hand_over(self, view: ExchangeView, position: int, top: float, to_base: bool) -> None:
        self.nudging[position] = not to_base
        self.written[position] = 0
        event = {"at_token": view.generated(position), "base_top1": top, "to": "base" if to_base else "nudging"}
        self.log.setdefault(view.prompt_index(position), []).append(event)

    def __call__(self, view: ExchangeView) -> dict[int, Choice]:
        base_log_probs = view.log_probs(self.base, view.active)
        tops = [math.exp(x) for x in base_log_probs.max(dim=-1).values.tolist()]
        base = {p: (lp, top) for p, lp, top in zip(view.active, base_log_probs, tops, strict=True)}
        choices: dict[int, Choice] = {}
        nudged = []
        for position, (log_probs, top) in base.items():
            if self.nudging.get(position, True):
                nudged.append(position)
            elif top >= self.gamma:
                choices[position] = Choice(self.base, log_probs)
            else:
                self._hand_over(view, position, top, to_base=False)
                nudged.append(position)
        nudger_log_probs = view.log_probs(self.nudger, nudged)
        for position, token in zip(nudged, view.sample(nudged, nudger_log_probs), strict=True):
            log_probs, top = base[position]
            if (
                self.written.get(position, 0)
                and top >= self.gamma
                and _starts_word(view.piece(position, self.nudger, token))
            ):
                self._hand_over(view, position, top, to_base=True)
                choices[position] = Choice(self.base, log_probs)
            else:
                self.written[position] = self.written.get(position, 0) + 1
                choices[position] = Choice(self.nudger, token=token)
        return choices


def _starts_word(piece: str) -> bool:
    """Whether a token's text holds whitespace (the word before it is complete)."""
    return "".join(piece.split()) != piece


class Nudging(Method):
    @classmethod
    def check(cls, plan: RunPlan) -> None:
        count = len(plan.pool_names)
        for field in ("base_model", "nudging_model"):
            index = getattr(plan.params, field)
            if index >= count:
                raise MocoError(f"params.{field}: {index} is not a pool index (pool has {count} models)")
        if plan.params.base_model == plan.params.nudging_model:
            raise MocoError("params.nudging_model: must differ from params.base_model")
        paths = [plan.config.models[getattr(plan.params, f)].path for f in ("base_model", "nudging_model")]
        check_resident(plan, paths, "nudging")
        members = range(count) if plan.params.search_nudging else (plan.params.base_model, plan.params.nudging_model)
        check_uneven_members(plan.config.models, "nudging", members)
        searched = "gamma_search" if plan.params.gamma_search else ""
        if plan.params.search_nudging and count > 2:
            searched = searched or "search_nudging"
        if searched and not plan.dataset.dev:
            raise MocoError(f"dataset: nudging's params.{searched} picks on dev; give the data a dev split")

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx)
        self.names = ctx.pool.names
        self.gamma = self.params.gamma
        self.nudger = self.params.nudging_model
        self.tally = UsageTally(ctx, self.names)

    def _decode(self, examples: list[Example], gamma: float, nudger: int) -> list[dict]:
        base = self.params.base_model
        members = [self.names[base], self.names[nudger]]
        pool, settings = self.ctx.pool, self.ctx.settings

        def decode(prompts: list[str]) -> list[dict]:
            decoder = load_text_exchange(pool, members)
            rendered = decoder.render(prompts, [pool.config(n).system_prompt for n in members])
            seeds = [row_seed(settings.seed, pool.request(members[0], p)) for p in prompts]
            policies: list[NudgingPolicy] = []

            def factory() -> NudgingPolicy:
                policies.append(NudgingPolicy(0, 1, gamma))
                return policies[-1]

            results = decoder.decode(rendered, factory, settings, seeds)
            logs = {i: events for policy in policies for i, events in policy.log.items()}
            return [exchange_result(r, members, logs.get(i, [])) for i, r in enumerate(results)]

        prompts = [e.prompt for e in examples]
        params = {"gamma": gamma, "roles": ["base", "nudging"]}
        return cached_decode(self.ctx, "nudging", members, params, prompts, decode)

    def prepare(self) -> None:
        gammas = self.params.gamma_search
        nudgers = [i for i in range(len(self.names)) if i != self.params.base_model]
        nudgers = nudgers if self.params.search_nudging else [self.params.nudging_model]
        if not gammas and len(nudgers) == 1:
            return
        results = {}
        for nudger in nudgers:
            for gamma in gammas or [self.params.gamma]:
                outputs = [r["text"] for r in self._decode(self.ctx.dataset.dev, gamma, nudger)]
                scores = self.ctx.score(self.ctx.dataset.dev, outputs)
                results[(nudger, gamma)] = sum(scores) / len(scores) if scores else 0.0
        best = max(results, key=lambda k: results[k])
        if results[best] > 0:
            self.nudger, self.gamma = best
        self.ctx.metrics["search"] = [
            {"nudging_model": self.names[n], "gamma": g, "dev_score": s} for (n, g), s in results.items()
        ]
        self.ctx.metrics["chosen"] = {"nudging_model": self.names[self.nudger], "gamma": self.gamma}

    def predict(self, examples: list[Example]) -> list[Prediction]:
        results = self._decode(examples, self.gamma, self.nudger)
        return token_predictions(self.tally, examples, results, "handovers")
