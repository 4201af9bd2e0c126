"""AggLM: an aggregator trained with GRPO to fuse the members' answers, on hard dev sets.

Every member answers each dev question ``samples`` times; sample s of every member forms one
set. A set is hard when its plurality answer scores wrong. All hard sets and as many easy ones
(seeded) train the aggregator with GRPO, rewarded by the dataset's score of its fused answer.
The trained aggregator is content-addressed by pool, data and task type (the original reused
one across tasks); at test each member answers once (round 0) and the aggregator fuses.
"""

from __future__ import annotations

from moco_core.method import Method, MethodContext
from moco_core.types import Example, Prediction
from moco_core.validation import RunPlan
from moco_methods_text.jobs import add_member, hyperparameters, require_trainable, train
from moco_methods_text.prompts import listing
from moco_methods_text.rounds import (
    ask,
    check_member,
    dev_best,
    initial_answers,
    needs_dev_best,
    plurality,
    require_dev,
    rng,
    text_for,
)

GROUP = 4


class AggLM(Method):
    @classmethod
    def check(cls, plan: RunPlan) -> None:
        require_dev(plan, "agglm", "it trains the aggregator on dev")
        check_member(plan, "aggregator_model", plan.params.aggregator_model)
        needs_dev_best(plan, "agglm", plan.params.aggregator_model)
        require_trainable(plan, "agglm")

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx)
        self.members = list(ctx.pool.names)

    def _prompt(self, example: Example, answers: list[str]) -> str:
        return self.params.aggregate_prompt.format(question=example.prompt, answers=listing("Solution", answers))

    def training_rows(self, base: str) -> tuple[list[dict], dict]:
        dev = self.ctx.dataset.dev
        names = self.members
        k = self.params.samples
        texts = {
            n: [
                [g.text for g in row] for row in self.ctx.pool.samples(n, [e.prompt for e in dev], self.ctx.settings, k)
            ]
            for n in names
        }
        sets = [(i, [texts[n][i][s] for n in names]) for i in range(len(dev)) for s in range(k)]
        majority = []
        for i, answers in sets:
            extracted = [self.ctx.extract(dev[i], t) for t in answers]
            majority.append(text_for(answers, extracted, plurality(extracted)[0]))
        scores = self.ctx.score([dev[i] for i, _ in sets], majority)
        hard = [row for row, score in zip(sets, scores, strict=True) if score < 1.0]
        easy = [row for row, score in zip(sets, scores, strict=True) if score >= 1.0]
        draw = rng(self.ctx, "agglm", "easy")
        kept = hard + [easy[j] for j in sorted(draw.sample(range(len(easy)), min(len(hard), len(easy))))]
        system = self.ctx.pool.config(base).system_prompt
        rows = []
        for i, answers in kept:
            e = dev[i]
            row = {"prompt": self._prompt(e, answers), "question": e.question, "answer": e.answer, "id": e.id}
            row.update({"choices": e.choices} if e.choices else {})
            row.update({"extra": e.extra} if e.extra else {})
            row.update({"system": system} if system else {})
            rows.append(row)
        return rows, {"sets": len(sets), "hard": len(hard), "easy_kept": len(kept) - len(hard)}

    def prepare(self) -> None:
        base = self.params.aggregator_model or dev_best(self.ctx)
        rows, counts = self.training_rows(base)
        hyper = hyperparameters(
            epochs=self.params.epochs,
            lr=self.params.lr,
            weight_decay=self.params.weight_decay,
            num_generations=GROUP,
            batch_size=GROUP,
            grad_accum=GROUP,
            max_completion_length=self.ctx.settings.max_new_tokens,
            temperature=self.ctx.settings.temperature or 1.0,
        )
        reward = {"type": "scorer", "task_type": self.ctx.dataset.task_type}
        folder = train(self.ctx, "grpo", base, rows, hyper, reward, label="aggregator")
        self.aggregator = add_member(self.ctx, base, f"{base}@agglm", folder)
        self.ctx.metrics["agglm"] = {"base": base, "aggregator": self.aggregator, **counts}

    def predict(self, examples: list[Example]) -> list[Prediction]:
        answers = initial_answers(self.ctx, self.members, examples)
        prompts = [self._prompt(e, [answers[n][i] for n in answers]) for i, e in enumerate(examples)]
        outputs = ask(self.ctx, self.aggregator, prompts)
        return [
            Prediction(
                output=outputs[i],
                extras={"answers": {n: answers[n][i] for n in answers}, "aggregator": self.aggregator},
            )
            for i in range(len(examples))
        ]
