"""The module named by the ``moco`` entry point: it tells moco what this plugin provides.

moco imports this module, registers it with its pluggy plugin manager and calls every
``moco_*`` hook function it finds.  Registration must be cheap: a ``MethodSpec`` names the
implementation by import path (``"module:Class"``) and moco imports it only when a run uses
the method, so heavy imports (torch, your own libraries) belong in the method module, not here.
"""

from __future__ import annotations

from collections.abc import Callable

# ``hookimpl`` marks a function as an implementation of a moco hook; the function name must
# match a hook in ``moco_core.hookspecs`` exactly.
from moco_core.hookspecs import hookimpl
from moco_core.registry import DatasetSpec, MethodSpec, Requirements, ScorerSpec
from moco_plugin_template import arithmetic
from moco_plugin_template.params import LongestAnswerParams


@hookimpl
def moco_register_methods(register: Callable[..., None]) -> None:
    # Call ``register`` once per method.  The key is global across all installed plugins, so
    # prefix it with your lab or project name; moco refuses a key another distribution already has.
    register(
        MethodSpec(
            key="template_longest_answer",
            # The collaboration level: "api", "text", "logit", "weight", "baseline", "oracle" (an upper
            # bound computed from test labels, never a method) or "other".
            level="text",
            implementation="moco_plugin_template.longest_answer:LongestAnswer",
            summary="Every model answers; the longest response that states an answer wins (optionally top-k by dev).",
            params=LongestAnswerParams,
            # Checked before any model loads; also available: max_models, same_tokenizer,
            # same_architecture, descriptions (every pool model needs a description), dev_split,
            # local_weights. answers_only: it only asks each member its one answer per query, so it
            # also runs on response banks (the bank backend) with zero generation.
            requirements=Requirements(min_models=1, answers_only=True),
            reference="moco plugin template (an example, not a published method)",
        )
    )


@hookimpl
def moco_register_datasets(register: Callable[..., None]) -> None:
    # A dataset names its loader by import path, like a method; the file ships inside the package
    # (see package-data in pyproject.toml). ``sizes`` (dev, test) and ``domain`` show in `moco list-datasets`.
    register(
        DatasetSpec(
            key="template_arithmetic",
            task_type="template_integer",
            loader="moco_plugin_template.arithmetic:load_arithmetic",
            domain="math",
            source="moco-plugin-template (packaged example file)",
            summary="Eight two-number arithmetic questions; the answer is an integer.",
            sizes=(4, 8),
        )
    )


@hookimpl
def moco_register_scorers(register: Callable[..., None]) -> None:
    # A task type: prompt, answer extractor and batched scorer. Datasets of any plugin may use it.
    register(
        ScorerSpec(
            task_type="template_integer",
            prompt=arithmetic.prompt,
            extract=arithmetic.extract,
            score=arithmetic.score,
            metric="accuracy",
        )
    )


# A plugin may also implement ``moco_register_backends`` (BackendSpec) in this same module; see
# ``moco_core.hookspecs`` for the full contract.
