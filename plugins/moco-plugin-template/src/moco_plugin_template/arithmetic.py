"""The example dataset and its task type: a benchmark a lab publishes as a plugin.

A dataset plugin has two parts. The *dataset* (``DatasetSpec``) says where items come from: here
a small benchmark-format JSON file shipped inside the package, so it installs with ``pip`` and
needs no download. The *task type* (``ScorerSpec``) says how an item becomes a prompt, how the
answer is read from free text (the extractor: voting methods compare extracted answers) and how
a response is scored. Registered datasets of other plugins may reuse this task type by name.
"""

from __future__ import annotations

import json
import re
from importlib.resources import files
from typing import Any

from moco_core.data import parse_benchmark
from moco_core.types import Dataset, Example

TASK_TYPE = "template_integer"
_ANSWER = re.compile(r"answer\s*(?:is|:)?\s*(-?\d+)", re.IGNORECASE)
_INTEGER = re.compile(r"-?\d+")


def load_arithmetic(spec: Any, data_dir: str | None = None) -> Dataset:
    """The packaged file (``data_dir`` is for datasets read from a user's data folder; unused here)."""
    resource = files("moco_plugin_template") / "data" / f"{spec.key}.json"
    return parse_benchmark(json.loads(resource.read_text(encoding="utf-8")), str(resource), spec.key, TASK_TYPE)


def prompt(example: Example) -> str:
    """What every model is asked: the question and the answer format the extractor reads."""
    return f"{example.question}\nThink briefly, then finish with 'Answer: <integer>'."


def extract(example: Example, output: str) -> str | None:
    """The integer after the last 'Answer:' (or 'the answer is'), else the last integer in the text."""
    stated = _ANSWER.findall(output)
    if stated:
        return str(int(stated[-1]))
    numbers = _INTEGER.findall(output)
    return str(int(numbers[-1])) if numbers else None


def score(examples: list[Example], outputs: list[str], options: Any = None) -> list[float]:
    """1.0 when the extracted integer equals the gold one; batched, as model-based scorers need."""
    return [float(extract(e, o) == str(int(e.answer))) for e, o in zip(examples, outputs, strict=True)]
