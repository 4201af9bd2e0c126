"""Knowledge card: every member writes a knowledge paragraph; the dev-best member answers with them."""

from __future__ import annotations

from moco_core.method import Method
from moco_core.types import Example, Prediction
from moco_core.validation import RunPlan
from moco_methods_text.prompts import listing
from moco_methods_text.rounds import ask, ask_each, dev_best, needs_dev_best


class KnowledgeCard(Method):
    @classmethod
    def check(cls, plan: RunPlan) -> None:
        needs_dev_best(plan, "knowledge_card")

    def prepare(self) -> None:
        self.answerer = dev_best(self.ctx)
        self.ctx.metrics["answerer"] = self.answerer

    def predict(self, examples: list[Example]) -> list[Prediction]:
        names = self.ctx.pool.names
        knowledge_prompts = [self.params.knowledge_prompt.format(question=e.prompt) for e in examples]
        cards = ask_each(self.ctx, {name: knowledge_prompts for name in names})
        writers = [n for n in names if not (self.params.exclude_self and n == self.answerer)]
        prompts = [
            self.params.answer_prompt.format(
                question=e.prompt, knowledge=listing("Knowledge", [cards[n][i] for n in writers])
            )
            for i, e in enumerate(examples)
        ]
        outputs = ask(self.ctx, self.answerer, prompts)
        return [
            Prediction(
                output=outputs[i],
                extras={"answerer": self.answerer, "knowledge": {n: cards[n][i] for n in writers}},
            )
            for i in range(len(examples))
        ]
