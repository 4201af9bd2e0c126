"""Registers the API-level methods and the single-model baseline (imports stay lazy)."""

from __future__ import annotations

from collections.abc import Callable

from moco_core.hookspecs import hookimpl
from moco_core.registry import MethodSpec, Requirements
from moco_methods_api.params import (
    CascadeParams,
    CoLLMParams,
    GraphRouterParams,
    MentorCollabParams,
    NudgingParams,
    PromptRoutingParams,
    SwitchGenerationParams,
    TrainedRouterParams,
)


@hookimpl
def moco_register_methods(register: Callable[..., None]) -> None:
    register(
        MethodSpec(
            key="single_model",
            level="baseline",
            implementation="moco_methods_api.single_model:SingleModel",
            summary="Every pool model alone; reports the dev-best model's answers and every model's scores.",
            requirements=Requirements(min_models=1, dev_split=True, answers_only=True),
            reference="the best-single-model baseline of every comparison",
        )
    )
    register(
        MethodSpec(
            key="prompt_routing",
            level="api",
            implementation="moco_methods_api.prompt_routing:PromptRouting",
            summary="A router model reads the query and the models' descriptions and picks the model that answers.",
            params=PromptRoutingParams,
            requirements=Requirements(min_models=2, descriptions=True, dev_split=True),
            reference="Feng et al. 2025, When One LLM Drools, Multi-LLM Collaboration Rules (API-level routing)",
        )
    )
    register(
        MethodSpec(
            key="random_routing",
            level="baseline",
            implementation="moco_methods_api.random_routing:RandomRouting",
            summary="Baseline: each test query goes to a pool model drawn uniformly (seeded by run seed and item).",
            requirements=Requirements(min_models=2, answers_only=True),
            reference="the chance baseline of routing papers (e.g. RouteLLM, Ong et al. 2024)",
        )
    )
    register(
        MethodSpec(
            key="oracle_routing",
            level="oracle",
            implementation="moco_methods_api.oracle_routing:OracleRouting",
            summary=(
                "ORACLE upper bound, not a method: reads the test labels and gives each item to a model "
                "that solved it (else the dev-best)."
            ),
            requirements=Requirements(min_models=2, dev_split=True, answers_only=True),
            reference="the oracle router of routing papers (an upper bound from test labels)",
        )
    )
    register(
        MethodSpec(
            key="cascade",
            level="api",
            implementation="moco_methods_api.cascade:Cascade",
            summary=(
                "Models weak to strong: each keeps the answers it is confident about (its own dev-quantile "
                "threshold) and defers the rest; the last always answers."
            ),
            params=CascadeParams,
            requirements=Requirements(min_models=2),
            reference="Chen et al. 2023, FrugalGPT (LLM cascade)",
        )
    )
    register(
        MethodSpec(
            key="nudging",
            level="api",
            implementation="moco_methods_api.nudging:Nudging",
            summary=(
                "A base model writes while its top-1 probability is >= gamma; below it a nudging model writes a "
                "word. Any tokenizers (the models exchange text)."
            ),
            params=NudgingParams,
            requirements=Requirements(min_models=2, local_weights=True),
            reference="Fei et al. 2025, Nudging: Inference-time Alignment of LLMs via Guided Decoding",
        )
    )
    register(
        MethodSpec(
            key="switch_generation",
            level="api",
            implementation="moco_methods_api.switch_generation:SwitchGeneration",
            summary=(
                "A selector LM picks, every patch_size tokens, which model writes the next patch (trained on dev "
                "rollouts unless selector_model is given). Any tokenizers."
            ),
            params=SwitchGenerationParams,
            requirements=Requirements(min_models=2, local_weights=True),
            trains=True,
            reference="Feng et al. 2025, Don't Throw Away Your Pretrained Model (switch generation)",
        )
    )
    register(
        MethodSpec(
            key="trained_router",
            level="api",
            implementation="moco_methods_api.trained_router:TrainedRouter",
            summary=(
                "A router LM LoRA-trained on dev (label: the member best on each dev query) names the model "
                "that answers each test query."
            ),
            params=TrainedRouterParams,
            requirements=Requirements(min_models=2, answers_only=True),
            trains=True,
            reference="Feng et al. 2025, When One LLM Drools, Multi-LLM Collaboration Rules (trained router)",
        )
    )
    register(
        MethodSpec(
            key="co_llm",
            level="api",
            implementation="moco_methods_api.co_llm:CoLLM",
            summary=(
                "[generator, assistant], one tokenizer: a learned <|defer|> head on the generator hands single "
                "tokens to the assistant where p(defer) > threshold."
            ),
            params=CoLLMParams,
            requirements=Requirements(min_models=2, max_models=2, same_tokenizer=True, local_weights=True),
            trains=True,
            reference="Shen et al. 2024, Learning to Decode Collaboratively with Multiple Language Models (Co-LLM)",
        )
    )
    register(
        MethodSpec(
            key="mentor_collab",
            level="api",
            implementation="moco_methods_api.mentor_collab:MentorCollab",
            summary=(
                "[generator, mentor], one tokenizer: at a decision_proportion share of words the mentor's next word "
                "is compared; on disagreement a judge (the generator, or an MLP on its hidden state) picks one of "
                "two patch_size-token candidates."
            ),
            params=MentorCollabParams,
            requirements=Requirements(min_models=2, max_models=2, same_tokenizer=True, local_weights=True),
            reference="MentorCollab (generator-mentor collaborative decoding)",
        )
    )
    register(
        MethodSpec(
            key="graph_router",
            level="api",
            implementation="moco_methods_api.graph_router:GraphRouter",
            summary=(
                "A GNN edge predictor (torch-geometric) over the task-query-model graph, trained on dev scores "
                "and costs, picks each test query's model."
            ),
            params=GraphRouterParams,
            requirements=Requirements(min_models=2, dev_split=True, answers_only=True),
            trains=True,
            reference="Feng et al. 2024, GraphRouter: A Graph-based Router for LLM Selections",
        )
    )
