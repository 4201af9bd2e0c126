"""cascade: members ordered weak to strong; each answers the items still open and keeps those it
is confident about, deferring the rest to the next member; the last member always answers.

Confidence is the mean top-1 probability (temperature 1) over the tokens a member generated up
to EOS.  Member i defers when its confidence is below *its own* threshold: the
``defer_fraction`` quantile of member i's confidences on dev.  In ``self_ask`` mode the prompt
asks the model to say "unconfident" when unsure, and saying so (in any wording: "I am not
confident", "UNCONFIDENT") defers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

from moco_core.errors import MocoError
from moco_core.method import Method, MethodContext
from moco_core.plugins import get_registry
from moco_core.types import Example, Generation, GenerationRequest, Prediction
from moco_core.validation import RunPlan
from moco_methods_api.params import SELF_ASK_PROMPT
from moco_methods_api.usage import UsageTally, token_count

CONFIDENCE_DECIMALS = 12
SELF_ASK = SELF_ASK_PROMPT.removeprefix("{question}")
"""What the default ``self_ask_prompt`` appends to the task prompt."""
UNCONFIDENT = re.compile(
    r"(?i)\bun-?confident|(?:\bnot|n['’]t|\bnever)\s+(?:(?:very|really|entirely|fully|completely|quite|too|that|so)\s+)?"
    r"(?:confident|sure|certain)\b"
)
"""The word the prompt asks for, in any case or wording ("Unconfident.", "I am not confident", "not sure")."""


def confidence(generation: Generation, name: str = "") -> float:
    """Mean top-1 probability over the generated tokens; 0 for an empty generation.

    Rounded to ``CONFIDENCE_DECIMALS``, far finer than float32 log-probs resolve, so that the
    float rounding of a mean over more or fewer tokens never decides a deferral: a member as
    sure at every step (a uniform one) has one confidence at every answer length.

    A generation without log-probabilities (a server that does not return them) is refused: a
    constant confidence would silently never defer.
    """
    if generation.top_logprobs is None:
        raise MocoError(
            f"cascade: model {name!r} returned no token log-probabilities (its server may not support them); "
            "use params.confidence: self_ask"
        )
    top = generation.top_logprobs
    return round(math.fsum(math.exp(v) for v in top) / len(top), CONFIDENCE_DECIMALS) if top else 0.0


def threshold(confidences: Sequence[float], defer_fraction: float) -> float:
    """The ``defer_fraction`` quantile (linear interpolation), so about that share of dev defers."""
    return float(np.quantile(np.asarray(confidences, dtype=float), defer_fraction)) if confidences else 0.0


def says_unconfident(reply: str) -> bool:
    """Whether a ``self_ask`` reply declines: "unconfident" or a negated "confident"/"sure"/"certain"."""
    return UNCONFIDENT.search(reply) is not None


class Cascade(Method):
    @classmethod
    def check(cls, plan: RunPlan) -> None:
        if plan.params.confidence != "token_prob":
            return
        if not plan.dataset.dev:
            raise MocoError(
                "dataset: cascade sets each member's threshold from its dev confidences; give the data a dev split "
                "(or use params.confidence: self_ask)"
            )
        backends = get_registry().backends
        for index, model in enumerate(plan.config.models[:-1]):  # the last member answers whatever it thinks
            spec = backends.get(model.backend)
            if spec is not None and not spec.logprobs:
                raise MocoError(
                    f"models[{index}].backend: cascade's params.confidence token_prob reads token log-probabilities, "
                    f"which the {model.backend!r} backend does not give; use params.confidence: self_ask"
                )

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx)
        self.names = ctx.pool.names
        self.self_ask = self.params.confidence == "self_ask"
        self.tally = UsageTally(ctx, self.names)
        self.thresholds: dict[str, float] = {}

    def _answer(self, name: str, examples: Sequence[Example], last: bool = False) -> list[Generation]:
        """The member's answers with log-probs; ``self_ask`` asks every member but the last (which
        cannot defer, so it answers the plain task prompt, as the original cascade did) through
        ``params.self_ask_prompt``."""
        system = self.ctx.pool.config(name).system_prompt
        ask = self.self_ask and not last
        prompts = [self.params.self_ask_prompt.format(question=e.prompt) if ask else e.prompt for e in examples]
        requests = [GenerationRequest(prompt, system, logprobs=True) for prompt in prompts]
        return self.ctx.pool.generate(name, requests, self.ctx.settings)

    def prepare(self) -> None:
        if self.self_ask:
            return
        for name in self.names[:-1]:
            confidences = [confidence(g, name) for g in self._answer(name, self.ctx.dataset.dev)]
            self.thresholds[name] = threshold(confidences, self.params.defer_fraction)
        self.ctx.metrics["thresholds"] = self.thresholds

    def _defers(self, name: str, generation: Generation, value: float | None) -> bool:
        if self.self_ask:
            return says_unconfident(generation.text)
        return value is not None and value < self.thresholds[name]

    def predict(self, examples: list[Example]) -> list[Prediction]:
        chains: list[list[dict]] = [[] for _ in examples]
        final: list[Generation | None] = [None] * len(examples)
        tokens: list[dict[str, int]] = [{} for _ in examples]
        open_rows = list(range(len(examples)))
        for level, name in enumerate(self.names):
            if not open_rows:
                break
            last = level == len(self.names) - 1
            generations = self._answer(name, [examples[i] for i in open_rows], last)
            still_open = []
            for i, generation in zip(open_rows, generations, strict=True):
                unmeasured = generation.top_logprobs is None and (self.self_ask or last)  # needs none
                value = None if unmeasured else confidence(generation, name)
                tokens[i][name] = token_count(generation)
                defers = not last and self._defers(name, generation, value)
                step = {"model": name, "confidence": value, "deferred": defers}
                if not self.self_ask and not last:
                    step["threshold"] = self.thresholds[name]
                chains[i].append(step)
                if defers:
                    still_open.append(i)
                else:
                    final[i] = generation
            open_rows = still_open
        predictions = []
        for i, generation in enumerate(final):
            assert generation is not None
            answered_by = chains[i][-1]["model"]
            self.tally.add(answered_by, tokens[i])
            extras = {"routed_to": answered_by, "deferral_chain": chains[i], "tokens_by_model": tokens[i]}
            predictions.append(Prediction(output=generation.text, extras=extras))
        return predictions
