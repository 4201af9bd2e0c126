"""Registers the weight-level methods (implementations, and mergekit, import lazily)."""

from __future__ import annotations

from collections.abc import Callable

from moco_core.hookspecs import hookimpl
from moco_core.registry import MethodSpec, NoParams, Requirements
from moco_methods_weight.params import DareTiesParams, ExpoParams, LorahubParams, MergeParams, ModelSwarmsParams

SAME_WEIGHTS = Requirements(min_models=2, same_architecture=True, same_tokenizer=True)
SEARCHED_ON_DEV = Requirements(min_models=2, same_architecture=True, same_tokenizer=True, dev_split=True)


@hookimpl
def moco_register_methods(register: Callable[..., None]) -> None:
    register(
        MethodSpec(
            key="greedy_soup",
            level="weight",
            implementation="moco_methods_weight.greedy_soup:GreedySoup",
            summary="Average weights greedily: from the dev-best model, add each next model only if dev does not drop.",
            params=NoParams,
            requirements=SEARCHED_ON_DEV,
            reference=(
                "Wortsman et al. 2022, Model soups: averaging weights of multiple fine-tuned models improves "
                "accuracy without increasing inference time, ICML 2022, arXiv:2203.05482"
            ),
        )
    )
    register(
        MethodSpec(
            key="merge",
            level="weight",
            implementation="moco_methods_weight.merge:Merge",
            summary="Any mergekit merge method by name with its parameters (linear, slerp, ties, dare_ties, ...).",
            params=MergeParams,
            requirements=Requirements(min_models=1, same_architecture=True, same_tokenizer=True),
            reference=(
                "Goddard et al. 2024, Arcee's MergeKit: A Toolkit for Merging Large Language Models, "
                "EMNLP 2024 Industry Track, arXiv:2403.13257"
            ),
        )
    )
    register(
        MethodSpec(
            key="dare_ties",
            level="weight",
            implementation="moco_methods_weight.dare_ties:DareTies",
            summary="mergekit dare_ties onto a base model; weights uniform or searched by PSO on dev.",
            params=DareTiesParams,
            requirements=SAME_WEIGHTS,
            reference=(
                "Yu et al. 2024, Language Models are Super Mario: Absorbing Abilities from Homologous Models "
                "as a Free Lunch, ICML 2024, arXiv:2311.03099; Yadav et al. 2023, TIES-Merging: Resolving "
                "Interference When Merging Models, NeurIPS 2023, arXiv:2306.01708"
            ),
        )
    )
    register(
        MethodSpec(
            key="model_swarms",
            level="weight",
            implementation="moco_methods_weight.model_swarms:ModelSwarms",
            summary="PSO in weight space: the members are particles moved by dev score; the global best answers.",
            params=ModelSwarmsParams,
            requirements=Requirements(min_models=2, same_tokenizer=True, dev_split=True),
            reference=(
                "Feng et al. 2024, Model Swarms: Collaborative Search to Adapt LLM Experts via Swarm "
                "Intelligence, arXiv:2410.11163"
            ),
        )
    )
    register(
        MethodSpec(
            key="lorahub",
            level="weight",
            implementation="moco_methods_weight.lorahub:Lorahub",
            summary="Nevergrad search over weights of LoRA adapters (A and B combined linearly) on a few dev items.",
            params=LorahubParams,
            requirements=Requirements(min_models=2, dev_split=True),
            reference=(
                "Huang et al. 2023, LoraHub: Efficient Cross-Task Generalization via Dynamic LoRA Composition, "
                "arXiv:2307.13269"
            ),
        )
    )
    register(
        MethodSpec(
            key="expo",
            level="weight",
            implementation="moco_methods_weight.expo:Expo",
            summary="Extrapolate from the dev-worst k models through the dev-best k: top + alpha (top - bottom).",
            params=ExpoParams,
            requirements=SEARCHED_ON_DEV,
            reference="Zheng et al. 2024, Weak-to-Strong Extrapolation Expedites Alignment, arXiv:2404.16792",
        )
    )
