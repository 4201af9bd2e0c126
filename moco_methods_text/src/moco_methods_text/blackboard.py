"""Blackboard (BBMAS): agents take turns on a shared board until enough of them conclude.

Each iteration some agents (seeded) each choose an action, then carry it out; an invalid choice
is asked again with a fresh sample, up to ``CHOICE_RETRIES`` times, then counts as ``execute``.
With more than one conclusion every agent votes. At the iteration limit the last iteration's
entries are the conclusions (the original returned "No conclusion.").
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from moco_core.errors import MocoError
from moco_core.method import Method
from moco_core.types import Example, GenerationRequest, Prediction
from moco_core.validation import RunPlan
from moco_methods_text.prompts import listing
from moco_methods_text.rounds import ask_each, dev_best, needs_dev_best, rng

ACTIONS = ("propose", "execute", "critique", "terminate")
ACTION = re.compile(r"\b(propose|execute|critique|terminate)\b", re.IGNORECASE)
FINAL = re.compile(r"FINAL\s*:\s*(.*)", re.IGNORECASE | re.DOTALL)
NUMBER = re.compile(r"\d+")
CHOICE_RETRIES = 3


def parse_action(reply: str) -> str | None:
    match = ACTION.search(reply)
    return match.group(1).lower() if match else None


def conclusion_of(text: str) -> str:
    """The text after "FINAL:" (the whole text when the marker is missing)."""
    match = FINAL.search(text)
    return (match.group(1) if match else text).strip()


@dataclass
class Board:
    """One example's blackboard: its entries, whether it stopped, and its conclusions."""

    entries: list[dict] = field(default_factory=list)
    stopped_at: int | None = None

    def render(self) -> str:
        if not self.entries:
            return "(empty)"
        return "\n".join(f"[{e['agent']} / {e['action']}] {e['text'].strip()}" for e in self.entries)


class Blackboard(Method):
    @classmethod
    def check(cls, plan: RunPlan) -> None:
        p = plan.params
        agents = len(plan.config.models)
        if p.agents_per_turn > agents:
            raise MocoError(f"params.agents_per_turn: {p.agents_per_turn} exceeds the {agents} agents")
        if p.stop_votes > p.agents_per_turn:
            raise MocoError(
                f"params.stop_votes: {p.stop_votes} can never be reached with agents_per_turn {p.agents_per_turn}"
            )
        if p.same_model:
            needs_dev_best(plan, "blackboard")

    def prepare(self) -> None:
        names = self.ctx.pool.names
        if self.params.same_model:
            best = dev_best(self.ctx)
            self.agents = [(f"agent {k}", best) for k in range(1, len(names) + 1)]
        else:
            self.agents = [(name, name) for name in names]
        self.ctx.metrics["agents"] = {label: model for label, model in self.agents}

    def _request(self, model: str, prompt: str, sample: int = 0) -> GenerationRequest:
        return GenerationRequest(prompt, self.ctx.pool.config(model).system_prompt, sample)

    def _run(self, jobs: list[tuple[int, str, str, int]]) -> list[str]:
        """Answer (key, agent, prompt, sample) jobs, batched per model; replies in job order."""
        by_model: dict[str, list[int]] = {}
        models = dict(self.agents)
        for row, (_, agent, _, _) in enumerate(jobs):
            by_model.setdefault(models[agent], []).append(row)
        texts = ask_each(
            self.ctx,
            {m: [self._request(m, jobs[r][2], jobs[r][3]) for r in rows] for m, rows in by_model.items()},
        )
        replies = [""] * len(jobs)
        for model, rows in by_model.items():
            for row, text in zip(rows, texts[model], strict=True):
                replies[row] = text
        return replies

    def _choose(self, turns: list[tuple[int, str]], examples: list[Example], boards: list[Board]) -> list[str | None]:
        prompts = [
            self.params.choose_prompt.format(agent=agent, question=examples[i].prompt, blackboard=boards[i].render())
            for i, agent in turns
        ]
        actions: list[str | None] = [None] * len(turns)
        for attempt in range(CHOICE_RETRIES + 1):
            open_rows = [r for r, a in enumerate(actions) if a is None]
            if not open_rows:
                break
            replies = self._run([(turns[r][0], turns[r][1], prompts[r], attempt) for r in open_rows])
            for r, reply in zip(open_rows, replies, strict=True):
                actions[r] = parse_action(reply)
        return actions

    def _iterate(self, iteration: int, examples: list[Example], boards: list[Board]) -> None:
        turns = []
        for i, example in enumerate(examples):
            if boards[i].stopped_at is None:
                chosen = rng(self.ctx, "blackboard", example.key, iteration).sample(
                    self.agents, self.params.agents_per_turn
                )
                turns += [(i, label) for label, _ in chosen]
        actions = self._choose(turns, examples, boards)
        jobs = []
        for (i, agent), action in zip(turns, actions, strict=True):
            act = action or "execute"
            prompt = self.params.act_prompt.format(
                agent=agent,
                question=examples[i].prompt,
                blackboard=boards[i].render(),
                action=act,
                instruction=self.params.action_instructions[act],
            )
            jobs.append((i, agent, prompt, 0))
        replies = self._run(jobs)
        terminated = Counter()
        for (i, agent), action, reply in zip(turns, actions, replies, strict=True):
            act = action or "execute"
            boards[i].entries.append(
                {
                    "iteration": iteration,
                    "agent": agent,
                    "action": act,
                    "valid_choice": action is not None,
                    "text": reply,
                }
            )
            terminated[i] += act == "terminate"
        for i, count in terminated.items():
            if count >= self.params.stop_votes:
                boards[i].stopped_at = iteration

    def _conclusions(self, board: Board) -> list[str]:
        last = board.stopped_at if board.stopped_at is not None else board.entries[-1]["iteration"]
        entries = [e for e in board.entries if e["iteration"] == last]
        if board.stopped_at is not None:
            entries = [e for e in entries if e["action"] == "terminate"]
        return list(dict.fromkeys(conclusion_of(e["text"]) for e in entries))

    def _vote(self, examples: list[Example], conclusions: list[list[str]]) -> list[dict[str, int]]:
        contested = [i for i, c in enumerate(conclusions) if len(c) > 1]
        jobs = [
            (
                i,
                agent,
                self.params.vote_prompt.format(
                    question=examples[i].prompt, conclusions=listing("Conclusion", conclusions[i])
                ),
                0,
            )
            for i in contested
            for agent, _ in self.agents
        ]
        replies = self._run(jobs)
        ballots: list[dict[str, int]] = [{} for _ in examples]
        for (i, agent, _, _), reply in zip(jobs, replies, strict=True):
            found = NUMBER.search(reply)
            number = int(found.group()) if found else 0
            if 1 <= number <= len(conclusions[i]):
                ballots[i][agent] = number
        return ballots

    def predict(self, examples: list[Example]) -> list[Prediction]:
        boards = [Board() for _ in examples]
        for iteration in range(1, self.params.max_iterations + 1):
            if all(b.stopped_at is not None for b in boards):
                break
            self._iterate(iteration, examples, boards)
        conclusions = [self._conclusions(b) for b in boards]
        ballots = self._vote(examples, conclusions)
        predictions = []
        for i, board in enumerate(boards):
            counts = Counter(ballots[i].values())
            top = max(counts.values(), default=0)
            chosen = next((k for k in range(1, len(conclusions[i]) + 1) if counts[k] == top), 1) if top else 1
            predictions.append(
                Prediction(
                    output=conclusions[i][chosen - 1],
                    extras={
                        "blackboard": board.entries,
                        "stopped_at": board.stopped_at,
                        "conclusions": conclusions[i],
                        "conclusion_votes": ballots[i],
                    },
                )
            )
        return predictions
