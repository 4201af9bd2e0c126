"""Parameter models of the text-level methods (light: imported at registration).

Every prompt a method writes is a template parameter here, defaulting to the named template
in ``prompts``; ``moco info KEY`` prints each with its placeholders.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from moco_core.engines.pso import PSOParams
from moco_core.templates import template_field, template_type
from moco_methods_text import prompts as P


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MajorityVoteParams(_Params):
    tie_break: Literal["dev", "random"] = Field(
        default="random", description="ties: at random (seeded; as the original) or the answer of the best dev scorer"
    )
    samples_per_model: int = Field(default=1, ge=1, description="sampled answers per model, each one vote")


class SelfConsistencyParams(_Params):
    samples: int = Field(default=5, ge=1, description="answers sampled from the one model (sample 1 is round 0)")
    model: str | None = Field(default=None, description="pool model that samples; default: the dev-best model")


class SLMMuxParams(_Params):
    samples_per_model: int = Field(default=5, ge=1, description="answers each model samples")
    tie_break: Literal["dev", "model_order", "random"] = Field(
        default="dev", description="equally confident models: best dev score, pool order, or at random (seeded)"
    )


class DebateParams(_Params):
    rounds: int = Field(
        default=3, ge=1, description="rounds including the initial answer (orig `round`; 1 = no revision)"
    )
    revise_prompt: template_type("question", "own_answer", "other_answers") = template_field(
        P.DEBATE_REVISE,
        "a member revises given the others' previous answers",
        "question",
        "own_answer",
        "other_answers",
    )
    summarize_prompt: P.QuestionAnswers = template_field(
        P.SUMMARIZE, "the dev-best member summarises the final answers", "question", "answers"
    )


class FeedbackParams(_Params):
    rounds: int = Field(default=3, ge=1, description="rounds including the initial answer")
    feedback_count: int = Field(default=3, ge=1, description="critics per member and round (capped at n-1), seeded")
    critique_prompt: template_type("question", "answer") = template_field(
        P.FEEDBACK_CRITIQUE, "a critic sees the question and one member's answer", "question", "answer"
    )
    revise_prompt: template_type("question", "own_answer", "critiques") = template_field(
        P.FEEDBACK_REVISE, "a member revises given its critiques", "question", "own_answer", "critiques"
    )
    summarize_prompt: P.QuestionAnswers = template_field(
        P.SUMMARIZE, "the dev-best member summarises the final answers", "question", "answers"
    )


class KnowledgeCardParams(_Params):
    exclude_self: bool = Field(
        default=False, description="the answering (dev-best) model does not see its own paragraph"
    )
    knowledge_prompt: template_type("question") = template_field(
        P.KNOWLEDGE, "every member writes a knowledge paragraph", "question"
    )
    answer_prompt: template_type("question", "knowledge") = template_field(
        P.KNOWLEDGE_ANSWER, "the dev-best member answers given the paragraphs", "question", "knowledge"
    )


Structure = Literal["chain", "tree", "star", "circle", "complete", "adjacency"]


class StructuredInteractionParams(_Params):
    structure: Structure = Field(
        description="chain, tree (binary heap), star (member 0 is the hub), circle, complete, or adjacency"
    )
    adjacency: list[list[int]] | None = Field(
        default=None, description="n x n 0/1 matrix for structure 'adjacency': M[i][j] = 1 means j sees i"
    )
    rounds: int = Field(default=3, ge=1, description="rounds including the initial answer")
    revise_prompt: template_type("question", "own_answer", "neighbour_answers") = template_field(
        P.STRUCTURED_REVISE,
        "a member revises given its in-neighbours' answers (shown as 'Assistant k')",
        "question",
        "own_answer",
        "neighbour_answers",
    )

    @field_validator("adjacency")
    @classmethod
    def _zero_one(cls, value: list[list[int]] | None) -> list[list[int]] | None:
        if value is not None and any(x not in (0, 1) for row in value for x in row):
            raise ValueError("entries must be 0 or 1")
        return value


class MixtureOfAgentsParams(_Params):
    layers: int = Field(default=1, ge=1, description="proposer layers (orig `round`); layer 1 is the initial answer")
    propose_prompt: P.QuestionAnswers = template_field(
        P.MOA_PROPOSE, "a proposer of a later layer sees every answer of the layer below", "question", "answers"
    )
    aggregate_prompt: P.QuestionAnswers = template_field(
        P.MOA_AGGREGATE, "the aggregator (dev-best) synthesises the last layer", "question", "answers"
    )


class LLMBlenderParams(_Params):
    top_k: int = Field(default=3, ge=1, description="best-ranked answers the fuser fuses")
    ranker_model: str | None = Field(default=None, description="pool model that compares pairs; default: dev-best")
    fuser_model: str | None = Field(default=None, description="pool model that fuses; default: dev-best")
    both_orders: bool = Field(default=False, description="also compare every pair swapped, against position bias")
    train_ranker: bool = Field(default=False, description="LoRA-SFT the ranker on dev pairs whose scores differ")
    train_fuser: bool = Field(default=False, description="LoRA-SFT the fuser on the dev top-k with the gold answer")
    epochs: float = Field(default=3.0, gt=0, description="training epochs (ranker and fuser)")
    lr: float = Field(default=1e-5, gt=0, description="learning rate (LoRA)")
    rank_prompt: template_type("question", "candidate_a", "candidate_b") = template_field(
        P.BLENDER_RANK, "the ranker compares two answers", "question", "candidate_a", "candidate_b"
    )
    fuse_prompt: template_type("question", "candidates") = template_field(
        P.BLENDER_FUSE, "the fuser fuses the top-k, best first", "question", "candidates"
    )


DEFAULT_INSTRUCTIONS = {
    "propose": "Propose a strategy for solving the question, in a few sentences.",
    "execute": "Carry out the next step of the solution, building on the blackboard.",
    "critique": "Critique the entries on the blackboard and refine them where they are wrong.",
    "terminate": "Give the final answer, in the format the question asks for, on a line starting with 'FINAL:'.",
}


class BlackboardParams(_Params):
    max_iterations: int = Field(
        default=10, ge=1, description="iterations before the latest entries count as conclusions"
    )
    agents_per_turn: int = Field(default=1, ge=1, description="agents acting per iteration (drawn seeded)")
    stop_votes: int = Field(default=1, ge=1, description="terminations in one iteration that stop the board")
    same_model: bool = Field(default=False, description="every agent runs the dev-best model (as the original)")
    choose_prompt: template_type("agent", "question", "blackboard") = template_field(
        P.BLACKBOARD_CHOOSE, "an agent chooses its action", "agent", "question", "blackboard"
    )
    act_prompt: template_type("agent", "question", "blackboard", "action", "instruction") = template_field(
        P.BLACKBOARD_ACT,
        "an agent carries out its action",
        "agent",
        "question",
        "blackboard",
        "action",
        "instruction",
    )
    vote_prompt: template_type("question", "conclusions") = template_field(
        P.BLACKBOARD_VOTE, "every agent votes when there are several conclusions", "question", "conclusions"
    )
    action_instructions: dict[Literal["propose", "execute", "critique", "terminate"], str] = Field(
        default=DEFAULT_INSTRUCTIONS, description="the {instruction} of act_prompt per action"
    )

    @field_validator("action_instructions")
    @classmethod
    def _every_action(cls, value: dict[str, str]) -> dict[str, str]:
        return {**DEFAULT_INSTRUCTIONS, **value}


class SwarmPSOParams(PSOParams):
    """The shared ``pso`` block with this method's default of 5 iterations."""

    max_iterations: int = Field(5, ge=0)


class HeterogeneousSwarmsParams(_Params):
    pso: SwarmPSOParams = Field(default_factory=SwarmPSOParams, description="the shared PSO block (max_iterations 5)")
    edge_top_p: float = Field(default=0.7, gt=0.0, le=1.0, description="nucleus threshold of each graph-decoding draw")
    dev_ratio: float = Field(default=0.25, gt=0.0, le=1.0, description="share of dev (from the start) scoring fitness")
    node_prompt: template_type("question", "previous") = template_field(
        P.SWARM_NODE, "a node sees its predecessors' responses", "question", "previous"
    )


class MultiagentFinetuningParams(_Params):
    iterations: int = Field(default=1, ge=1, description="rounds of debate-then-finetune on dev")
    rounds: int = Field(default=2, ge=2, description="debate rounds, including the generation agents' first answer")
    w: float = Field(default=0.5, ge=0.0, le=1.0, description="critic data share from initially-wrong members")
    epochs: float = Field(default=1.0, gt=0, description="training epochs per agent")
    lr: float = Field(default=1e-5, gt=0, description="learning rate (LoRA)")
    revise_prompt: template_type("question", "own_answer", "other_answers") = template_field(
        P.DEBATE_REVISE, "a critic agent revises given the others' answers", "question", "own_answer", "other_answers"
    )


class AggLMParams(_Params):
    aggregator_model: str | None = Field(
        default=None, description="pool model trained as aggregator; default: dev-best"
    )
    samples: int = Field(default=2, ge=1, description="answers per member and dev question (one set per sample)")
    lr: float = Field(default=1e-4, gt=0, description="GRPO learning rate (LoRA)")
    epochs: float = Field(default=1.0, gt=0, description="GRPO epochs")
    weight_decay: float = Field(default=1e-5, ge=0, description="weight decay")
    aggregate_prompt: P.QuestionAnswers = template_field(
        P.AGGREGATE, "the aggregator fuses one answer per member", "question", "answers"
    )


class SpartaParams(_Params):
    iterations: int = Field(default=3, ge=1, description="duel-judge-train iterations")
    instructions: int = Field(default=500, ge=1, description="first dev inputs used as duel instructions")
    random_match_prob: float = Field(default=0.2, ge=0.0, le=1.0, description="chance of a random opponent")
    opponents: int = Field(default=3, ge=1, description="candidate opponents closest (or farthest) in rating")
    k_initial: float = Field(default=10.0, gt=0, description="initial K of the rating update")
    k_min: float = Field(default=5.0, gt=0, description="K never decays below this")
    decay_rate: float = Field(default=0.9, gt=0, le=1.0, description="K multiplier every 10 rating updates")
    instruction_selection: Literal["uniform", "exp3", "exp3_per_model"] = Field(
        default="uniform", description="plain Sparta's in-order instructions, or the variant's EXP3 leader"
    )
    opponent_selection: Literal["closest", "lowest_diff", "highest_diff", "schedule"] = Field(
        default="closest",
        description="opponents closest in rating (lowest_diff: the same), farthest, or a scheduled gap",
    )
    exp3_gamma: float = Field(
        default=0.2, ge=0.0, le=1.0, description="EXP3 uniform mix (the variant's leader_uniform_mix)"
    )
    schedule_sigma: float = Field(
        default=0.15, gt=0, description="width of the scheduled rating gap (opponent_selection schedule)"
    )
    lr: float = Field(default=1e-6, gt=0, description="DPO learning rate (LoRA)")
    epochs: float = Field(default=1.0, gt=0, description="DPO epochs per iteration")
    judge_prompt: template_type("question", "response") = template_field(
        P.SPARTA_JUDGE, "a peer scores one response 1-10 as JSON", "question", "response"
    )

    @model_validator(mode="after")
    def _k_order(self) -> SpartaParams:
        if self.k_min > self.k_initial:
            raise ValueError("k_min must not exceed k_initial")
        return self
