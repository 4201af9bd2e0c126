"""Parameter models of the API-level methods (light: imported at registration).

The prompts the routers and the cascade write are ``str.format`` template parameters here
(``moco info KEY`` lists their placeholders); an override naming an unknown placeholder is
refused at validate.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from moco_core.templates import template_field, template_type

SELF_ASK_PROMPT = (
    "{question}\n\nIf you are not confident that your answer is correct, reply only with the word 'unconfident'."
)
ROUTING_PROMPT = (
    "Choose the model best suited to answer the query below.\n\n{models}\n\nQuery:\n{query}\n\n"
    "End your reply with one final line that names exactly one model, written as 'Model k' "
    "(k from 1 to {count}), and nothing else on that line."
)
ROUTER_PROMPT = "{models}Query:\n{query}\n\nWhich model should answer? Reply 'Model k'."
SELECTOR_PROMPT = (
    "Several models write one answer together, a patch at a time. Models: {models}.\n\n"
    "Query:\n{query}\n\nAnswer so far:\n{partial}\n\n"
    "Which model should write the next patch? Reply only with 'Model k'."
)
JUDGE_PROMPT = (
    "Question:\n{query}\n\nAnswer so far:\n{partial}\n\n"
    "Which continuation is better?\n(A) {own}\n(B) {mentor}\n\nReply only with (A) or (B)."
)


class PromptRoutingParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    router: str | None = Field(default=None, description="pool model that routes; default: the dev-best model")
    routing_prompt: template_type("query", "models", "count") = template_field(
        ROUTING_PROMPT, "the router's question ({models}: 'Model k: description' lines)", "query", "models", "count"
    )


class CascadeParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    defer_fraction: float = Field(
        default=0.5, ge=0.0, le=1.0, description="quantile of a member's dev confidences used as its threshold"
    )
    confidence: Literal["token_prob", "self_ask"] = Field(
        default="token_prob", description="mean top-1 token probability, or the model saying 'unconfident'"
    )
    self_ask_prompt: template_type("question") = template_field(
        SELF_ASK_PROMPT, "self_ask: every member but the last answers this", "question"
    )


class NudgingParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gamma: float = Field(default=0.4, ge=0.0, le=1.0, description="base top-1 probability below which it is nudged")
    base_model: int = Field(default=0, ge=0, description="pool index of the base model")
    nudging_model: int = Field(default=1, ge=0, description="pool index of the nudging model")
    gamma_search: list[Annotated[float, Field(ge=0.0, le=1.0)]] = Field(
        default_factory=list, description="gammas tried on dev (empty: use gamma)"
    )
    search_nudging: bool = Field(default=False, description="also pick the nudging member on dev")


class SwitchGenerationParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    patch_size: int = Field(default=25, ge=1, description="tokens per patch; the selector picks per patch")
    selector_base_model: str | None = Field(default=None, description="pool model trained as selector (default: 0)")
    selector_model: str | None = Field(default=None, description="a trained selector folder; skips training")
    rollouts_per_example: int = Field(default=16, ge=1, description="rollouts per training prompt")
    train_examples: int = Field(default=500, ge=1, description="dev prompts the selector is trained on")
    rollout_score: Literal["reward_model", "scorer"] = Field(
        default="reward_model", description="rank rollouts by a reward model or by the dataset's scorer"
    )
    reward_model: str | None = Field(default=None, description="reward model of the rollouts (rollout_score)")
    selector_prompt: template_type("query", "partial", "models") = template_field(
        SELECTOR_PROMPT,
        "what the selector reads at each patch, in training and at test ({models}: 'Model 1, Model 2, ...')",
        "query",
        "partial",
        "models",
    )


class CoLLMParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(default=0.5, ge=0.0, le=1.0, description="defer when p(defer) > threshold")
    threshold_warmup: Literal["none", "linear", "cosine"] = Field(
        default="none", description="ramp the threshold from 1 down to `threshold` over the first 15 steps"
    )
    strategy: Literal["defer", "compose"] = Field(
        default="defer", description="take the assistant's token when deferring, or mix both distributions by p(defer)"
    )
    finetune: bool = Field(default=True, description="phase 2: train the generator on the marginal likelihood")
    epochs: int = Field(
        default=2, ge=1, description="epochs of phase 2 (finetune); phase 1 fits the defer head in 300 steps"
    )
    lr: float = Field(default=2e-5, gt=0.0, description="learning rate of phase 2 (finetune); phase 1 uses 1e-2")
    training_dataset: str | None = Field(
        default=None,
        description=(
            "a registered dataset key whose gold answers (dev and test, less this run's test queries) train "
            "co_llm (default: this run's dev split)"
        ),
    )


class MentorCollabParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision_proportion: float = Field(default=0.25, ge=0.0, le=1.0, description="probability of consulting")
    patch_size: int = Field(default=16, ge=1, description="tokens of each candidate continuation")
    judge_prompt: template_type("query", "partial", "own", "mentor") = template_field(
        JUDGE_PROMPT, "mode free: the generator picks a candidate", "query", "partial", "own", "mentor"
    )
    mode: Literal["free", "mlp"] = Field(
        default="free", description="judge: the generator chooses (A)/(B), or a classifier on its hidden state"
    )
    mlp_path: str | None = Field(
        default=None,
        description=(
            "mode mlp: a published MentorCollab MLP state dict (.pth/.safetensors) or a TorchScript module "
            "mapping hidden states (n, d) to one logit each"
        ),
    )
    mlp_threshold: float = Field(
        default=0.5, ge=0.0, le=1.0, description="keep the generator's candidate when the score (sigmoid) > this"
    )


class TrainedRouterParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    router_base_model: str | None = Field(default=None, description="pool model LoRA-trained as router (default: 0)")
    reward_model: str | None = Field(default=None, description="breaks ties between members right on a dev item")
    epochs: float = Field(default=5, gt=0, description="training epochs of the router")
    lr: float = Field(default=1e-5, gt=0, description="learning rate of the router's LoRA training")
    hyperparameters: dict[str, Any] = Field(
        default_factory=dict, description="further training-job settings (batch_size, lora_r, lora_target_modules, ...)"
    )
    router_prompt: template_type("query", "models") = template_field(
        ROUTER_PROMPT, "what the router reads ({models}: 'Models:' and a line per member, or empty)", "query", "models"
    )


class GraphRouterParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    embedding_model: str = Field(
        default="sentence-transformers/all-MiniLM-L6-v2", description="sentence encoder of queries and descriptions"
    )
    hidden_dim: int = Field(default=8, ge=1, description="width of the GNN's hidden node embeddings")
    epochs: int = Field(default=500, ge=1, description="GNN training epochs (best validation macro-F1 kept)")
    lr: float = Field(default=1e-4, gt=0, description="learning rate of the GNN")
    weight_decay: float = Field(default=1e-4, ge=0, description="weight decay of the GNN optimiser")
    scenario: Literal["performance", "balance", "cost"] = Field(
        default="performance", description="label weights (a, b) of a*score - b*cost: (1,0), (0.5,0.5), (0.2,0.8)"
    )
    model_costs: list[Annotated[float, Field(ge=0.0, allow_inf_nan=False)]] | None = Field(
        default=None, description="cost per pool model, in pool order (default: all 1.0)"
    )
    task_description: str | None = Field(default=None, description="text of the task node (default: dataset name)")
