"""SLM-MUX: every member samples k answers; the most self-consistent member's majority answer wins.

Confidence is the count of a member's most common extracted answer over all its k samples
(the original divided by the non-empty ones, so a member that rarely produced an answer could
reach full confidence).
"""

from __future__ import annotations

from moco_core.method import Method
from moco_core.types import Example, Prediction
from moco_core.validation import RunPlan, check_one_answer
from moco_methods_text.rounds import plurality, require_dev, rng, text_for


class SLMMux(Method):
    @classmethod
    def check(cls, plan: RunPlan) -> None:
        if plan.params.tie_break == "dev" and len(plan.config.models) > 1:
            require_dev(plan, "slm_mux", "tie_break 'dev' ranks members by dev score")
        check_one_answer(plan.config, "params.samples_per_model", plan.params.samples_per_model)

    def prepare(self) -> None:
        dev = self.params.tie_break == "dev" and len(self.ctx.pool) > 1
        self.order = self.ctx.dev_ranking() if dev else self.ctx.pool.names

    def _pick(self, example: Example, confidence: dict[str, float]) -> str:
        top = max(confidence.values())
        tied = [name for name in self.order if confidence[name] == top]
        if self.params.tie_break == "random" and len(tied) > 1:
            return rng(self.ctx, "slm_mux", example.key).choice(sorted(tied))
        return tied[0]

    def predict(self, examples: list[Example]) -> list[Prediction]:
        k = self.params.samples_per_model
        prompts = [e.prompt for e in examples]
        texts = {
            name: [[g.text for g in row] for row in self.ctx.pool.samples(name, prompts, self.ctx.settings, k)]
            for name in self.ctx.pool.names
        }
        predictions = []
        for i, example in enumerate(examples):
            answers = {name: [self.ctx.extract(example, t) for t in texts[name][i]] for name in texts}
            majority = {name: plurality(values) for name, values in answers.items()}
            confidence = {name: (max(votes.values()) if votes else 0) / k for name, (_, votes) in majority.items()}
            chosen = self._pick(example, confidence)
            winner = majority[chosen][0]
            predictions.append(
                Prediction(
                    output=text_for(texts[chosen][i], answers[chosen], winner),
                    extras={"chosen_model": chosen, "vote": winner, "confidence": confidence, "answers": answers},
                )
            )
        return predictions
