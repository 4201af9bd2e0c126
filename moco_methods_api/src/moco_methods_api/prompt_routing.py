"""Prompt routing: a router model reads numbered model descriptions and names one model."""

from __future__ import annotations

import re

from moco_core.errors import MocoError
from moco_core.method import Method, MethodContext
from moco_core.types import Example, Prediction

MODEL_NUMBER = re.compile(r"\bmodel\s*#?\s*(\d+)", re.IGNORECASE)
BARE_NUMBER = re.compile(r"\b(\d+)\b")


def routing_prompt(query: str, descriptions: list[str]) -> str:
    listing = "\n".join(f"Model {i}: {text}" for i, text in enumerate(descriptions, start=1))
    return (
        "Choose the model best suited to answer the query below.\n\n"
        f"{listing}\n\nQuery:\n{query}\n\n"
        "Reply only with the chosen model, as 'Model k'."
    )


def query_text(example: Example) -> str:
    if not example.choices:
        return example.question
    options = "\n".join(f"{key}) {text}" for key, text in example.choices.items())
    return f"{example.question}\n{options}"


def parse_choice(reply: str, names: list[str]) -> int | None:
    """The 0-based model index a router reply names, or None when it names none."""
    for pattern in (MODEL_NUMBER, BARE_NUMBER):
        for match in pattern.finditer(reply):
            number = int(match.group(1))
            if 1 <= number <= len(names):
                return number - 1
    lowered = reply.lower()
    mentioned = [(lowered.find(name.lower()), i) for i, name in enumerate(names) if name.lower() in lowered]
    return min(mentioned)[1] if mentioned else None


class PromptRouting(Method):
    """Unparseable router replies fall back to the dev-best model, and say so in the extras."""

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx)
        names = ctx.pool.names
        if self.params.router is not None and self.params.router not in names:
            raise MocoError(f"params.router: {self.params.router!r} is not a pool model (pool: {', '.join(names)})")

    def prepare(self) -> None:
        self.fallback = self.ctx.dev_best()
        self.router = self.params.router or self.fallback
        self.ctx.metrics["router"] = self.router

    def predict(self, examples: list[Example]) -> list[Prediction]:
        names = self.ctx.pool.names
        descriptions = [self.ctx.pool.description(n) for n in names]
        prompts = [routing_prompt(query_text(e), descriptions) for e in examples]
        replies = [g.text for g in self.ctx.pool.generate(self.router, prompts, self.ctx.settings)]
        choices = [parse_choice(reply, names) for reply in replies]
        chosen = [names[c] if c is not None else self.fallback for c in choices]
        outputs: list[str] = [""] * len(examples)
        for name in dict.fromkeys(chosen):
            rows = [i for i, c in enumerate(chosen) if c == name]
            for i, generation in zip(rows, self.ctx.answer(name, [examples[i] for i in rows]), strict=True):
                outputs[i] = generation.text
        return [
            Prediction(
                output=outputs[i],
                extras={"routed_to": chosen[i], "router_reply": replies[i], "route_parsed": choices[i] is not None},
            )
            for i in range(len(examples))
        ]
