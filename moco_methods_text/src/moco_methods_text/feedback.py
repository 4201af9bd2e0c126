"""Multiagent feedback: each round every member is critiqued by others, then revises.

Critics are drawn at random (seeded by run, example, round and receiver) and see only the
question and the receiver's current answer; the dev-best member summarises the final answers.
"""

from __future__ import annotations

from moco_core.method import Method
from moco_core.types import Example, Prediction
from moco_core.validation import RunPlan
from moco_methods_text.debate import summarize
from moco_methods_text.prompts import listing
from moco_methods_text.rounds import ask_each, dev_best, initial_answers, needs_dev_best, rng


class MultiagentFeedback(Method):
    @classmethod
    def check(cls, plan: RunPlan) -> None:
        needs_dev_best(plan, "multiagent_feedback")

    def prepare(self) -> None:
        self.summarizer = dev_best(self.ctx)
        self.ctx.metrics["summarizer"] = self.summarizer

    def _critics(self, example: Example, round_index: int, receiver: str) -> list[str]:
        others = [n for n in self.ctx.pool.names if n != receiver]
        count = min(self.params.feedback_count, len(others))
        return rng(self.ctx, "feedback", example.key, round_index, receiver).sample(others, count)

    def _round(self, examples: list[Example], previous: dict[str, list[str]], round_index: int) -> tuple[dict, list]:
        names = list(previous)
        assignments = [
            (i, receiver, self._critics(e, round_index, receiver)) for i, e in enumerate(examples) for receiver in names
        ]
        jobs: dict[str, list[tuple[int, str]]] = {name: [] for name in names}
        for i, receiver, critics in assignments:
            for critic in critics:
                jobs[critic].append((i, receiver))
        prompts = {
            critic: [
                self.params.critique_prompt.format(question=examples[i].prompt, answer=previous[receiver][i])
                for i, receiver in rows
            ]
            for critic, rows in jobs.items()
        }
        written = ask_each(self.ctx, prompts)
        critiques: list[dict[str, list[dict[str, str]]]] = [{n: [] for n in names} for _ in examples]
        for critic, rows in jobs.items():
            for (i, receiver), text in zip(rows, written[critic], strict=True):
                critiques[i][receiver].append({"critic": critic, "text": text})
        for per_example in critiques:
            for receiver in names:
                per_example[receiver].sort(key=lambda c: names.index(c["critic"]))
        revise = {
            name: [
                self.params.revise_prompt.format(
                    question=e.prompt,
                    own_answer=previous[name][i],
                    critiques=listing("Feedback", [c["text"] for c in critiques[i][name]]),
                )
                for i, e in enumerate(examples)
            ]
            for name in names
        }
        return ask_each(self.ctx, revise), critiques

    def predict(self, examples: list[Example]) -> list[Prediction]:
        rounds = [initial_answers(self.ctx, self.ctx.pool.names, examples)]
        critiques = []
        for round_index in range(1, self.params.rounds):
            answers, written = self._round(examples, rounds[-1], round_index)
            rounds.append(answers)
            critiques.append(written)
        summaries = summarize(self.ctx, self.summarizer, self.params.summarize_prompt, examples, rounds[-1])
        return [
            Prediction(
                output=summaries[i],
                extras={
                    "summarizer": self.summarizer,
                    "rounds": [{n: r[n][i] for n in r} for r in rounds],
                    "critiques": [c[i] for c in critiques],
                },
            )
            for i in range(len(examples))
        ]
