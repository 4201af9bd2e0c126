"""Majority vote: plurality over the answers the dataset's extractor finds in each response."""

from __future__ import annotations

import random
from collections import Counter

from moco_core.method import Method
from moco_core.types import Example, Prediction
from moco_core.validation import RunPlan, check_one_answer
from moco_methods_text.rounds import require_dev


class MajorityVote(Method):
    """Votes on extracted answers, not raw text, so "(B)" and "The answer is B" agree."""

    @classmethod
    def check(cls, plan: RunPlan) -> None:
        """``tie_break: dev`` needs a dev split; the extractor is ``Requirements.needs_extractor``, checked by core."""
        if plan.params.tie_break == "dev":
            require_dev(plan, "majority_vote", "tie_break 'dev' ranks members by dev score")
        check_one_answer(plan.config, "params.samples_per_model", plan.params.samples_per_model)

    def prepare(self) -> None:
        """Rank members on dev when there is a dev split (shared dev answers, and the run's dev-best
        single model for comparison); only ``tie_break: dev`` requires one."""
        dev = self.params.tie_break == "dev" or bool(self.ctx.dataset.dev)
        self.ranking = self.ctx.dev_ranking() if dev else self.ctx.pool.names

    def _winner(self, example: Example, votes: Counter, first_voter: dict[str, int]) -> str:
        top = max(votes.values())
        tied = sorted(answer for answer, count in votes.items() if count == top)
        if len(tied) == 1:
            return tied[0]
        if self.params.tie_break == "dev":
            return min(tied, key=lambda answer: first_voter[answer])
        return random.Random(f"{self.ctx.settings.seed}:{example.key}").choice(tied)

    def predict(self, examples: list[Example]) -> list[Prediction]:
        n = self.params.samples_per_model
        prompts = [e.prompt for e in examples]
        texts = {
            name: [[g.text for g in row] for row in self.ctx.pool.samples(name, prompts, self.ctx.settings, n)]
            for name in self.ranking
        }
        first_sample = {name: [row[0] for row in rows] for name, rows in texts.items()}
        scores = {name: self.ctx.score(examples, outs) for name, outs in first_sample.items()}
        predictions = []
        for i, example in enumerate(examples):
            extracted = {name: [self.ctx.extract(example, t) for t in texts[name][i]] for name in self.ranking}
            ballots = [
                (rank, text, answer)
                for rank, name in enumerate(self.ranking)
                for text, answer in zip(texts[name][i], extracted[name], strict=True)
            ]
            votes = Counter(str(answer) for _, _, answer in ballots if answer is not None)
            first_voter: dict[str, int] = {}
            for rank, _, answer in ballots:
                if answer is not None:
                    first_voter.setdefault(str(answer), rank)
            winner = self._winner(example, votes, first_voter) if votes else None
            output = next((text for _, text, a in ballots if a is not None and str(a) == winner), ballots[0][1])
            predictions.append(
                Prediction(
                    output=output,
                    extras={
                        "vote": winner,
                        "votes": dict(votes),
                        "answers": extracted,
                        "model_scores": {name: values[i] for name, values in scores.items()},
                    },
                )
            )
        return predictions
