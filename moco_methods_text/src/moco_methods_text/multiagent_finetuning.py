"""Multiagent finetuning: every member gets a generation agent and a critic agent, trained on dev debates.

On dev the current agents debate for ``rounds``; the consensus is the plurality of the final
round's extracted answers. A member's generation agent learns its own initial answers that
match the consensus; its critic learns, where its final answer matches, to answer the final
round's prompt (the one used at test; the original trained on another format) with the most
common final text among the agreeing members, mixing initially-wrong and initially-right
examples as ``w`` : 1 − ``w``. At test, generation agents answer round 1, critics revise, and
the final round's plurality wins.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from moco_core.method import Method, MethodContext
from moco_core.types import Example, Prediction
from moco_core.validation import RunPlan
from moco_methods_text.jobs import add_member, hyperparameters, require_trainable, train
from moco_methods_text.prompts import listing
from moco_methods_text.rounds import ask, plurality, require_dev, rng, text_for


@dataclass
class FinetuningData:
    """Per member: generation rows and critic rows (initially wrong, initially right), and the consensus."""

    generation: dict[str, list[dict]] = field(default_factory=dict)
    critic_wrong: dict[str, list[dict]] = field(default_factory=dict)
    critic_right: dict[str, list[dict]] = field(default_factory=dict)
    consensus: list[str | None] = field(default_factory=list)


def build_data(
    extract: Callable[[Example, str], Any],
    examples: Sequence[Example],
    rounds: list[dict[str, list[str]]],
    final_prompts: dict[str, list[str]],
    systems: dict[str, str | None],
) -> FinetuningData:
    """Training rows from one debate over ``examples`` (``rounds[r][member][i]`` are the texts)."""
    names = list(rounds[0])
    data = FinetuningData({n: [] for n in names}, {n: [] for n in names}, {n: [] for n in names})
    for i, example in enumerate(examples):
        first = {n: extract(example, rounds[0][n][i]) for n in names}
        final = {n: extract(example, rounds[-1][n][i]) for n in names}
        consensus, _ = plurality([final[n] for n in names])
        data.consensus.append(consensus)
        if consensus is None:
            continue
        agreeing = [n for n in names if final[n] is not None and str(final[n]) == consensus]
        target = Counter(rounds[-1][n][i] for n in agreeing).most_common(1)[0][0]
        for n in names:
            system = {"system": systems[n]} if systems.get(n) else {}
            if first[n] is not None and str(first[n]) == consensus:
                data.generation[n].append({"prompt": example.prompt, "completion": rounds[0][n][i], **system})
            if n in agreeing:
                row = {"prompt": final_prompts[n][i], "completion": target, **system}
                right = first[n] is not None and str(first[n]) == consensus
                (data.critic_right if right else data.critic_wrong)[n].append(row)
    return data


def mix(wrong: list[dict], right: list[dict], w: float, draw: random.Random) -> list[dict]:
    """The largest seeded subset holding initially-wrong : initially-right at ``w`` : 1 − ``w``.

    When one side is empty the other is used whole (the ratio cannot hold either way).
    """
    if not wrong or not right:
        return wrong + right
    if w <= 0 or w >= 1:
        return wrong if w >= 1 else right
    total = min(len(wrong) / w, len(right) / (1 - w))
    keep_wrong, keep_right = max(1, round(total * w)), max(1, round(total * (1 - w)))
    chosen = draw.sample(range(len(wrong)), min(keep_wrong, len(wrong)))
    kept = [wrong[k] for k in sorted(chosen)]
    chosen = draw.sample(range(len(right)), min(keep_right, len(right)))
    return kept + [right[k] for k in sorted(chosen)]


class MultiagentFinetuning(Method):
    @classmethod
    def check(cls, plan: RunPlan) -> None:
        require_dev(plan, "multiagent_finetuning", "it trains on dev debates")
        require_trainable(plan, "multiagent_finetuning")

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx)
        names = list(ctx.pool.names)
        self.members = names
        self.generators = dict(zip(names, names, strict=True))
        self.critics = dict(zip(names, names, strict=True))

    def _revise_prompts(self, examples: Sequence[Example], previous: dict[str, list[str]]) -> dict[str, list[str]]:
        names = list(previous)
        return {
            n: [
                self.params.revise_prompt.format(
                    question=e.prompt,
                    own_answer=previous[n][i],
                    other_answers=listing("Agent", [previous[o][i] for o in names if o != n]),
                )
                for i, e in enumerate(examples)
            ]
            for n in names
        }

    def debate(self, examples: Sequence[Example]) -> tuple[list[dict[str, list[str]]], dict[str, list[str]]]:
        """Every round's texts per member, and the prompts of the last round (critics' input)."""
        names = self.members
        rounds = [{n: ask(self.ctx, self.generators[n], [e.prompt for e in examples]) for n in names}]
        prompts: dict[str, list[str]] = {}
        for _ in range(1, self.params.rounds):
            prompts = self._revise_prompts(examples, rounds[-1])
            rounds.append({n: ask(self.ctx, self.critics[n], prompts[n]) for n in names})
        return rounds, prompts

    def prepare(self) -> None:
        dev = self.ctx.dataset.dev
        originals = self.members
        systems = {n: self.ctx.pool.config(n).system_prompt for n in originals}
        hyper = hyperparameters(epochs=self.params.epochs, lr=self.params.lr)
        history = []
        for iteration in range(1, self.params.iterations + 1):
            rounds, prompts = self.debate(dev)
            data = build_data(self.ctx.extract, dev, rounds, prompts, systems)
            trained = {}
            for n in originals:
                critic_rows = mix(
                    data.critic_wrong[n], data.critic_right[n], self.params.w, rng(self.ctx, "maft", iteration, n)
                )
                for role, rows, agents in (
                    ("gen", data.generation[n], self.generators),
                    ("critic", critic_rows, self.critics),
                ):
                    if rows:
                        folder = train(self.ctx, "sft", agents[n], rows, hyper, label=f"{n} {role} {iteration}")
                        agents[n] = add_member(self.ctx, n, f"{n}@{role}{iteration}", folder)
                    trained[f"{n} {role}"] = len(rows)
            history.append(
                {"iteration": iteration, "rows": trained, "consensus_found": sum(c is not None for c in data.consensus)}
            )
        self.ctx.metrics["finetuning"] = {"iterations": history, "generators": self.generators, "critics": self.critics}

    def predict(self, examples: list[Example]) -> list[Prediction]:
        rounds, _ = self.debate(examples)
        predictions = []
        for i, example in enumerate(examples):
            finals = [rounds[-1][n][i] for n in rounds[-1]]
            answers = [self.ctx.extract(example, t) for t in finals]
            winner, votes = plurality(answers)
            predictions.append(
                Prediction(
                    output=text_for(finals, answers, winner),
                    extras={"vote": winner, "votes": votes, "rounds": [{n: r[n][i] for n in r} for r in rounds]},
                )
            )
        return predictions
