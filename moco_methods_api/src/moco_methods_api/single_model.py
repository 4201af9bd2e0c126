"""The single-model baseline: every model answers alone; the dev-best model's answer is reported."""

from __future__ import annotations

from moco_core.method import Method, MethodContext
from moco_core.types import Example, Prediction
from moco_methods_api.usage import UsageTally, token_count


class SingleModel(Method):
    """Keeps every model's test answer and score, so one run gives the whole "single" table.

    Usage counts every model's generated tokens (each answered every query) and gives each query
    to the dev-best model, whose answer is reported.  Answers are asked without log-probs, so
    they share the generation cache with every other method that asks for plain answers.
    """

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx)
        self.tally = UsageTally(ctx, ctx.pool.names)

    def prepare(self) -> None:
        self.best = self.ctx.dev_best()

    def predict(self, examples: list[Example]) -> list[Prediction]:
        answers = {name: self.ctx.answer(name, examples) for name in self.ctx.pool.names}
        outputs = {name: [g.text for g in generations] for name, generations in answers.items()}
        scores = {name: self.ctx.score(examples, texts) for name, texts in outputs.items()}
        predictions = []
        for i in range(len(examples)):
            tokens = {name: token_count(generations[i]) for name, generations in answers.items()}
            self.tally.add(self.best, tokens)
            extras = {
                "model": self.best,
                "routed_to": self.best,
                "tokens_by_model": tokens,
                "outputs": {name: texts[i] for name, texts in outputs.items()},
                "model_scores": {name: values[i] for name, values in scores.items()},
            }
            predictions.append(Prediction(output=outputs[self.best][i], extras=extras))
        return predictions
