"""nudging: a base model writes while it is sure; where it is not, a nudging model writes a word.

The first token comes from the nudging model, which keeps writing until its word is complete
(it wrote a token containing whitespace) and the base's top-1 probability (temperature 1) at
the text so far is at least ``gamma``; then the base writes until its top-1 falls below
``gamma``.  The models may use different tokenizers: they exchange text through the text
exchange engine.  ``gamma_search`` and ``search_nudging`` pick gamma and the nudging member on
dev; when no setting scores above 0 the configured defaults stay.
"""

from __future__ import annotations

import math

from moco_core.backends.hf import row_seed
from moco_core.engines.text_exchange import Choice, ExchangeView, load_text_exchange
from moco_core.errors import MocoError
from moco_core.method import Method, MethodContext
from moco_core.types import Example, Prediction
from moco_core.validation import RunPlan
from moco_methods_api.token_level import cached_decode, exchange_result, token_predictions
from moco_methods_api.usage import UsageTally


class NudgingPolicy:
    """Per-row state machine: who writes, and the base's top-1 probability at every check."""

    def __init__(self, base: int, nudger: int, gamma: float) -> None:
        self.base = base
        self.nudger = nudger
        self.gamma = gamma
        self.base_writes: dict[int, bool] = {}
        self.log: dict[int, list[dict]] = {}

    def _word_complete(self, view: ExchangeView, position: int) -> bool:
        spans = view.spans(position)
        if not spans or spans[-1].model != self.nudger:
            return False
        piece = view.last_piece(position)
        return "".join(piece.split()) != piece  # the piece holds whitespace

    def __call__(self, view: ExchangeView) -> dict[int, Choice]:
        check = [p for p in view.active if self.base_writes.get(p) or self._word_complete(view, p)]
        choices: dict[int, Choice] = {}
        checked = set(check)
        nudged = [p for p in view.active if p not in checked]
        base_log_probs = view.log_probs(self.base, check)
        maxima = base_log_probs.max(dim=-1).values.tolist() if check else []
        for position, log_probs, best in zip(check, base_log_probs, maxima, strict=True):
            top = math.exp(best)
            writes = top >= self.gamma
            if writes != self.base_writes.get(position, False):
                event = {"at_token": view.generated(position), "base_top1": top, "to": "base" if writes else "nudging"}
                self.log.setdefault(view.prompt_index(position), []).append(event)
            self.base_writes[position] = writes
            if writes:
                choices[position] = Choice(self.base, log_probs)
            else:
                nudged.append(position)
        for position, log_probs in zip(nudged, view.log_probs(self.nudger, nudged), strict=True):
            choices[position] = Choice(self.nudger, log_probs)
        return choices


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
