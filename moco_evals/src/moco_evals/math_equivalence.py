"""Symbolic equality of maths answers through math-verify (sympy), as the slow last resort.

String and exact-number comparison (``normalize.py``) settle most answers in microseconds;
math-verify takes milliseconds to seconds and can hang on adversarial LaTeX, so it only runs
when both sides look like maths, each side is short, and a time limit applies.  It is
imported lazily: scoring without it installed still works, without the symbolic step.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from functools import lru_cache
from typing import Any

MAX_CHARS = 400
TIMEOUT_SECONDS = 3

_COMMAND = re.compile(r"\\(?:begin|end)\s*\{[A-Za-z*]+\}|\\[A-Za-z]+")
_WORD = re.compile(r"[A-Za-z]{3,}")
_OPERAND = re.compile(r"[0-9A-Za-zπ√∞]")
_MATH_WORDS = frozenset(
    {"sqrt", "pi", "sin", "cos", "tan", "cot", "sec", "csc", "log", "exp", "inf", "infty", "oo", "arcsin", "arccos"}
    | {"arctan", "sinh", "cosh", "tanh", "det", "mod", "gcd", "lcm", "max", "min"}
)
_log = logging.getLogger(__name__)


def looks_mathematical(text: str) -> bool:
    """Whether ``text`` is a short formula rather than prose, so symbolic parsing can help.

    Prose such as "zzz", "Friday" or "\\text{ even}" would parse as a product of variables
    (``z*z*z``) and waste a sympy call, so any bare word of three or more letters that is not
    a function name disqualifies the text; so does the lack of any number or variable (BBH's
    bracket sequences such as "} ) }").
    """
    if not text or len(text) > MAX_CHARS:
        return False
    bare = _COMMAND.sub(" ", text)
    if any(word.lower() not in _MATH_WORDS for word in _WORD.findall(bare)):
        return False
    return bool(_OPERAND.search(text))


@lru_cache(maxsize=1)
def _math_verify() -> tuple[Any, type[BaseException]] | None:
    """The math-verify module and its timeout exception (a ``BaseException``), or None."""
    try:
        import math_verify
        from math_verify.errors import TimeoutException
    except ImportError:
        return None
    return math_verify, TimeoutException


def _timeout() -> int | None:
    """math-verify's time limit uses SIGALRM, which only the main thread may set."""
    return TIMEOUT_SECONDS if threading.current_thread() is threading.main_thread() else None


_PLAIN_NAMES = re.compile(r"(?<![\\A-Za-z])(pi|sqrt|infty|infinity|inf)(?![A-Za-z])|π|√|∞")
_SQRT_CALL = re.compile(r"(?:\\?sqrt|√)\s*\(([^()]*)\)")
_LATEX_NAMES = {"pi": r"\pi", "π": r"\pi", "sqrt": r"\sqrt", "√": r"\sqrt", "infty": r"\infty"}


def _as_latex(text: str) -> str:
    """Inline LaTeX for math-verify, with plain ``pi``/``sqrt``/``inf`` spelled as commands
    (inside ``$...$`` a bare ``pi`` would read as the product ``p*i``)."""
    body = _SQRT_CALL.sub(r"\\sqrt{\1}", text.strip().strip("$").strip())
    body = _PLAIN_NAMES.sub(lambda m: _LATEX_NAMES.get(m.group(0), r"\infty"), body)
    return f"${body}$"


@lru_cache(maxsize=4096)
def _parse(text: str) -> tuple[Any, ...]:
    """math-verify's parse of ``text`` read as inline LaTeX (cached: golds repeat across outputs)."""
    found = _math_verify()
    if found is None:
        return ()
    library, timeout_error = found
    config = [library.LatexExtractionConfig(), library.ExprExtractionConfig()]
    try:
        return tuple(library.parse(_as_latex(text), extraction_config=config, parsing_timeout=_timeout()))
    except (Exception, timeout_error) as exc:  # whatever sympy raises must not end a run
        _log.debug("math-verify could not parse %r: %s", text, exc)
        return ()


def math_equal(prediction: str, gold: str) -> bool:
    """Whether ``prediction`` equals ``gold`` as mathematics (``\\frac{1}{2}`` = ``0.5``,
    ``8x^2+18x^3`` = ``18x^3+8x^2``, intervals, sets, matrices, ``2\\sqrt{10}`` = ``\\sqrt{40}``).

    False when either side is not maths, math-verify is missing, fails or runs out of time.
    """
    if not (looks_mathematical(prediction) and looks_mathematical(gold)):
        return False
    found = _math_verify()
    if found is None:
        return False
    library, timeout_error = found
    parsed_gold, parsed_prediction = _parse(gold), _parse(prediction)
    if not parsed_gold or not parsed_prediction:
        return False
    try:
        return bool(library.verify(list(parsed_gold), list(parsed_prediction), timeout_seconds=_timeout()))
    except (Exception, timeout_error) as exc:
        _log.debug("math-verify could not compare %r and %r: %s", prediction, gold, exc)
        return False


def numeric_value(text: str) -> float | None:
    """The value of an irrational closed-form number such as ``\\frac{\\pi}{6}`` or ``2\\sqrt{3}``, or None.

    For answers compared with a tolerance (TheoremQA floats) when the model kept the exact form.
    A rational value can be written as a plain number, so an expression for one
    (``\\sqrt[4]{12960000}``, ``\\dbinom{25}{2}``) is an unfinished answer and has none.
    """
    if not looks_mathematical(text) or _math_verify() is None:
        return None
    for parsed in _parse(text):
        try:
            if getattr(parsed, "is_rational", None):
                return None
            if getattr(parsed, "is_number", False) and getattr(parsed, "is_real", False):
                value = float(parsed.evalf())
                if math.isfinite(value):
                    return value
        except Exception:
            continue
    return None
