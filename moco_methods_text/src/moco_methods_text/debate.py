"""Multiagent debate: members answer, then revise given every other member's previous answer.

After ``rounds`` rounds (round 1 is the plain answer, shared with every method through the
cache), the dev-best member summarises the final answers into one.
"""

from __future__ import annotations

from moco_core.method import Method, MethodContext
from moco_core.types import Example, Prediction
from moco_core.validation import RunPlan
from moco_methods_text.prompts import listing
from moco_methods_text.rounds import ask, ask_each, dev_best, initial_answers, needs_dev_best


def summarize(ctx: MethodContext, summarizer: str, template: str, examples: list[Example], finals: dict) -> list[str]:
    """``summarizer`` turns every member's final answer into one (one batched request)."""
    prompts = [
        template.format(question=e.prompt, answers=listing("Answer", [finals[n][i] for n in finals]))
        for i, e in enumerate(examples)
    ]
    return ask(ctx, summarizer, prompts)


class MultiagentDebate(Method):
    @classmethod
    def check(cls, plan: RunPlan) -> None:
        needs_dev_best(plan, "multiagent_debate")

    def prepare(self) -> None:
        self.summarizer = dev_best(self.ctx)
        self.ctx.metrics["summarizer"] = self.summarizer

    def _revise(self, examples: list[Example], previous: dict[str, list[str]]) -> dict[str, list[str]]:
        names = list(previous)
        prompts = {
            name: [
                self.params.revise_prompt.format(
                    question=e.prompt,
                    own_answer=previous[name][i],
                    other_answers=listing("Agent", [previous[o][i] for o in names if o != name]),
                )
                for i, e in enumerate(examples)
            ]
            for name in names
        }
        return ask_each(self.ctx, prompts)

    def predict(self, examples: list[Example]) -> list[Prediction]:
        rounds = [initial_answers(self.ctx, self.ctx.pool.names, examples)]
        for _ in range(1, self.params.rounds):
            rounds.append(self._revise(examples, rounds[-1]))
        summaries = summarize(self.ctx, self.summarizer, self.params.summarize_prompt, examples, rounds[-1])
        return [
            Prediction(
                output=summaries[i],
                extras={"summarizer": self.summarizer, "rounds": [{n: r[n][i] for n in r} for r in rounds]},
            )
            for i in range(len(examples))
        ]
