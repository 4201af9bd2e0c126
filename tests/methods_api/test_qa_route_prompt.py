"""prompt_routing reads the router's choice in the phrasings routers actually use."""

from __future__ import annotations

import pytest

from moco_methods_api.prompt_routing import parse_choice

NAMES = ["math", "history", "code"]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Selected model: 2", 1),
        ("Best model: 3", 2),
        ("Answer: (2)", 1),
        ("Model (3)", 2),
        ("[2]", 1),
        ("Model_2", 1),
        ("Model 3\n\nExplanation: it knows code, unlike Model 1.", 2),
        ("Model 1: math expert\nModel 2: history expert\nModel 3: code expert\nI choose Model 2.", 1),
        ("Model 2 is best.\nBoth Model 1 and Model 3 are weaker.", None),
        ("Model 1 and Model 2 could both work.", None),
    ],
)
def test_router_phrasings(reply, expected):
    assert parse_choice(reply, NAMES) == expected
