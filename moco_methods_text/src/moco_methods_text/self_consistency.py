"""Self-consistency: one model samples k answers; the plurality of the extracted answers wins.

The compute-matched control for voting methods. Sample 0 is round 0 of every text method, so
it comes from the generation cache when another method already ran on the same pool and data.
"""

from __future__ import annotations

from moco_core.method import Method
from moco_core.types import Example, Prediction
from moco_core.validation import RunPlan, check_one_answer
from moco_methods_text.rounds import check_member, dev_best, needs_dev_best, plurality, text_for


class SelfConsistency(Method):
    """Ties go to the tied answer sampled first, so the result needs no extra randomness."""

    @classmethod
    def check(cls, plan: RunPlan) -> None:
        check_member(plan, "model", plan.params.model)
        needs_dev_best(plan, "self_consistency", plan.params.model)
        check_one_answer(plan.config, "params.samples", plan.params.samples, plan.params.model)

    def prepare(self) -> None:
        self.model = self.params.model or dev_best(self.ctx)
        self.ctx.metrics["model"] = self.model

    def predict(self, examples: list[Example]) -> list[Prediction]:
        rows = self.ctx.pool.samples(self.model, [e.prompt for e in examples], self.ctx.settings, self.params.samples)
        predictions = []
        for example, row in zip(examples, rows, strict=True):
            texts = [g.text for g in row]
            answers = [self.ctx.extract(example, t) for t in texts]
            winner, votes = plurality(answers)
            predictions.append(
                Prediction(
                    output=text_for(texts, answers, winner),
                    extras={"model": self.model, "vote": winner, "votes": votes, "answers": answers},
                )
            )
        return predictions
