"""The ``multiple_choice`` task type: find which option key a free-text answer chose.

Models state their choice in many ways ("(B)", "Answer: B", "**B**", ``\\boxed{B}``, the
option's text).  An explicit statement ("the answer is X", "Answer: X", a box) beats a mere
mention, and the last explicit statement wins because models often revise themselves; among
mere mentions the first wins.  A key is never read out of an ordinary word, and a bare
capital such as the article "A" only counts when it is the whole answer or is marked as a key.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from moco_core.registry import ScorerSpec
from moco_core.types import Example
from moco_evals.latex import boxed_spans, unwrap_text_commands
from moco_evals.prompts import multiple_choice_prompt
from moco_evals.quirks import is_unscorable

DEFAULT_KEYS = ("A", "B", "C", "D", "E")
_MARKERS = "([{*$\"'`"
_CLOSERS = ")]}*"
_EXPLICIT_PHRASE = re.compile(
    r"(?i)\b(?:(?:final|correct|best|right)\s+)?(?:answer|option|choice)\b\**\s*"
    r"(?:(?:is|would\s+be|should\s+be|must\s+be|will\s+be)\b\s*[:：]?|[:：=])"
)
_WINDOW = 2000
_FRAGMENT_JUNK = " \t\n*_$\"'`.:;,!"


@dataclass(frozen=True)
class _KeyPatterns:
    """Regular expressions for one set of option keys (built once per key set)."""

    by_upper: dict[str, str]
    exact: frozenset[str]
    after_phrase: re.Pattern[str]
    reversed_claim: re.Pattern[str]
    weak: tuple[tuple[re.Pattern[str], bool], ...]
    fragment_start: re.Pattern[str]


@lru_cache(maxsize=64)
def _patterns(keys: tuple[str, ...]) -> _KeyPatterns:
    ordered = sorted(keys, key=len, reverse=True)
    alternatives = "|".join(re.escape(k) for k in ordered)
    key = rf"(?<![A-Za-z0-9])(?P<key>(?i:{alternatives}))(?![A-Za-z0-9])(?!\.\d)"
    numeric = all(k.isdigit() for k in keys)
    weak = [
        (re.compile(rf"\(\s*{key}\s*\)"), False),
        (re.compile(rf"\*\*\s*[(\[]?\s*{key}\s*(?:[)\].:]|\*\*)"), False),
        (re.compile(rf"(?i:\b(?:option|choice)\s+)[(\[]?{key}"), True),
        (re.compile(rf"(?m)^[ \t>#*-]*{key}[ \t]*$"), False),
    ]
    if not numeric:
        weak.append((re.compile(rf"(?<![^\s]){key}[)\]]"), False))
        weak.append((re.compile(rf"(?m)^[ \t>#*-]*{key}[.:](?:\s|$)"), False))
    return _KeyPatterns(
        by_upper={k.upper(): k for k in keys},
        exact=frozenset(keys) | {k.upper() for k in keys},
        after_phrase=re.compile(
            rf"(?P<lead>(?:\s|\*|_|\$|\\boxed\s*\{{|\\text(?:bf)?\s*\{{|[(\[\"'`]|(?i:option|choice|letter)\s+)*){key}"
        ),
        reversed_claim=re.compile(
            rf"(?P<lead>(?i:(?:option|choice)\s+)?[(\[]?){key}(?P<close>[)\]]?)\**\s+"
            r"(?i:is\s+(?:the\s+)?(?:correct|right|best)\b)"
        ),
        weak=tuple(weak),
        fragment_start=re.compile(rf"[(\[]?\s*{key}\s*[)\].:]"),
    )


def choice_keys(example: Example) -> tuple[str, ...]:
    """The option keys of ``example`` in their given order (A-E when it has no choices)."""
    return tuple(example.choices) if example.choices else DEFAULT_KEYS


def _plain(text: str) -> str:
    """Option text reduced for comparison: case, markup, punctuation at the ends, spacing."""
    text = unwrap_text_commands(text).replace("**", "")
    return " ".join(text.lower().split()).strip(_FRAGMENT_JUNK)


def _key_from_match(match: re.Match[str], table: _KeyPatterns, marked: bool) -> str | None:
    """The canonical key of a match; an unmarked key must be written as given or in capitals."""
    written = match.group("key")
    if not marked and written not in table.exact:
        return None
    return table.by_upper.get(written.upper())


def _option_equal_to(text: str, options: dict[str, str]) -> str | None:
    wanted = _plain(text)
    if not wanted:
        return None
    found = [key for key, option in options.items() if _plain(option) == wanted]
    return found[0] if len(found) == 1 else None


def _option_opening(text: str, options: dict[str, str]) -> str | None:
    """The option whose whole text opens ``text`` ("Paris, because ..."); the longest wins."""
    plain = _plain(text)
    openings = []
    for key, option in options.items():
        needle = _plain(option)
        if needle and re.match(rf"{re.escape(needle)}(?![a-z0-9])", plain):
            openings.append((len(needle), key))
    if not openings:
        return None
    longest = max(length for length, _ in openings)
    keys = [key for length, key in openings if length == longest]
    return keys[0] if len(keys) == 1 else None


def _key_from_fragment(fragment: str, table: _KeyPatterns, options: dict[str, str], prefix: bool = True) -> str | None:
    """The key when ``fragment`` is the whole answer: a key (any case), the option's text, or
    (with ``prefix``) "B) text"."""
    text = unwrap_text_commands(fragment).strip(_FRAGMENT_JUNK)
    while len(text) > 2 and text[0] in "([" and text[-1] in ")]" and not re.search(r"[()\[\]]", text[1:-1]):
        text = text[1:-1].strip(_FRAGMENT_JUNK)
    if text.upper() in table.by_upper:
        return table.by_upper[text.upper()]
    by_text = _option_equal_to(text, options)
    if by_text is not None or not prefix:
        return by_text
    start = table.fragment_start.match(text)
    return table.by_upper.get(start.group("key").upper()) if start else None


def _after_phrase(rest: str, table: _KeyPatterns, options: dict[str, str]) -> str | None:
    """The key stated right after "the answer is": alone (any case), marked, or as the option's text."""
    line = rest.lstrip().split("\n", 1)[0]
    sentence = re.split(r"\.(?=\s|$)", line, maxsplit=1)[0]
    whole = _key_from_fragment(sentence, table, options, prefix=False) or _option_opening(line, options)
    if whole is not None:
        return whole
    match = table.after_phrase.match(line)
    if match is None:
        return None
    after = line[match.end() : match.end() + 1]
    marked = any(c in _MARKERS for c in match.group("lead")) or bool(re.search(r"[A-Za-z]", match.group("lead")))
    return _key_from_match(match, table, marked or (after != "" and after in _CLOSERS))


def _explicit_choices(text: str, table: _KeyPatterns, options: dict[str, str]) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for start, content in boxed_spans(text):
        key = _key_from_fragment(content, table, options)
        if key is not None:
            found.append((start, key))
    for phrase in _EXPLICIT_PHRASE.finditer(text):
        key = _after_phrase(text[phrase.end() : phrase.end() + _WINDOW], table, options)
        if key is not None:
            found.append((phrase.start(), key))
    for claim in table.reversed_claim.finditer(text):
        marked = bool(claim.group("lead").strip() or claim.group("close"))
        key = _key_from_match(claim, table, marked)
        if key is not None:
            found.append((claim.start(), key))
    return found


def _first_mention(text: str, table: _KeyPatterns) -> str | None:
    mentions: list[tuple[int, str]] = []
    for pattern, marked in table.weak:
        for match in pattern.finditer(text):
            key = _key_from_match(match, table, marked)
            if key is not None:
                mentions.append((match.start("key"), key))
                break
    return min(mentions)[1] if mentions else None


def _quoted_option(text: str, options: dict[str, str]) -> str | None:
    """The one option whose full text appears in ``text`` (None when none or several do)."""
    haystack = f" {_plain(text)} "
    found = {}
    for key, option in options.items():
        needle = _plain(option)
        if needle and re.search(rf"(?<![a-z0-9]){re.escape(needle)}(?![a-z0-9])", haystack):
            found[key] = needle
    distinct = [k for k, n in found.items() if not any(n != other and n in other for other in found.values())]
    return distinct[0] if len(distinct) == 1 else None


def extract_choice(example: Example, output: str) -> str | None:
    """The option key that ``output`` chose, as written in ``example.choices``, or None."""
    if not output or not output.strip():
        return None
    table = _patterns(choice_keys(example))
    options = example.choices or {}
    whole = _key_from_fragment(output, table, options, prefix=False)
    if whole is not None:
        return whole
    explicit = _explicit_choices(output, table, options)
    if explicit:
        return max(explicit)[1]
    return _first_mention(output, table) or _quoted_option(output, options)


def gold_key(example: Example) -> str | None:
    """The gold option key; a gold given as the option's text or in another case is mapped."""
    if example.answer is None:
        return None
    gold = str(example.answer).strip()
    options = example.choices or {}
    if gold in options:
        return gold
    upper = {k.upper(): k for k in options}
    if gold.upper() in upper:
        return upper[gold.upper()]
    return _option_equal_to(gold, options) or gold


def score_multiple_choice(examples: Sequence[Example], outputs: Sequence[str], options: object = None) -> list[float]:
    """1.0 where the chosen key equals the gold key, else 0.0 (no choice found, or an
    unscorable item, scores 0)."""
    if len(examples) != len(outputs):
        raise ValueError(f"{len(examples)} examples but {len(outputs)} outputs")
    scores = []
    for example, output in zip(examples, outputs, strict=True):
        gold = None if is_unscorable(example) else gold_key(example)
        scores.append(float(gold is not None and extract_choice(example, output) == gold))
    return scores


def scorer_spec() -> ScorerSpec:
    """The ``multiple_choice`` task type: lettered options, the chosen key against the gold key."""
    return ScorerSpec(
        task_type="multiple_choice",
        prompt=multiple_choice_prompt,
        extract=extract_choice,
        score=score_multiple_choice,
        metric="accuracy",
    )
