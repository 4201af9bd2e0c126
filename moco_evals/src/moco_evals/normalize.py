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
# Words that may follow a final number and be dropped: units of money, time, length, area, mass,
# volume, speed, temperature, percentages and counts, singular and plural.
_UNIT_TEXT = """
    dollar dollars usd cent cents euro euros eur pound pounds gbp yen rupee rupees yuan
    second seconds sec secs minute minutes min mins hour hours hr hrs day days week weeks
    month months year years yr yrs decade decades century centuries ms
    meter meters metre metres cm mm km centimeter centimeters centimetre centimetres millimeter
    millimeters kilometer kilometers kilometre kilometres inch inches ft foot feet yard yards yd
    mile miles mi nm micrometer micrometers
    square sq cubic units unit
    gram grams kg mg kilogram kilograms milligram milligrams lb lbs ounce ounces oz ton tons tonne
    tonnes
    liter liters litre litres ml milliliter milliliters millilitre millilitres gallon gallons gal
    quart quarts pint pints cup cups tablespoon tablespoons teaspoon teaspoons
    mph kph kmh mps
    degree degrees deg celsius fahrenheit kelvin
    percent percentage percentages pct point points pt pts
    watt watts kw kwh joule joules newton newtons volt volts amp amps ampere amperes ohm ohms hz
    mol mole moles
"""
UNIT_WORDS = frozenset(_UNIT_TEXT.split())
# A number followed by one of these is a scaled number: "3 million" is 3000000.
SCALE_WORDS = {"dozen": 12, "hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9, "trillion": 10**12}
# A number followed by one of these is part of a larger statement, not a final number.
_CONTINUATION_TEXT = (
    "or and to times plus minus squared cubed over divided multiplied more less fewer than of by is are was were x"
)
CONTINUATION_WORDS = frozenset(_CONTINUATION_TEXT.split())
# A plural noun of a count ("18 eggs") may also be dropped, unless it is one of these.
_NOT_PLURAL_COUNTS = frozenset(
    {"times", "is", "was", "has", "this", "thus", "yes", "as", "less", "plus", "minus", "always"}
)


def _unit_scale(words: list[str]) -> Fraction | None:
    """The factor a tail of words after a number stands for (1 for units), or None when the
    words are not units: "million dollars" gives 10**6, "or more" and "squared" give None."""
    factor = Fraction(1)
    for index, word in enumerate(words):
        if word in SCALE_WORDS and index == 0:
            factor *= SCALE_WORDS[word]
        elif word in UNIT_WORDS or (
            index == len(words) - 1
            and len(word) >= 3
            and word.endswith("s")
            and word not in _NOT_PLURAL_COUNTS
            and word not in CONTINUATION_WORDS
        ):
            continue
        else:
            return None
    return factor


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


def _clean(answer: object) -> str:
    """Lowercased text without LaTeX formatting, outer punctuation or articles."""
    text = str(answer).replace("−", "-").replace("{,}", ",")
    text = _ESCAPED_BRACE.sub(r"\1", unwrap_text_commands(text))
    text = _SPACES.sub(" ", _REMOVED.sub("", text))
    text = re.sub(r"\\[dt]frac(?![A-Za-z])", r"\\frac", text)
    text = " ".join(text.lower().split())
    text = _strip_ends(text)
    return _ARTICLE.sub("", text)


def assigned_variable(answer: object) -> str | None:
    """The variable a single assignment such as ``x = 5`` names (``"x"``), else None."""
    text = _clean(answer)
    if text.count("=") != 1 or not _ASSIGNMENT.match(text):
        return None
    return text.split("=", 1)[0].strip()


def normalize_answer(answer: object) -> str:
    """A canonical string for a free-form answer (model output or gold).

    Lowercase; LaTeX formatting (``$``, ``\\text{}``, spacing commands, ``%``, degrees)
    removed; punctuation at the ends, leading articles and extra whitespace dropped;
    ``x = 5`` reduced to ``5``; an option letter ``(B)`` reduced to ``b``; a number followed only
    by unit words (``UNIT_WORDS``, or one count noun such as "eggs") reduced to the number, and by a
    scale word ("3 million") multiplied out; numbers written canonically (see ``format_number``).
    """
    text = _clean(answer)
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
        if units:
            factor = _unit_scale(units.group(2).replace(".", " ").split())
            number = parse_number(_strip_ends(units.group(1))) if factor is not None else None
            value = None if number is None else number * factor
    return format_number(value) if value is not None else text
