"""Sparta: members duel on dev instructions, peers judge, ratings move, and all learn by DPO.

Per iteration each duel (an instruction, a member, an opponent) gets both members' responses;
every other member scores each response 1-10 (unparseable: 5); judges are weighted by rating;
the ratings update (``sparta_tournament``); every duel with a non-zero weighted gap is a
preference pair, and every member is DPO-trained (LoRA) on all pairs, its previous adapter
merged first. The reported model is the member or adapter of any iteration, base included,
best on dev (the original's lookup missed earlier adapters).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np

from moco_core.method import Method, MethodContext
from moco_core.types import Example, GenerationRequest, Prediction
from moco_core.validation import RunPlan
from moco_methods_text.jobs import add_member, hyperparameters, require_trainable, train
from moco_methods_text.rounds import ask, ask_each, require_dev, rng
from moco_methods_text.sparta_tournament import (
    UNPARSED_SCORE,
    Exp3Leader,
    Ratings,
    choose_opponent,
    parse_score,
    plain_schedule,
)

JUDGE_TOKENS = 64


class Sparta(Method):
    @classmethod
    def check(cls, plan: RunPlan) -> None:
        require_dev(plan, "sparta", "duels, judging and the final choice use dev")
        require_trainable(plan, "sparta")

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx)
        self.members = list(ctx.pool.names)

    def _progress(self, iteration: int) -> float:
        return iteration / max(self.params.iterations - 1, 1)

    def _duels(self, iteration: int, count: int, ratings: Ratings, leader: Exp3Leader | None) -> list[dict]:
        p = self.params
        draw = rng(self.ctx, "sparta", iteration)
        numbers = np.random.default_rng(draw.getrandbits(32))
        if leader is None:
            plan = [(i, member, 1.0) for i, member in plain_schedule(count, self.members, draw)]
        else:
            plan = []
            for d in range(count):
                member = self.members[d % len(self.members)]
                index, probability = leader.draw(member, numbers)
                plan.append((index, member, probability))
        duels = []
        for instruction, member, probability in plan:
            opponent = choose_opponent(
                member,
                self.members,
                ratings,
                draw,
                p.random_match_prob,
                p.opponents,
                p.opponent_selection,
                self._progress(iteration),
                p.schedule_sigma,
            )
            duels.append({"instruction": instruction, "models": [member, opponent], "probability": probability})
        return duels

    def _responses(self, duels: list[dict], agents: dict[str, str], dev: list[Example]) -> None:
        """Both sides of every duel answer, one request per member (repeats get fresh samples)."""
        jobs: dict[str, list[tuple[int, int]]] = {}
        for d, duel in enumerate(duels):
            for side, member in enumerate(duel["models"]):
                jobs.setdefault(member, []).append((d, side))
        for member, rows in jobs.items():
            seen: Counter = Counter()
            requests = []
            system = self.ctx.pool.config(agents[member]).system_prompt
            for d, _ in rows:
                instruction = duels[d]["instruction"]
                requests.append(GenerationRequest(dev[instruction].prompt, system, seen[instruction]))
                seen[instruction] += 1
            for (d, side), text in zip(rows, ask(self.ctx, agents[member], requests), strict=True):
                duels[d].setdefault("responses", ["", ""])[side] = text

    def _judge(self, duels: list[dict], agents: dict[str, str], dev: list[Example]) -> None:
        """Every member outside a duel scores both responses (greedy, short replies)."""
        jobs: dict[str, list[tuple[int, int]]] = {}
        for d, duel in enumerate(duels):
            duel["judges"] = {}
            for judge in self.members:
                if judge not in duel["models"]:
                    jobs.setdefault(judge, []).extend([(d, 0), (d, 1)])
        prompts = {
            agents[judge]: [
                self.params.judge_prompt.format(
                    question=dev[duels[d]["instruction"]].prompt, response=duels[d]["responses"][side]
                )
                for d, side in rows
            ]
            for judge, rows in jobs.items()
        }
        settings = replace(
            self.ctx.settings, temperature=0.0, max_new_tokens=min(JUDGE_TOKENS, self.ctx.settings.max_new_tokens)
        )
        replies = {
            name: [g.text for g in self.ctx.pool.generate(name, rows, settings)]
            for name, rows in prompts.items()
            if rows
        }
        for judge, rows in jobs.items():
            for (d, side), reply in zip(rows, replies[agents[judge]], strict=True):
                score = parse_score(reply)
                duels[d]["judges"].setdefault(judge, [UNPARSED_SCORE, UNPARSED_SCORE])[side] = score or UNPARSED_SCORE

    def _dev_score(self, name: str) -> float:
        dev = self.ctx.dataset.dev
        scores = self.ctx.score(dev, ask(self.ctx, name, [e.prompt for e in dev]))
        return sum(scores) / len(scores)

    def prepare(self) -> None:
        p = self.params
        dev = self.ctx.dataset.dev[: p.instructions]
        ratings = Ratings.start(self.members, p.k_initial, p.k_min, p.decay_rate)
        leader = None
        if p.instruction_selection != "uniform":
            keys = self.members if p.instruction_selection == "exp3_per_model" else ["*"]
            leader = Exp3Leader.start(keys, len(dev), p.exp3_gamma)
        agents = {m: m for m in self.members}
        candidates = [
            {"iteration": 0, "member": m, "model": m, "dev_score": self.ctx.dev_scores()[m]} for m in self.members
        ]
        hyper = hyperparameters(epochs=p.epochs, lr=p.lr)
        history = []
        for iteration in range(p.iterations):
            duels = self._duels(iteration, len(dev), ratings, leader)
            self._responses(duels, agents, dev)
            self._judge(duels, agents, dev)
            pairs = []
            for duel in duels:
                weighted = ratings.weighted_scores({j: tuple(s) for j, s in duel["judges"].items()})
                if weighted is None:
                    continue
                duel["scores"] = weighted
                gap = weighted[0] - weighted[1]
                ratings.update(*duel["models"], gap)
                if gap != 0:
                    win, lose = (0, 1) if gap > 0 else (1, 0)
                    pairs.append((dev[duel["instruction"]].prompt, duel["responses"][win], duel["responses"][lose]))
            if leader is not None:
                leader.update([d for d in duels if "scores" in d], self._progress(iteration))
            trained = []
            if pairs:
                for member in self.members:
                    system = self.ctx.pool.config(member).system_prompt
                    rows = [
                        {"prompt": q, "chosen": c, "rejected": r, **({"system": system} if system else {})}
                        for q, c, r in pairs
                    ]
                    folder = train(self.ctx, "dpo", agents[member], rows, hyper, label=f"{member} dpo {iteration + 1}")
                    agents[member] = add_member(self.ctx, member, f"{member}@sparta{iteration + 1}", folder)
                    trained.append(agents[member])
                    candidates.append(
                        {
                            "iteration": iteration + 1,
                            "member": member,
                            "model": agents[member],
                            "dev_score": self._dev_score(agents[member]),
                        }
                    )
            history.append(
                {
                    "iteration": iteration + 1,
                    "duels": len(duels),
                    "preference_pairs": len(pairs),
                    "ratings": dict(ratings.score),
                    "k": ratings.k,
                    "trained": trained,
                }
            )
        best = max(candidates, key=lambda c: c["dev_score"])  # first of equals: base before adapters
        self.model = best["model"]
        self.ctx.metrics["sparta"] = {"chosen": best, "candidates": candidates, "iterations": history}

    def predict(self, examples: list[Example]) -> list[Prediction]:
        outputs = ask_each(self.ctx, {self.model: [e.prompt for e in examples]})[self.model]
        return [Prediction(output=text, extras={"model": self.model}) for text in outputs]
