"""What every router shares: the chosen models answer their queries, one batched call each."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from moco_core.method import MethodContext
from moco_core.types import Example, Generation, Prediction
from moco_methods_api.usage import UsageTally, token_count


def answer_routed(ctx: MethodContext, examples: Sequence[Example], chosen: Sequence[str]) -> list[Generation]:
    """Each example answered by its chosen model; each model answers all its rows in one request.

    Log-probs are asked for so the generated tokens can be counted per model.
    """
    results: list[Generation | None] = [None] * len(examples)
    for name in dict.fromkeys(chosen):
        rows = [i for i, c in enumerate(chosen) if c == name]
        for i, generation in zip(rows, ctx.answer(name, [examples[i] for i in rows], logprobs=True), strict=True):
            results[i] = generation
    return [r for r in results if r is not None]


def routed_predictions(
    ctx: MethodContext,
    tally: UsageTally,
    examples: Sequence[Example],
    chosen: Sequence[str],
    extras: Sequence[dict] | None = None,
    routing_tokens: Sequence[Mapping[str, int]] | None = None,
) -> list[Prediction]:
    """Predictions whose extras say which model answered and how many tokens each model wrote:
    the answer, plus ``routing_tokens`` (per example, what a router LM generated to choose)."""
    generations = answer_routed(ctx, examples, chosen)
    predictions = []
    for i, (name, generation) in enumerate(zip(chosen, generations, strict=True)):
        tokens = dict(routing_tokens[i]) if routing_tokens else {}
        tokens[name] = tokens.get(name, 0) + token_count(generation)
        tally.add(name, tokens)
        extra = {"routed_to": name, "tokens_by_model": tokens, **(extras[i] if extras else {})}
        predictions.append(Prediction(output=generation.text, extras=extra))
    return predictions
