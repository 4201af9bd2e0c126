"""mentor_collab: a generator writes word by word; at a ``decision_proportion`` share of words it
consults a mentor.

At each step the generator proposes its next word (its next token, extended by further tokens
until one starts a new word).  With probability ``decision_proportion`` (a draw from the row's
own seeded stream) the mentor proposes its next word from the same text: the same word is
taken; a different one makes each model write a ``patch_size``-token candidate, and a judge
picks one: in mode ``free`` the generator chooses between "(A)" its own and "(B)" the mentor's
continuation (an unparseable verdict keeps its own); in mode ``mlp`` a classifier (``mlp_path``:
a published MentorCollab MLP or a TorchScript module, see ``mentor_mlp``) on the generator's last
hidden state at the decision point keeps the generator's candidate when its score >
``mlp_threshold``.  A row stops at the writer's EOS or at ``max_new_tokens``: words and
candidates are cut to the tokens the row has left.  Both models read the shared text through
the text exchange engine, so lookahead candidates that lose cost no recomputation of the prefix.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import torch

from moco_core.backends.hf import row_seed
from moco_core.engines.attention_masks import check_uneven_members
from moco_core.engines.text_exchange import Choice, ExchangeView, load_text_exchange
from moco_core.errors import MocoError
from moco_core.method import Method, MethodContext
from moco_core.models import adapter_base, resolve_model_path
from moco_core.types import Example, GenerationSettings, Prediction
from moco_core.validation import RunPlan
from moco_methods_api.mentor_mlp import decision_text, load_classifier
from moco_methods_api.params import JUDGE_PROMPT
from moco_methods_api.token_level import (
    cached_decode,
    check_resident,
    exchange_result,
    token_predictions,
)
from moco_methods_api.usage import UsageTally, token_count

GENERATOR, MENTOR = 0, 1
MAX_WORD_TOKENS = 8
VERDICT = re.compile(r"\(?\b([AB])\b\)?")


def judge_prompt(query: str, text: str, own: str, mentor: str, template: str = JUDGE_PROMPT) -> str:
    """Mode free: ``params.judge_prompt`` with the query, the answer so far and both candidates."""
    return template.format(query=query, partial=text, own=own, mentor=mentor)


def parse_verdict(reply: str) -> str | None:
    match = VERDICT.search(reply.strip())
    return match.group(1) if match else None


class Draft(NamedTuple):
    """A lookahead's continuation of one row: its text, tokens, whether it hit EOS, its ids, and
    the row's text in whole characters that ``text`` continues (``text`` then spells out a
    character the row's writer left unfinished)."""

    text: str
    tokens: int
    stop: bool
    ids: list[int]
    prefix: str


class Lookahead:
    """Continuations of several rows by one model from given texts, token by token, row-seeded."""

    def __init__(self, view: ExchangeView, model: int) -> None:
        self.view = view
        self.model = model

    def decode(self, position: int, ids: Sequence[int]) -> str:
        """The text ``ids`` add to the row's text (decoded in context, as the engine writes them)."""
        return self.view.decode_tokens(self.model, ids, after_text=bool(self.view.text(position)))

    def run(
        self, positions: Sequence[int], limit: int, whole_word: bool, budget: Mapping[int, int] | None = None
    ) -> dict[int, Draft]:
        """Per row, its draft.  ``whole_word`` stops before a token that starts a new word;
        ``budget`` caps a row's tokens below ``limit`` (what is left of its ``max_new_tokens``).

        The model reads what the engine would give it had it written the draft's tokens one by
        one: the row's text and the draft in whole characters, then the ids of a character still
        incomplete (the row's own, where its writer stopped midway, then the draft's)."""
        view, model = self.view, self.model
        caps = {p: min(limit, budget[p]) if budget is not None else limit for p in positions}
        ids: dict[int, list[int]] = {p: [] for p in positions}
        start = {p: view.reading(model, p) for p in positions}
        settled: dict[int, tuple[int, str]] = {p: (0, "") for p in positions}
        """Per row, how many of its unsettled ids and draft ids decode to whole characters, and their text."""
        done: dict[int, Draft] = {}

        def finish(p: int, stop: bool) -> None:
            prefix, unsettled = start[p]
            text = view.decode_tokens(model, [*unsettled, *ids[p]], after_text=bool(prefix))
            done[p] = Draft(text, len(ids[p]), stop, ids[p], prefix)

        live = list(positions)
        for _ in range(limit):
            for p in [p for p in live if len(ids[p]) >= caps[p]]:
                finish(p, False)
            live = [p for p in live if p not in done]
            if not live:
                break
            texts = [start[p][0] + settled[p][1] for p in live]
            extras = [[*start[p][1], *ids[p]][settled[p][0] :] for p in live]
            tokens = view.sample(live, view.log_probs(model, live, texts, extras))
            still = []
            for p, token in zip(live, tokens, strict=True):
                if view.is_stop(model, token):
                    finish(p, True)
                    continue
                piece = self.decode(p, [token])
                if whole_word and ids[p] and piece[:1].isspace():
                    finish(p, False)
                    continue
                ids[p].append(token)
                read = [*start[p][1], *ids[p]]
                text = view.decode_tokens(model, read, after_text=bool(start[p][0]))
                if not view.midway(model, read, text):
                    settled[p] = (len(read), text)
                still.append(p)
            live = still
        for p in live:
            finish(p, False)
        return done


class MentorPolicy:
    def __init__(
        self,
        ctx: MethodContext,
        generator: str,
        queries: Sequence[str],
        proportion: float,
        patch: int,
        classifier: Callable[[torch.Tensor], torch.Tensor] | None = None,
        threshold: float = 0.5,
        judge_template: str = JUDGE_PROMPT,
    ) -> None:
        self.ctx = ctx
        self.generator = generator
        self.queries = queries
        self.proportion = proportion
        self.patch = patch
        self.classifier = classifier
        self.threshold = threshold
        self.judge_template = judge_template
        self.log: dict[int, list[dict]] = {}
        self.decisions: dict[int, int] = {}
        self.generated: dict[int, list[int]] = {}
        """Per row, tokens each model generated: every lookahead (words and candidates, losing ones
        too) and the generator's verdicts in mode free."""

    def _spent(self, view: ExchangeView, position: int, model: int, tokens: int) -> None:
        counts = self.generated.setdefault(view.prompt_index(position), [0, 0])
        counts[model] += tokens

    def _judge(self, view: ExchangeView, rows: list[int], own: dict, mentor: dict) -> dict[int, bool]:
        """Per row: True when the judge prefers the mentor's candidate."""
        if self.classifier is not None:
            texts = [decision_text(own[p].prefix, own[p].text, mentor[p].text) for p in rows]
            hidden = view.hidden(GENERATOR, rows, texts)
            with torch.no_grad():
                scores = torch.sigmoid(self.classifier(hidden.float().cpu()).reshape(-1).float()).tolist()
            return {p: score <= self.threshold for p, score in zip(rows, scores, strict=True)}
        prompts = [
            judge_prompt(
                self.queries[view.prompt_index(p)], own[p].prefix, own[p].text, mentor[p].text, self.judge_template
            )
            for p in rows
        ]
        greedy = GenerationSettings(max_new_tokens=4, temperature=0.0, top_p=1.0, seed=self.ctx.settings.seed)
        replies = self.ctx.pool.generate(self.generator, prompts, greedy)
        for p, reply in zip(rows, replies, strict=True):
            self._spent(view, p, GENERATOR, token_count(reply))
        return {p: parse_verdict(r.text) == "B" for p, r in zip(rows, replies, strict=True)}

    def __call__(self, view: ExchangeView) -> dict[int, Choice]:
        active = list(view.active)
        for p in active:
            self.decisions[view.prompt_index(p)] = self.decisions.get(view.prompt_index(p), 0) + 1
        budget = {p: self.ctx.settings.max_new_tokens - view.generated(p) for p in active}
        words = self._ahead(view, GENERATOR, active, MAX_WORD_TOKENS, True, budget)
        consult = [p for p in active if view.uniform(p) < self.proportion]
        choices = {p: _choice(GENERATOR, words[p]) for p in active}
        if not consult:
            return choices
        mentor_words = self._ahead(view, MENTOR, consult, MAX_WORD_TOKENS, True, budget)
        differ = [p for p in consult if mentor_words[p].text != words[p].text]
        for p in consult:
            if p not in differ:
                self._record(view, p, agreed=True, chosen=GENERATOR)
        if not differ:
            return choices
        own = self._ahead(view, GENERATOR, differ, self.patch, False, budget)
        mentor = self._ahead(view, MENTOR, differ, self.patch, False, budget)
        prefers_mentor = self._judge(view, differ, own, mentor)
        for p in differ:
            model, draft = (MENTOR, mentor[p]) if prefers_mentor[p] else (GENERATOR, own[p])
            choices[p] = _choice(model, draft)
            self._record(view, p, agreed=False, chosen=model)
        return choices

    def _ahead(
        self, view: ExchangeView, model: int, rows: list[int], limit: int, whole_word: bool, budget: dict[int, int]
    ) -> dict[int, Draft]:
        found = Lookahead(view, model).run(rows, limit, whole_word, budget)
        for p, draft in found.items():
            self._spent(view, p, model, draft.tokens)
        return found

    def _record(self, view: ExchangeView, position: int, agreed: bool, chosen: int) -> None:
        event = {"at_token": view.generated(position), "agreed": agreed, "chosen": chosen}
        self.log.setdefault(view.prompt_index(position), []).append(event)


def _choice(model: int, draft: Draft) -> Choice:
    """Write the draft's tokens as drawn (a word cut midway through a character goes on from its bytes)."""
    return Choice(model, text=draft.text, tokens=draft.tokens, stop=draft.stop, ids=draft.ids)


def hidden_size(path: str, name: str) -> int:
    """The width of member ``name``'s hidden states, from the config at ``path`` (nothing is loaded)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(adapter_base(path) or path)
    except (OSError, ValueError) as exc:
        raise MocoError(f"models: cannot read {name}'s config for mode mlp ({str(exc).splitlines()[0]})") from None
    size = getattr(config, "hidden_size", None) or getattr(getattr(config, "text_config", None), "hidden_size", None)
    if not isinstance(size, int):
        raise MocoError(f"models: {name}'s config names no hidden_size, which mode mlp needs")
    return size


class MentorCollab(Method):
    @classmethod
    def check(cls, plan: RunPlan) -> None:
        """The MLP judge is read and probed now (it is small), so a wrong file never waits for generation."""
        check_resident(plan, [m.path for m in plan.config.models], "mentor_collab")
        check_uneven_members(plan.config.models, "mentor_collab")
        mode, path = plan.params.mode, plan.params.mlp_path
        if mode != "mlp":
            for field in ("mlp_path", "mlp_threshold"):
                if field in plan.params.model_fields_set:
                    raise MocoError(f"params.{field}: only used with mode mlp, not {mode!r}")
            return
        if not path:
            raise MocoError("params.mlp_path: required when mode is mlp (a MentorCollab MLP or TorchScript file)")
        if not Path(path).expanduser().is_file():
            raise MocoError(f"params.mlp_path: {Path(path).expanduser()} is not a file")
        generator = plan.config.models[0]
        load_classifier(path, hidden_size(resolve_model_path(generator.path), generator.name), generator.name)

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx)
        self.names = ctx.pool.names
        self.tally = UsageTally(ctx, self.names)
        self.classifier: Callable[[torch.Tensor], torch.Tensor] | None = None
        self.mlp_digest: str | None = None
        if self.params.mode == "mlp":
            generator = self.names[0]
            width = hidden_size(ctx.pool.resolved_path(generator), generator)
            self.classifier = load_classifier(self.params.mlp_path, width, generator)
            self.mlp_digest = hashlib.sha256(Path(self.params.mlp_path).expanduser().read_bytes()).hexdigest()

    def predict(self, examples: list[Example]) -> list[Prediction]:
        pool, settings, params = self.ctx.pool, self.ctx.settings, self.params
        classifier = self.classifier

        def decode(prompts: list[str]) -> list[dict]:
            decoder = load_text_exchange(pool, self.names, hidden_states=[GENERATOR] if classifier else [])
            rendered = decoder.render(prompts, [pool.config(n).system_prompt for n in self.names])
            seeds = [row_seed(settings.seed, pool.request(self.names[0], p)) for p in prompts]
            policies: list[MentorPolicy] = []

            def factory() -> MentorPolicy:
                policies.append(
                    MentorPolicy(
                        self.ctx,
                        self.names[0],
                        prompts,
                        params.decision_proportion,
                        params.patch_size,
                        classifier,
                        params.mlp_threshold,
                        params.judge_prompt,
                    )
                )
                return policies[-1]

            results = decoder.decode(rendered, factory, settings, seeds)
            logs = {i: events for policy in policies for i, events in policy.log.items()}
            decisions = {i: n for policy in policies for i, n in policy.decisions.items()}
            generated = {i: n for policy in policies for i, n in policy.generated.items()}
            out = []
            for i, result in enumerate(results):
                events = [{**e, "chosen": self.names[e["chosen"]]} for e in logs.get(i, [])]
                row = exchange_result(result, self.names, {"words": decisions.get(i, 0), "consulted": events})
                row["generated_tokens_by_model"] = dict(zip(self.names, generated.get(i, [0, 0]), strict=True))
                out.append(row)
            return out

        key = {
            "decision_proportion": params.decision_proportion,
            "patch_size": params.patch_size,
            "mode": params.mode,
            "mlp": self.mlp_digest,
            "mlp_threshold": params.mlp_threshold if params.mode == "mlp" else None,
            "judge_prompt": params.judge_prompt if params.mode == "free" else None,
            "words": "in context, within max_new_tokens, drafts counted",  # older results are not served
        }
        results = cached_decode(self.ctx, "mentor_collab", self.names, key, [e.prompt for e in examples], decode)
        return token_predictions(self.tally, examples, results, "consultations")
