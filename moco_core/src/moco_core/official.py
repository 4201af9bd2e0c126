"""Which official distribution provides a method or dataset key, so a missing one names its install line.

Core must not import the families (they are plugins like any other), so this is a static table,
kept next to the families' registrations by ``tests/core/test_official.py``.
"""

from __future__ import annotations

METHODS: dict[str, str] = {
    "moco-methods-api": (
        "single_model prompt_routing cascade co_llm mentor_collab nudging oracle_routing random_routing "
        "switch_generation trained_router graph_router"
    ),
    "moco-methods-text": (
        "majority_vote agglm blackboard heterogeneous_swarms knowledge_card llm_blender mixture_of_agents "
        "multiagent_debate multiagent_feedback multiagent_finetuning multiagent_refine self_consistency slm_mux sparta "
        "structured_interaction"
    ),
    "moco-methods-logit": "logit_fusion logit_contrastive",
    "moco-methods-weight": "greedy_soup dare_ties expo lorahub merge model_swarms",
}
DATASETS: dict[str, str] = {
    "moco-evals": (
        "agieval agieval_tiny alpacaeval arc_challenge bbh blend coconot culturalbench_hard culturebench "
        "gpqa_diamond gpqa_extended gpqa_main gsm8k human_interest human_interest_tiny humaneval "
        "infinite_chat_diversity kaleidoscope math mbpp medmcqa medqa mmlu_redux popqa pubmedqa sciencemeter "
        "sciriff tablemwp_free_text tablemwp_multiple_choice theoremqa truthfulqa wikidyk wildchat"
    ),
}


def _owner(table: dict[str, str], key: str) -> str | None:
    return next((distribution for distribution, keys in table.items() if key in keys.split()), None)


def official_distribution(kind: str, key: str) -> str | None:
    """The official distribution registering ``key`` (kind ``method`` or ``dataset``), or None."""
    return _owner(METHODS if kind == "method" else DATASETS, key)


def install_hint(kind: str, key: str) -> str:
    """``"; `key` is in DIST: pip install DIST"`` for an official key, else an empty string."""
    distribution = official_distribution(kind, key)
    return f"; {key!r} is in {distribution}: pip install {distribution}" if distribution else ""
