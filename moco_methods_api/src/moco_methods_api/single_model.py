"""The single-model baseline: every model answers alone; the dev-best model's answer is reported."""

from __future__ import annotations

from moco_core.method import Method
from moco_core.types import Example, Prediction


class SingleModel(Method):
    """Keeps every model's test answer and score, so one run gives the whole "single" table."""

    def prepare(self) -> None:
        self.best = self.ctx.dev_best()

    def predict(self, examples: list[Example]) -> list[Prediction]:
        outputs = {name: [g.text for g in self.ctx.answer(name, examples)] for name in self.ctx.pool.names}
        scores = {name: self.ctx.score(examples, texts) for name, texts in outputs.items()}
        return [
            Prediction(
                output=outputs[self.best][i],
                extras={
                    "model": self.best,
                    "outputs": {name: texts[i] for name, texts in outputs.items()},
                    "model_scores": {name: values[i] for name, values in scores.items()},
                },
            )
            for i in range(len(examples))
        ]
