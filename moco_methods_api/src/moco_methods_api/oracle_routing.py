"""oracle_routing: an upper bound, not a method.  It reads the test labels: per item, the first
pool model (pool order) with the item's best score when that score is above 0, else the
dev-best model.  Every model answers every
test item, so the extras also hold each model's score."""

from __future__ import annotations

from moco_core.method import Method, MethodContext
from moco_core.types import Example, Prediction
from moco_methods_api.usage import UsageTally, token_count


class OracleRouting(Method):
    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx)
        self.tally = UsageTally(ctx, ctx.pool.names)
        ctx.metrics["oracle"] = True
        ctx.metrics["note"] = "upper bound chosen with the test labels; not a collaboration method"

    def prepare(self) -> None:
        self.fallback = self.ctx.dev_best()

    def predict(self, examples: list[Example]) -> list[Prediction]:
        names = self.ctx.pool.names
        answers = {name: self.ctx.answer(name, examples, logprobs=True) for name in names}
        scores = {name: self.ctx.score(examples, [g.text for g in gens]) for name, gens in answers.items()}
        predictions = []
        for i in range(len(examples)):
            best = max(scores[n][i] for n in names)
            solved = [n for n in names if best > 0 and scores[n][i] == best]
            name = solved[0] if solved else self.fallback
            generation = answers[name][i]
            tokens = {n: token_count(answers[n][i]) for n in names}
            self.tally.add(name, tokens)
            extras = {
                "oracle": True,
                "routed_to": name,
                "solved_by": solved,
                "tokens_by_model": tokens,
                "model_scores": {n: scores[n][i] for n in names},
            }
            predictions.append(Prediction(output=generation.text, extras=extras))
        return predictions
