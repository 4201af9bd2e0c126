"""The example method: every model answers, and the longest response that states an answer wins.

It is deliberately simple (a length heuristic, not a published method) so that what remains is
the shape every moco method shares: a ``Method`` subclass whose ``prepare`` does the dev-split
work once and whose ``predict`` answers a chunk of test examples, asking the pool for one
batched call per model.  A method never loads a model, writes a file or picks a backend: the
``MethodContext`` (``self.ctx``) does all of that, caches every generation and makes runs
resumable, so the method only decides *what* to ask and *which* answer to return.
"""

from __future__ import annotations

from moco_core.method import Method, MethodContext
from moco_core.types import Example, Prediction


class LongestAnswer(Method):
    """Returns the longest response among those whose answer the task's extractor can find.

    Responses without an extractable answer (rambling, cut off) only compete when no model
    stated one, or when the task type has no extractor (free-form generation).  Ties go to the
    model listed first: pool order, or dev rank when ``top_k`` is set.
    """

    def __init__(self, ctx: MethodContext) -> None:
        # ``self.ctx`` and ``self.params`` (a validated ``LongestAnswerParams``) are set here.
        # Check the dataset and pool here and raise ``moco_core.errors.MocoError`` for anything
        # this method cannot handle: moco prints it as one line instead of a traceback.
        super().__init__(ctx)
        self.competitors: list[str] = []

    def prepare(self) -> None:
        # Called once per run, before any test example.  ``dev_ranking`` makes every model answer
        # the dev split and scores it, so only pay for it when ``top_k`` asks for a ranking.
        if self.params.top_k is None:
            self.competitors = list(self.ctx.pool.names)
        else:
            self.competitors = self.ctx.dev_ranking()[: self.params.top_k]
        # Anything put in ``ctx.metrics`` is written to metrics.json next to the score.
        self.ctx.metrics["competitors"] = self.competitors

    def _choose(self, example: Example, responses: dict[str, str]) -> str:
        candidates = list(responses)
        # ``ctx.scorer.extract`` is None for task types without a definitive answer;
        # ``ctx.extract`` returns the comparable answer in a response, or None when it finds none.
        if self.ctx.scorer.extract is not None:
            answered = [name for name in candidates if self.ctx.extract(example, responses[name]) is not None]
            candidates = answered or candidates
        # ``max`` keeps the first of equal lengths, which makes ties follow the competitor order.
        return max(candidates, key=lambda name: len(responses[name].strip()))

    def predict(self, examples: list[Example]) -> list[Prediction]:
        # Called with chunks of the test split, possibly several times per run; it must return
        # exactly one ``Prediction`` per example, in order.  ``ctx.answer`` is one batched call
        # per model over the whole chunk: never loop over examples calling the pool one by one.
        texts = {name: [g.text for g in self.ctx.answer(name, examples)] for name in self.competitors}
        # Scoring each model's own responses costs no generation and lets moco report every
        # model's test score (``model_test_scores`` in metrics.json) next to the method's.
        scores = {name: self.ctx.score(examples, outputs) for name, outputs in texts.items()}
        predictions = []
        for i, example in enumerate(examples):
            responses = {name: texts[name][i] for name in self.competitors}
            chosen = self._choose(example, responses)
            predictions.append(
                Prediction(
                    # ``output`` is what moco scores; ``extras`` are copied into this example's
                    # line of predictions.jsonl, so record whatever explains the decision.
                    output=responses[chosen],
                    extras={
                        "chosen_model": chosen,
                        "lengths": {name: len(text.strip()) for name, text in responses.items()},
                        "model_scores": {name: values[i] for name, values in scores.items()},
                    },
                )
            )
        return predictions
