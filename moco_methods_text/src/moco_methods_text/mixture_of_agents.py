"""Mixture of agents: layers of proposers, each seeing the whole layer below; one aggregator answers.

Layer 1 is the plain answer round (shared through the cache); each later layer every member
answers given all of the previous layer's answers; the dev-best member aggregates the last layer.
"""

from __future__ import annotations

from moco_core.method import Method
from moco_core.types import Example, Prediction
from moco_core.validation import RunPlan
from moco_methods_text.prompts import listing
from moco_methods_text.rounds import ask, ask_each, dev_best, initial_answers, needs_dev_best


def with_answers(template: str, examples: list[Example], layer: dict[str, list[str]]) -> list[str]:
    return [
        template.format(question=e.prompt, answers=listing("Answer", [layer[n][i] for n in layer]))
        for i, e in enumerate(examples)
    ]


class MixtureOfAgents(Method):
    @classmethod
    def check(cls, plan: RunPlan) -> None:
        needs_dev_best(plan, "mixture_of_agents")

    def prepare(self) -> None:
        self.aggregator = dev_best(self.ctx)
        self.ctx.metrics["aggregator"] = self.aggregator

    def predict(self, examples: list[Example]) -> list[Prediction]:
        layers = [initial_answers(self.ctx, self.ctx.pool.names, examples)]
        for _ in range(1, self.params.layers):
            prompts = with_answers(self.params.propose_prompt, examples, layers[-1])
            layers.append(ask_each(self.ctx, {name: prompts for name in self.ctx.pool.names}))
        outputs = ask(self.ctx, self.aggregator, with_answers(self.params.aggregate_prompt, examples, layers[-1]))
        return [
            Prediction(
                output=outputs[i],
                extras={"aggregator": self.aggregator, "layers": [{n: layer[n][i] for n in layer} for layer in layers]},
            )
            for i in range(len(examples))
        ]
