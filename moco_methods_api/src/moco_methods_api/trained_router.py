"""trained_router: a router LM, LoRA-SFT'ed on dev, names the member that answers each query.

Each dev query is labelled with the member that scored best on it (ties: the ``reward_model``
score of the tied answers when given, then the lower pool index); the router learns to answer
"Model k" (1-based) from the query, plus the numbered descriptions when every member has one.
Training goes through the training hook with the original's LoRA setup for routers (r 64,
cosine schedule, warmup 0.1, batch 1 x accumulation 32, max length 4096); the hook keys its
result by base model, rows and hyperparameters, so the same pool, dev data and params train
once.  An unparseable router reply falls back to the dev-best member.
"""

from __future__ import annotations

import re

from moco_core.config import ModelConfig, ScoringConfig
from moco_core.errors import MocoError
from moco_core.method import Method, MethodContext
from moco_core.training import ORIGINAL_LORA
from moco_core.types import Example, GenerationSettings, Prediction, TrainingJob
from moco_core.validation import RunPlan, check_model_param, validate_as_config
from moco_methods_api.params import ROUTER_PROMPT
from moco_methods_api.routing import routed_predictions
from moco_methods_api.usage import UsageTally, token_count

ROUTER = "trained-router"
ROUTER_LORA = {**ORIGINAL_LORA, "grad_accum": 32}
"""The original's LoRA setup for routers; ``params.hyperparameters`` overrides any of it."""
MODEL_NUMBER = re.compile(r"\bmodel\s*#?\s*(\d+)", re.IGNORECASE)


def router_prompt(example: Example, descriptions: list[str], template: str = ROUTER_PROMPT) -> str:
    """What the router reads: ``params.router_prompt`` with the query and, when every member has a
    description, a "Models:" block numbering them (else ``{models}`` is empty)."""
    query = example.question
    if example.choices:
        query += "\n" + "\n".join(f"{key}) {text}" for key, text in example.choices.items())
    listing = "\n".join(f"Model {i}: {text}" for i, text in enumerate(descriptions, start=1))
    models = f"Models:\n{listing}\n\n" if listing else ""
    return template.format(query=query, models=models)


def parse_route(reply: str, count: int) -> int | None:
    """The first "Model k" naming a pool member (0-based), or None."""
    for match in MODEL_NUMBER.finditer(reply):
        number = int(match.group(1))
        if 1 <= number <= count:
            return number - 1
    return None


def best_member(scores: list[float], tie_break: list[float] | None = None) -> int:
    """Index of the best score; ties by ``tie_break`` (higher wins) when given, then lower index."""
    top = max(scores)
    tied = [i for i, s in enumerate(scores) if s == top]
    if tie_break is not None and len(tied) > 1:
        return max(tied, key=lambda i: (tie_break[i], -i))
    return tied[0]


def check_hyperparameters(hyperparameters: dict) -> None:
    """The router's training settings, checked as the training job will check them (epochs and lr are params)."""
    from moco_core.training import Hyperparameters

    for key in ("epochs", "lr"):
        if key in hyperparameters:
            raise MocoError(f"params.hyperparameters.{key}: set params.{key} instead")
    validate_as_config(Hyperparameters, hyperparameters, "params.hyperparameters")


def check_router_backend(plan: RunPlan, router: str) -> None:
    """The router is LoRA-trained from its member's weights, so its backend must hold them and its
    path must name them (a model folder or hub id, not an API model name)."""
    from moco_core.plugins import get_registry

    i = plan.pool_names.index(router)
    backend = plan.config.models[i].backend
    spec = get_registry().backends.get(backend)
    if spec is not None and not (spec.weights and spec.local_paths):
        raise MocoError(
            f"models[{i}].backend: trained_router trains {router} as its router from its weights; "
            f"the {backend} backend serves only text (set params.router_base_model to a local member)"
        )


def router_name(names: list[str]) -> str:
    """The router LM's pool name: ``trained-router``, or a free variant when a member already has it."""
    name, n = ROUTER, 2
    while name in names:
        name, n = f"{ROUTER}-{n}", n + 1
    return name


class TrainedRouter(Method):
    @classmethod
    def check(cls, plan: RunPlan) -> None:
        names = plan.pool_names
        base = plan.params.router_base_model
        if base is not None and base not in names:
            raise MocoError(f"params.router_base_model: {base!r} is not a pool model (pool: {', '.join(names)})")
        if not plan.dataset.dev:
            raise MocoError("dataset: trained_router labels and trains on the dev split; give the data a dev split")
        if plan.params.reward_model is not None:
            check_model_param("params.reward_model", plan.params.reward_model)
        check_hyperparameters(plan.params.hyperparameters)
        check_router_backend(plan, base or names[0])

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx)
        self.names = ctx.pool.names
        self.router = router_name(self.names)
        self.tally = UsageTally(ctx, self.names, helpers=[self.router])

    def _descriptions(self) -> list[str]:
        descriptions = [self.ctx.pool.description(n) for n in self.names]
        return descriptions if all(d.strip() for d in descriptions) else []

    def _rewards(self, examples: list[Example], outputs: list[str]) -> list[float]:
        options = (self.ctx.scoring or ScoringConfig()).model_copy(update={"reward_model": self.params.reward_model})
        scores = self.ctx.hook.moco_score(task_type="reward_model", examples=examples, outputs=outputs, options=options)
        if scores is None:
            raise MocoError("params.reward_model: no reward-model scorer is installed (moco-evals)")
        return list(scores)

    def _labels(self) -> list[int]:
        dev = self.ctx.dataset.dev
        per_model = [self.ctx.score(dev, self.ctx.dev_outputs(n)) for n in self.names]
        labels = []
        for i, example in enumerate(dev):
            scores = [values[i] for values in per_model]
            rewards = None
            if self.params.reward_model and scores.count(max(scores)) > 1:
                rewards = self._rewards([example] * len(self.names), [self.ctx.dev_outputs(n)[i] for n in self.names])
            labels.append(best_member(scores, rewards))
        return labels

    def prepare(self) -> None:
        self.fallback = self.ctx.dev_best()
        descriptions = self._descriptions()
        labels = self._labels()
        rows = [
            {"prompt": router_prompt(e, descriptions, self.params.router_prompt), "completion": f"Model {k + 1}"}
            for e, k in zip(self.ctx.dataset.dev, labels, strict=True)
        ]
        base = self.params.router_base_model or self.names[0]
        job = TrainingJob(
            kind="sft",
            base_model=self.ctx.pool.resolved_path(base),
            data=rows,
            hyperparameters={
                **ROUTER_LORA,
                **self.params.hyperparameters,
                "epochs": self.params.epochs,
                "lr": self.params.lr,
            },
            seed=self.ctx.settings.seed,
        )
        path = self.ctx.train(job)
        self.ctx.pool.add(ModelConfig(name=self.router, path=str(path)))
        self.ctx.metrics["router"] = {
            "path": str(path),
            "dev_labels": {n: labels.count(i) for i, n in enumerate(self.names)},
        }

    def predict(self, examples: list[Example]) -> list[Prediction]:
        descriptions = self._descriptions()
        greedy = GenerationSettings(max_new_tokens=8, temperature=0.0, top_p=1.0, seed=self.ctx.settings.seed)
        prompts = [router_prompt(e, descriptions, self.params.router_prompt) for e in examples]
        routed = self.ctx.pool.generate(self.router, prompts, greedy, logprobs=True)
        replies = [g.text for g in routed]
        parsed = [parse_route(r, len(self.names)) for r in replies]
        chosen = [self.names[k] if k is not None else self.fallback for k in parsed]
        extras = [{"router_reply": r, "route_parsed": k is not None} for r, k in zip(replies, parsed, strict=True)]
        routing_tokens = [{self.router: token_count(g)} for g in routed]
        return routed_predictions(self.ctx, self.tally, examples, chosen, extras, routing_tokens)
