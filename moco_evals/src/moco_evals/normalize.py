"""Normalising free-form answers so that equal answers compare equal as strings.

Numbers are parsed exactly with ``fractions.Fraction`` (never ``eval``) and written in one
canonical form, so ``1,000``, ``1000.00`` and ``+1000`` all become ``1000`` and ``\\frac{1}{2}``,
``1/2`` and ``0.5`` all become ``0.5``; voting methods can then count identical strings.
"""

from __future__ import annotations

import re
from fractions import Fraction

from moco_evals.latex import frac_arguments, unwrap_text_commands

_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d{1,3})?")
_GROUPED_NUMBER = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_SLASH_FRACTION = re.compile(r"([+-]?\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)")
_SCIENTIFIC = re.compile(
    r"(.+?)\s*(?:\\times|\\cdot|×|\*|x)\s*10\s*\^\s*"
    r"(?:\{\s*(?P<braced>[+-]?\d{1,3})\s*\}|\(\s*(?P<parens>[+-]?\d{1,3})\s*\)|(?P<bare>[+-]?\d{1,3}))"
)
_MAX_DIGITS = 1000

_REMOVED = re.compile(
    r"\\(?:left|right)(?![A-Za-z])|\\[!,;:]|\\?\$|\\?%|\^\{\\circ\}|\^\\circ|\\circ(?![A-Za-z])|\\[()\[\]]"
)
_SPACES = re.compile(r"\\ |~")
_LEADING_PUNCTUATION = ",;:!?\"'*`"
_TRAILING_PUNCTUATION = ".,;:!?\"'*`"
_ESCAPED_BRACE = re.compile(r"\\([{}])")
_OPTION_LETTER = re.compile(r"\(([a-z])\)")
_ARTICLE = re.compile(r"\b(?:a|an|the)\s+(?=[a-z])")
_ASSIGNMENT = re.compile(r"^[a-z][a-z0-9_]*\s*=\s*(.+)$")
# Each unit word must end at a space or the end, so the match is unambiguous (no backtracking blow-up).
_UNIT_TAIL = re.compile(r"^([^\sa-z]\S*?)\s*((?:[a-z]{2,}\.?(?:\s+|$))+)$")
_MAX_UNIT_TEXT = 200
_NOT_UNITS = frozenset({"pi", "sqrt", "ln", "log", "sin", "cos", "tan", "exp", "inf", "infty", "infinity", "mod"})


def parse_number(text: str) -> Fraction | None:
    """The exact value of a number written as an integer, decimal, ``a/b``, ``\\frac{a}{b}`` or
    ``a \\times 10^{k}``.

    Thousands separators and a leading ``+`` are accepted; anything else (expressions,
    units, words) gives None.  Pure parsing, so hostile text cannot run code.
    """
    text = text.strip().replace("−", "-")
    if not text or len(text) > _MAX_DIGITS:
        return None
    if _GROUPED_NUMBER.fullmatch(text):
        text = text.replace(",", "")
    try:
        if _PLAIN_NUMBER.fullmatch(text):
            return Fraction(text)
        slash = _SLASH_FRACTION.fullmatch(text)
        if slash:
            numerator, denominator = Fraction(slash.group(1)), Fraction(slash.group(2))
            return None if denominator == 0 else numerator / denominator
    except (ValueError, ZeroDivisionError):
        return None
    sign = 1
    if text[0] in "+-":
        sign = -1 if text[0] == "-" else 1
        text = text[1:].lstrip()
    scientific = _SCIENTIFIC.fullmatch(text) if "^" in text else None
    if scientific:
        mantissa = parse_number(scientific.group(1))
        exponent = scientific.group("braced") or scientific.group("parens") or scientific.group("bare")
        return None if mantissa is None else sign * mantissa * Fraction(10) ** int(exponent)
    parts = frac_arguments(text)
    if parts is None:
        return None
    numerator, denominator = parse_number(parts[0]), parse_number(parts[1])
    if numerator is None or denominator is None or denominator == 0:
        return None
    return sign * numerator / denominator


def format_number(value: Fraction) -> str:
    """One canonical spelling: an integer, a terminating decimal, or ``p/q``."""
    if value.denominator == 1:
        return str(value.numerator)
    rest, twos, fives = value.denominator, 0, 0
    while rest % 2 == 0:
        rest, twos = rest // 2, twos + 1
    while rest % 5 == 0:
        rest, fives = rest // 5, fives + 1
    if rest != 1:
        return f"{value.numerator}/{value.denominator}"
    places = max(twos, fives)
    digits = str(abs(value.numerator) * 10**places // value.denominator).rjust(places + 1, "0")
    sign = "-" if value < 0 else ""
    return f"{sign}{digits[:-places]}.{digits[-places:]}"


def _strip_ends(text: str) -> str:
    previous = None
    while previous != text:
        previous = text
        text = text.strip().lstrip(_LEADING_PUNCTUATION).rstrip(_TRAILING_PUNCTUATION)
    return text


def normalize_answer(answer: object) -> str:
    """A canonical string for a free-form answer (model output or gold).

    Lowercase; LaTeX formatting (``$``, ``\\text{}``, spacing commands, ``%``, degrees)
    removed; punctuation at the ends, leading articles and extra whitespace dropped;
    ``x = 5`` reduced to ``5``; an option letter ``(B)`` reduced to ``b``; a number followed only
    by unit words reduced to the number; numbers written canonically (see ``format_number``).
    """
    text = str(answer).replace("−", "-").replace("{,}", ",")
    text = _ESCAPED_BRACE.sub(r"\1", unwrap_text_commands(text))
    text = _SPACES.sub(" ", _REMOVED.sub("", text))
    text = re.sub(r"\\[dt]frac(?![A-Za-z])", r"\\frac", text)
    text = " ".join(text.lower().split())
    text = _strip_ends(text)
    text = _ARTICLE.sub("", text)
    if text.count("=") == 1:
        assignment = _ASSIGNMENT.match(text)
        if assignment:
            text = _strip_ends(assignment.group(1))
    option = _OPTION_LETTER.fullmatch(text)
    if option:
        return option.group(1)
    value = parse_number(text)
    if value is None and len(text) <= _MAX_UNIT_TEXT:
        units = _UNIT_TAIL.match(text)
        if units and not set(units.group(2).replace(".", " ").split()) & _NOT_UNITS:
            value = parse_number(_strip_ends(units.group(1)))
    return format_number(value) if value is not None else text
