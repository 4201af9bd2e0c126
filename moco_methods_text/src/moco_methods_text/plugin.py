"""Registers the text-level methods (implementations import lazily)."""

from __future__ import annotations

from collections.abc import Callable

from moco_core.hookspecs import hookimpl
from moco_core.registry import MethodSpec, Requirements
from moco_methods_text import params as P

PACKAGE = "moco_methods_text"


def _spec(
    key: str,
    implementation: str,
    summary: str,
    params: type,
    min_models: int,
    reference: str,
    votes: bool = False,
    trains: bool = False,
    answers_only: bool = False,
) -> MethodSpec:
    return MethodSpec(
        key=key,
        level="text",
        implementation=f"{PACKAGE}.{implementation}",
        summary=summary,
        params=params,
        requirements=Requirements(min_models=min_models, needs_extractor=votes, answers_only=answers_only),
        reference=reference,
        trains=trains,
    )


DEBATE = "Du et al. 2023, Improving Factuality and Reasoning in Language Models through Multiagent Debate"
SPECS = [
    _spec(
        "majority_vote",
        "majority_vote:MajorityVote",
        "Every model answers; the most frequent extracted answer wins (ties at random, seeded, or by dev rank).",
        P.MajorityVoteParams,
        1,
        "Wang et al. 2023 (self-consistency); Feng et al. 2025 (text-level collaboration)",
        votes=True,
        answers_only=True,
    ),
    _spec(
        "self_consistency",
        "self_consistency:SelfConsistency",
        "One model samples k answers; the plurality of the extracted answers wins.",
        P.SelfConsistencyParams,
        1,
        "Wang et al. 2023, Self-Consistency Improves Chain of Thought Reasoning in Language Models",
        votes=True,
        answers_only=True,
    ),
    _spec(
        "slm_mux",
        "slm_mux:SLMMux",
        "Every model samples k answers; the most self-consistent model's majority answer wins.",
        P.SLMMuxParams,
        1,
        "Wang et al. 2025, SLM-MUX: Orchestrating Small Language Models for Reasoning",
        votes=True,
        answers_only=True,
    ),
    _spec(
        "multiagent_debate",
        "debate:MultiagentDebate",
        "Models answer, revise given every other model's answer for several rounds; the dev-best summarises.",
        P.DebateParams,
        2,
        DEBATE,
    ),
    _spec(
        "multiagent_refine",
        "debate:MultiagentDebate",
        "Alias of multiagent_debate (the paper's Table 1 name).",
        P.DebateParams,
        2,
        DEBATE,
    ),
    _spec(
        "multiagent_feedback",
        "feedback:MultiagentFeedback",
        "Each round every model is critiqued by others (seeded) and revises; the dev-best summarises.",
        P.FeedbackParams,
        2,
        "Feng et al. 2025 (text-level collaboration: multiagent feedback)",
    ),
    _spec(
        "knowledge_card",
        "knowledge_card:KnowledgeCard",
        "Every model writes a knowledge paragraph; the dev-best model answers given them.",
        P.KnowledgeCardParams,
        1,
        "Feng et al. 2024, Knowledge Card: Filling LLMs' Knowledge Gaps with Plug-in Specialized Language Models",
    ),
    _spec(
        "structured_interaction",
        "structured_interaction:StructuredInteraction",
        "Debate on a graph (chain, tree, star, circle, complete, adjacency); the dev-best's final answer.",
        P.StructuredInteractionParams,
        1,
        "Feng et al. 2025 (text-level collaboration: structured interaction)",
    ),
    _spec(
        "blackboard",
        "blackboard:Blackboard",
        "Agents take turns on a shared blackboard (propose, execute, critique, terminate); votes settle conclusions.",
        P.BlackboardParams,
        1,
        "Han et al. 2025, LLM-based Multi-Agent Blackboard System (bMAS)",
    ),
    _spec(
        "mixture_of_agents",
        "mixture_of_agents:MixtureOfAgents",
        "Layers of proposers, each seeing the whole layer below; the dev-best aggregates the last layer.",
        P.MixtureOfAgentsParams,
        1,
        "Wang et al. 2024, Mixture-of-Agents Enhances Large Language Model Capabilities",
    ),
    _spec(
        "llm_blender",
        "llm_blender:LLMBlender",
        "A ranker compares every pair of answers; a fuser fuses the top-k, best first.",
        P.LLMBlenderParams,
        2,
        "Jiang et al. 2023, LLM-Blender: Ensembling LLMs with Pairwise Ranking and Generative Fusion",
        trains=True,
    ),
    _spec(
        "heterogeneous_swarms",
        "heterogeneous_swarms:HeterogeneousSwarms",
        "PSO over the pool's adjacency matrix; the decoded graph (a DAG) answers through its sink.",
        P.HeterogeneousSwarmsParams,
        2,
        "Feng et al. 2025, Heterogeneous Swarms: Jointly Optimizing Model Roles and Weights for Multi-LLM Systems",
    ),
    _spec(
        "multiagent_finetuning",
        "multiagent_finetuning:MultiagentFinetuning",
        "Each model gets LoRA generation and critic agents trained on dev debates; test debates end in a vote.",
        P.MultiagentFinetuningParams,
        2,
        "Subramaniam et al. 2025, Multiagent Finetuning: Self Improvement with Diverse Reasoning Chains",
        votes=True,
        trains=True,
    ),
    _spec(
        "agglm",
        "agglm:AggLM",
        "An aggregator trained with GRPO on hard dev answer sets fuses one answer per member.",
        P.AggLMParams,
        2,
        "Zhao et al. 2025, The Majority is not always right: RL training for solution aggregation (AggLM)",
        votes=True,
        trains=True,
    ),
    _spec(
        "sparta",
        "sparta:Sparta",
        "Models duel on dev, peers judge, ratings move, all learn by DPO; the dev-best model or adapter answers.",
        P.SpartaParams,
        3,
        "Jiang et al. 2025, SPARTA Alignment: Collectively Aligning Multiple Language Models through Combat",
        trains=True,
    ),
]


@hookimpl
def moco_register_methods(register: Callable[..., None]) -> None:
    for spec in SPECS:
        register(spec)
