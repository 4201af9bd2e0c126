"""Prompt routing: a router model reads numbered model descriptions and names one model.

The router is asked to end with a strict final line, "Model k", and that line decides.  A reply
without one is read for mentions: "Model 2.5" is not model 2, a negated mention ("not Model 1",
"Model 1 is not suited") is not a choice, and only an unambiguous remainder counts; anything
else falls back to the dev-best model (the method says so in ``route_parsed``).
"""

from __future__ import annotations

import re

from moco_core.errors import MocoError
from moco_core.method import Method, MethodContext
from moco_core.types import Example, Prediction
from moco_core.validation import RunPlan
from moco_methods_api.params import ROUTING_PROMPT
from moco_methods_api.routing import routed_predictions
from moco_methods_api.usage import UsageTally, token_count

_NUMBER = r"#?\s*(?P<number>\d+)(?![\d]|[.,]\d)"
MODEL_MENTION = re.compile(rf"(?i)\bmodel[\s:_]*{_NUMBER}")
FINAL_LINE = re.compile(
    rf"(?i)^[\s*_`>#-]*(?:(?:final\s+)?(?:answer|choice|selection|decision|model)\s*[:：-]\s*)?[*_`(\[]*"
    rf"(?:model[\s_]*)?[(\[]?{_NUMBER}[*_`)\]]*[\s.!]*$"
)
_NEGATED_BEFORE = re.compile(
    r"(?i)(?:\bnot|n['’]t|\bnever|\bno|\bneither|\bnor|\brather\s+than|\binstead\s+of|\bavoid(?:ing)?|\bexcept|\bover|\bthan|\bunlike)"
    r"\s*(?:\b(?:use|choose|pick|select|go\s+with|the)\s+)?[*_`\"']*$"
)
_NEGATED_AFTER = re.compile(
    r"(?i)^[*_`\"']*\s*(?:is\s+not|isn['’]t|is\s+(?:less|worse|weaker|poorly|unsuited|unsuitable|wrong)|"
    r"(?:would|should|does|could|will)\s*(?:not|n['’]t)|(?:won|can)['’]t|cannot|lacks)\b"
)
_CLAUSE = re.compile(r"[.;!?\n]")
_NEGATED_TAIL = re.compile(r"(?i)[\s,;(\[-]*\b(?:but\s+)?(?:not|rather\s+than|instead\s+of)\b.*$")
"""What follows the choice on a final line like "1, not 3" or "Model 2 (not Model 1)": no choice."""


def routing_prompt(query: str, descriptions: list[str], template: str = ROUTING_PROMPT) -> str:
    """The router's prompt: ``params.routing_prompt`` filled with the query and the numbered models."""
    listing = "\n".join(f"Model {i}: {text}" for i, text in enumerate(descriptions, start=1))
    return template.format(query=query, models=listing, count=len(descriptions))


def query_text(example: Example) -> str:
    if not example.choices:
        return example.question
    options = "\n".join(f"{key}) {text}" for key, text in example.choices.items())
    return f"{example.question}\n{options}"


def _final_line(reply: str, count: int) -> int | None:
    lines = [line for line in reply.splitlines() if line.strip()]
    if not lines:
        return None
    line = _NEGATED_TAIL.sub("", lines[-1])
    match = FINAL_LINE.match(line) if line.strip() else None
    number = int(match.group("number")) if match else 0
    return number - 1 if 1 <= number <= count else None


def _negated(reply: str, start: int, end: int) -> bool:
    """Whether the mention at ``reply[start:end]`` is ruled out within its own clause."""
    clause_start = max((m.end() for m in _CLAUSE.finditer(reply, 0, start)), default=0)
    before = reply[max(clause_start, start - 60) : start]
    return bool(_NEGATED_BEFORE.search(before) or _NEGATED_AFTER.match(reply[end : end + 40]))


def _mentions(reply: str, names: list[str]) -> list[int]:
    """The 0-based indices of the models a reply names and does not rule out, in text order."""
    found: list[tuple[int, int]] = []
    for match in MODEL_MENTION.finditer(reply):
        number = int(match.group("number"))
        if 1 <= number <= len(names) and not _negated(reply, match.start(), match.end()):
            found.append((match.start(), number - 1))
    lowered = reply.lower()
    for index, name in enumerate(names):
        for match in re.finditer(rf"(?<![\w-]){re.escape(name.lower())}(?![\w-])", lowered):
            if not _negated(reply, match.start(), match.end()):
                found.append((match.start(), index))
    return [index for _, index in sorted(found)]


def parse_choice(reply: str, names: list[str]) -> int | None:
    """The 0-based model index a router reply chooses, or None when it chooses none clearly.

    The strict final line ("Model k", or a bare k) wins; then a last line that names one model
    without ruling it out (a router that echoes the list, then concludes); otherwise the one model
    the whole reply names that way; several different models named that way choose none.
    """
    final = _final_line(reply, len(names))
    if final is not None:
        return final
    lines = [line for line in reply.splitlines() if line.strip()]
    for text in (lines[-1:] if len(lines) > 1 else []) + [reply]:
        chosen = set(_mentions(text, names))
        if len(chosen) == 1:
            return chosen.pop()
    return None


class PromptRouting(Method):
    """Unparseable router replies fall back to the dev-best model, and say so in the extras."""

    @classmethod
    def check(cls, plan: RunPlan) -> None:
        names = plan.pool_names
        if plan.params.router is not None and plan.params.router not in names:
            raise MocoError(f"params.router: {plan.params.router!r} is not a pool model (pool: {', '.join(names)})")

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx)
        self.tally = UsageTally(ctx, ctx.pool.names)

    def prepare(self) -> None:
        self.fallback = self.ctx.dev_best()
        self.router = self.params.router or self.fallback
        self.ctx.metrics["router"] = self.router

    def predict(self, examples: list[Example]) -> list[Prediction]:
        names = self.ctx.pool.names
        descriptions = [self.ctx.pool.description(n) for n in names]
        template = self.params.routing_prompt
        prompts = [routing_prompt(query_text(e), descriptions, template) for e in examples]
        routed = self.ctx.pool.generate(self.router, prompts, self.ctx.settings)
        replies = [g.text for g in routed]
        choices = [parse_choice(reply, names) for reply in replies]
        chosen = [names[c] if c is not None else self.fallback for c in choices]
        extras = [{"router_reply": r, "route_parsed": c is not None} for r, c in zip(replies, choices, strict=True)]
        routing_tokens = [{self.router: token_count(g)} for g in routed]
        return routed_predictions(self.ctx, self.tally, examples, chosen, extras, routing_tokens)
