"""Symbolic equality through math-verify: what it accepts, what it refuses, and its guards."""

from __future__ import annotations

import threading

import pytest

from moco_evals import math_equivalence
from moco_evals.math_equivalence import looks_mathematical, math_equal, numeric_value


@pytest.mark.parametrize(
    ("prediction", "gold"),
    [
        (r"\frac{1}{2}", "0.5"),
        ("1/2", r"\frac{1}{2}"),
        ("8x^2+18x^3", "18x^3+8x^2"),
        (r"(-\infty,-8)\cup(-8,\infty)", r"(-\infty, -8) \cup (-8, \infty)"),
        ("[-6, inf)", r"[-6,\infty)"),
        (r"\sqrt{40}", r"2\sqrt{10}"),
        ("2 sqrt(10)", r"2\sqrt{10}"),
        ("pi/2", r"\frac{\pi}{2}"),
        ("π/2", r"\frac{\pi}{2}"),
        (r"\frac{9}{4}", r"2\frac{1}{4}"),
        (r"\{1, 3\}", "3, 1"),
        (r"\begin{pmatrix}15\\10\end{pmatrix}", r"\begin{pmatrix} 15 \\ 10 \end{pmatrix}"),
        ("$5$", "5"),
    ],
)
def test_equal(prediction: str, gold: str) -> None:
    assert math_equal(prediction, gold)


@pytest.mark.parametrize(
    ("prediction", "gold"),
    [
        ("x+1", "x+2"),
        ("x", "y"),
        (r"\frac{\pi}{3}", r"\frac{\pi}{2}"),
        ("zzz", "18x^3+8x^2"),
        ("Friday", r"\text{Friday}"),
        ("", "1"),
        ("1", ""),
        (r"\frac{", "1"),
        ("x" * 500, "x"),
    ],
)
def test_not_equal(prediction: str, gold: str) -> None:
    assert not math_equal(prediction, gold)


@pytest.mark.parametrize(
    ("text", "mathy"),
    [
        ("18x^3+8x^2", True),
        (r"\frac{\pi}{2}", True),
        (r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", True),
        ("x", True),
        ("sqrt(2)", True),
        ("zzz", False),
        (r"\text{Friday}", False),
        ("6 feet", False),
        ("} ) }", False),
        ("", False),
    ],
)
def test_looks_mathematical(text: str, mathy: bool) -> None:
    assert looks_mathematical(text) is mathy


def test_numeric_value() -> None:
    assert numeric_value(r"\frac{\pi}{6}") == pytest.approx(0.5235987755982988)
    assert numeric_value(r"2\sqrt{3}") == pytest.approx(3.4641016151377544)
    assert numeric_value("x") is None
    assert numeric_value("Friday") is None


def test_works_outside_the_main_thread() -> None:
    """math-verify's SIGALRM time limit is main-thread only, so other threads run without it."""
    found: list[bool] = []
    thread = threading.Thread(target=lambda: found.append(math_equal("8x^2+18x^3 + 1", "1 + 18x^3+8x^2")))
    thread.start()
    thread.join(30)
    assert found == [True]


def test_without_math_verify_nothing_is_symbolically_equal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(math_equivalence, "_math_verify", lambda: None)
    monkeypatch.setattr(math_equivalence, "_parse", lambda text: ())
    assert not math_equal(r"\frac{1}{2}", "0.5")
    assert numeric_value(r"\frac{\pi}{6}") is None


def test_parse_errors_are_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    found = math_equivalence._math_verify()
    assert found is not None
    library, timeout_error = found

    class Broken:
        LatexExtractionConfig = library.LatexExtractionConfig
        ExprExtractionConfig = library.ExprExtractionConfig

        @staticmethod
        def parse(*args: object, **kwargs: object) -> list[object]:
            raise timeout_error("too slow")

        @staticmethod
        def verify(*args: object, **kwargs: object) -> bool:
            raise RuntimeError("boom")

    monkeypatch.setattr(math_equivalence, "_math_verify", lambda: (Broken, timeout_error))
    math_equivalence._parse.cache_clear()
    try:
        assert not math_equal("y^2+1", "1+y^2")
    finally:
        math_equivalence._parse.cache_clear()
