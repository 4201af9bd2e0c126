"""LLM-Blender: a ranker compares every pair of answers, a fuser fuses the top-k, best first.

Each pair (i < j) is compared once with i shown as A (``both_orders`` adds j-vs-i); a win is 1,
an unparseable verdict 0.5 to each. The verdict is parsed strictly: the original took the first
A or B anywhere in the reply, so "Candidate B is better" read as A.
"""

from __future__ import annotations

import re
from itertools import combinations
from typing import Any

from moco_core.method import Method, MethodContext
from moco_core.types import Example, Prediction
from moco_core.validation import RunPlan
from moco_methods_text.jobs import add_member, hyperparameters, require_trainable, train
from moco_methods_text.prompts import listing
from moco_methods_text.rounds import ask, check_member, dev_best, initial_answers, needs_dev_best, require_dev

VERDICT = re.compile(
    r"^(?:(?:answer|verdict|winner|choice)\s*:\s*)?(?:candidate|response|option)?\s*\(?([AB])\)?"
    r"(?:\s+is\s+(?:better|the\s+better\s+(?:one|answer|candidate)))?\s*[.!]?$",
    re.IGNORECASE,
)


def parse_verdict(reply: str) -> str | None:
    """'A' or 'B' when the reply names exactly one candidate as its whole answer, else None."""
    match = VERDICT.match(reply.strip().strip("*").strip())
    return match.group(1).upper() if match else None


def gold_text(example: Example) -> str:
    """The fuser's training target: the gold answer (multiple choice: the option text)."""
    answer: Any = example.answer
    if isinstance(answer, list):
        answer = answer[0] if answer else ""
    if example.choices and str(answer) in example.choices:
        return example.choices[str(answer)]
    return str(answer)


class LLMBlender(Method):
    @classmethod
    def check(cls, plan: RunPlan) -> None:
        p = plan.params
        check_member(plan, "ranker_model", p.ranker_model)
        check_member(plan, "fuser_model", p.fuser_model)
        needs_dev_best(plan, "llm_blender", p.ranker_model, p.fuser_model)
        if p.train_ranker or p.train_fuser:
            require_dev(plan, "llm_blender", "train_ranker and train_fuser train on dev")
            require_trainable(plan, "llm_blender")

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx)
        self.members = list(ctx.pool.names)

    def prepare(self) -> None:
        chosen = (self.params.ranker_model, self.params.fuser_model)
        fallback = dev_best(self.ctx) if None in chosen else None
        self.ranker = self.params.ranker_model or fallback
        self.fuser = self.params.fuser_model or fallback
        if self.params.train_ranker or self.params.train_fuser:
            self._train()
        self.ctx.metrics.update({"ranker": self.ranker, "fuser": self.fuser})

    def _train(self) -> None:
        """SFT the ranker on dev pairs whose scores differ, the fuser on the dev top-k with the gold target."""
        dev, names = self.ctx.dataset.dev, self.members
        outputs = {n: self.ctx.dev_outputs(n) for n in names}
        scores = {n: self.ctx.score(dev, outputs[n]) for n in names}
        order = self.ctx.dev_ranking()
        hyper = hyperparameters(epochs=self.params.epochs, lr=self.params.lr)
        if self.params.train_ranker:
            rows = [
                {
                    "prompt": self.params.rank_prompt.format(
                        question=e.prompt, candidate_a=outputs[names[a]][i], candidate_b=outputs[names[b]][i]
                    ),
                    "completion": "A" if scores[names[a]][i] > scores[names[b]][i] else "B",
                }
                for i, e in enumerate(dev)
                for a, b in self._pairs(len(names))
                if scores[names[a]][i] != scores[names[b]][i]
            ]
            if rows:
                folder = train(self.ctx, "sft", self.ranker, rows, hyper, label="ranker")
                self.ranker = add_member(self.ctx, self.ranker, f"{self.ranker}@ranker", folder)
        if self.params.train_fuser:
            rows = []
            for i, e in enumerate(dev):
                top = sorted(order, key=lambda n, i=i: -scores[n][i])[: self.params.top_k]
                candidates = listing("Candidate", [outputs[n][i] for n in top])
                rows.append(
                    {
                        "prompt": self.params.fuse_prompt.format(question=e.prompt, candidates=candidates),
                        "completion": gold_text(e),
                    }
                )
            folder = train(self.ctx, "sft", self.fuser, rows, hyper, label="fuser")
            self.fuser = add_member(self.ctx, self.fuser, f"{self.fuser}@fuser", folder)

    def _pairs(self, n: int) -> list[tuple[int, int]]:
        pairs = list(combinations(range(n), 2))
        return pairs + [(j, i) for i, j in pairs] if self.params.both_orders else pairs

    def predict(self, examples: list[Example]) -> list[Prediction]:
        names = self.members
        answers = initial_answers(self.ctx, names, examples)
        pairs = self._pairs(len(names))
        prompts = [
            self.params.rank_prompt.format(
                question=e.prompt, candidate_a=answers[names[a]][i], candidate_b=answers[names[b]][i]
            )
            for i, e in enumerate(examples)
            for a, b in pairs
        ]
        replies = ask(self.ctx, self.ranker, prompts)
        ranked, comparisons = [], []
        for i in range(len(examples)):
            wins = dict.fromkeys(names, 0.0)
            rows = []
            for (a, b), reply in zip(pairs, replies[i * len(pairs) : (i + 1) * len(pairs)], strict=True):
                verdict = parse_verdict(reply)
                if verdict is None:
                    wins[names[a]] += 0.5
                    wins[names[b]] += 0.5
                else:
                    wins[names[a] if verdict == "A" else names[b]] += 1.0
                rows.append({"a": names[a], "b": names[b], "verdict": verdict, "reply": reply})
            ranked.append(sorted(names, key=lambda n, w=wins: -w[n]))
            comparisons.append((wins, rows))
        top = [order[: self.params.top_k] for order in ranked]
        fuse_prompts = [
            self.params.fuse_prompt.format(
                question=e.prompt, candidates=listing("Candidate", [answers[n][i] for n in top[i]])
            )
            for i, e in enumerate(examples)
        ]
        fused = ask(self.ctx, self.fuser, fuse_prompts)
        return [
            Prediction(
                output=fused[i],
                extras={
                    "answers": {n: answers[n][i] for n in names},
                    "ranking": ranked[i],
                    "wins": comparisons[i][0],
                    "comparisons": comparisons[i][1],
                    "fused": top[i],
                    "ranker": self.ranker,
                    "fuser": self.fuser,
                },
            )
            for i in range(len(examples))
        ]
