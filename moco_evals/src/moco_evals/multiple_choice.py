"""The ``multiple_choice`` task type: find which option key a free-text answer chose.

Models state their choice in many ways ("(B)", "Answer: B", "**B**", ``\\boxed{B}``, the
option's text).  An explicit statement ("the answer is X", "Answer: X", a box) beats a mere
mention, and the last explicit statement wins because models often revise themselves; among
mere mentions the first wins.  A key is never read out of an ordinary word, and a bare
capital such as the article "A" only counts when it is the whole answer or is marked as a key
(an unmarked "I'm" or "A dog" is a word, not a key).  A bold or standalone key on the last
non-empty line ("Therefore, **C**.") is a statement too.  Lines that merely restate an option
("A) Paris" in a copied options list) are not answers; a key or option preceded by "not",
"isn't", "rather than" or "instead of" is not an answer; "the answer is (A) or (C)" is a
conflict and chooses nothing.  A one-word option also matches its simple word forms
("refuted" for "refute").

A key right after a committing phrase ("it's C", "I'd say B.", "Definitely D.", "..., so B.")
is a statement too, which makes a self-correction ("the answer is A... no wait, it's B.") end
on its last committed answer; so is a key that closes the last line after a comma or colon.
A key labelled with another option's text ("(C) <text of D>") is a conflict: it chooses
nothing, and ``choice_conflict`` (the ``answer_conflict`` extra metric) records it.  Option
text is compared without a leading "the".
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
    r"(?i)\b(?:(?:final|correct|best|right)\s+)?(?:answer|option|choice)\b(?:\s+here)?\**\s*"
    r"(?:(?:is|would\s+be|should\s+be|must\s+be|will\s+be)\b\s*[:：]?|[:：=]|[-–—](?=\s))"
)
_WINDOW = 2000
_CONFLICT = "\0conflict"
_NEGATION = re.compile(
    r"(?i)(?:\bnot|n['’]t|\bnever|\brather\s+than|\binstead\s+of)\s*"
    r"(?:(?:the\s+)?(?:option|choice|letter)\s+)?[(\[*_\"'`$]*\s*$"
)
_DECISION_PHRASE = re.compile(
    r"(?i)\bI(?:['’]ll|\s+will|['’]d|\s+would|\s+)\s*(?:go\s+with|choose|pick|select|opt\s+for)\b\s*:?"
)
# Phrases that commit to whatever key follows them directly ("I'd say B.", "it's C", "so D.").
_COMMITMENT = (
    r"(?:(?i:\b(?:it['’]s|it\s+(?:is|must\s+be|should\s+be|would\s+be|has\s+to\s+be)|must\s+be|has\s+to\s+be|"
    r"(?:I['’]m\s+)?going\s+with|(?:I['’]d\s+|I['’]m\s+|I\s+)?lean(?:ing|s)?\s+(?:towards?|to)|"
    r"(?:I['’]d|I\s+would|I['’]ll|I\s+will|I)\s+(?:say|go\s+with|choose|pick|select|opt\s+for)|"
    r"definitely|probably|likely|clearly|surely|so|thus|therefore|hence))\b|=>|⇒|→)[ \t:,]*"
)
# A labelled result that is not called an answer: "Correct: C", "My pick: B", "Verdict: A".
_LABEL_PHRASE = re.compile(r"(?i)\b(?:correct|result|verdict|pick|selection|conclusion)\**\s*[:：]")
# What may follow a committed key: the end of a clause, or a reason or contrast.
_COMMITMENT_END = (
    r"(?=[.!;,]|[ \t]*(?:\n|$)|[ \t]+(?i:not|rather|instead|because|since|as|but|over|"
    r"is\s+(?:the\s+)?(?:correct|right|best|answer))\b)"
)
# Between a key and the option text it is labelled with: "(C) text", "C: text", "**C** - text".
_LABEL_GAP = re.compile(r"(?:[)\]]\**|\*\*)[ \t]*(?:[:,\-–—][ \t]*)?|[ \t]*[:\-–—][ \t]*")
# Where a short option text ends when it is a label's whole text: "(C) No." but not "(C) no doubt".
_LABEL_END = re.compile(r"$|[,.;:)!?]|\s+(?:because|since|as|[-–—])(?:\s|$)")
_CLOSED_LABEL_GAP = re.compile(r"\**[ \t]*(?:[:,\-–—][ \t]*)?")
_CONCLUSION = re.compile(
    r"(?i)^[ \t>#*-]*(?:(?:so|thus|therefore|hence|overall|in\s+conclusion|finally|final)\b[,:]?\s*)+"
)
# Words an unmarked "A" or "I" may be followed by and still be a key ("A because ...").
_KEY_FOLLOWERS = frozenset({"because", "since", "as", "is", "was", "seems", "here", "for", "given", "which"})
_WORD_KEYS = frozenset({"A", "I"})
_ALNUM = re.compile(r"[A-Za-z0-9]")
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
    restated: re.Pattern[str]
    bold: re.Pattern[str]
    final_key: re.Pattern[str]
    alternative: re.Pattern[str]
    commitment: re.Pattern[str]
    listed: re.Pattern[str]
    trailing: re.Pattern[str]
    list_end: re.Pattern[str]


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
        weak.append((re.compile(rf"(?m)^[ \t>#*-]*{key}(?:[.:,]|[ \t]+[-–—])(?:\s|$)"), False))
    return _KeyPatterns(
        by_upper={k.upper(): k for k in keys},
        exact=frozenset(keys) | {k.upper() for k in keys},
        after_phrase=re.compile(
            rf"(?P<lead>(?:\s|\*|_|\$|\\boxed\s*\{{|\\text(?:bf)?\s*\{{|[(\[\"'`]|(?i:option|choice|letter)\s+)*){key}"
        ),
        reversed_claim=re.compile(
            rf"(?P<lead>(?i:(?:option|choice)\s+)?[(\[]?){key}(?P<close>[)\]]?)\**\s+"
            r"(?i:(?:is|would\s+be|must\s+be|should\s+be|seems|appears)\s+(?:to\s+be\s+)?(?:the\s+|my\s+)?"
            r"(?:(?:most\s+)?(?:correct|right|best|accurate|appropriate|likely)|(?:final\s+)?answer|one)\b"
            r"|it\s+is\s*[.!]?\s*$)"
        ),
        weak=tuple(weak),
        fragment_start=re.compile(rf"[(\[]?\s*{key}\s*[)\].:]"),
        restated=re.compile(rf"(?m)^[ \t>#*-]*[(\[]?\s*{key}\s*[)\].:][ \t]*(?P<rest>[^\n]*)$"),
        bold=re.compile(rf"\*\*\s*[(\[]?\s*{key}\s*(?:[)\].:]|\*\*)"),
        final_key=re.compile(
            rf"(?i:\b(?:is|it['’]s|be|but|probably|likely|definitely|clearly|say|pick|choose|with))\s+"
            rf"(?P<lead>[(\[*_]*){key}[)\]*_]*[.!]?\s*$"
        ),
        alternative=re.compile(r"^[)\]*_]*\s*,?\s*(?i:or|and/or|/|and)\s+"),
        commitment=re.compile(rf"{_COMMITMENT}(?P<lead>[(\[*_]*){key}(?P<close>[)\]*_]*){_COMMITMENT_END}"),
        listed=re.compile(rf"[ \t]*(?:,|/|(?i:and|or)\b)[ \t]*(?i:(?:and|or)[ \t]+)?[(\[*]*{key}"),
        trailing=re.compile(rf"[,:：][ \t]+(?P<lead>[(\[]?\**){key}(?P<close>\**[)\]]?)[.!]?[ \t]*$"),
        list_end=re.compile(rf"{key}[)\]*_]*[ \t]*$"),
    )


def choice_keys(example: Example) -> tuple[str, ...]:
    """The option keys of ``example`` in their given order (A-E when it has no choices)."""
    return tuple(example.choices) if example.choices else DEFAULT_KEYS


def _plain(text: str) -> str:
    """Option text reduced for comparison: case, markup, punctuation at the ends, spacing."""
    text = unwrap_text_commands(text).replace("**", "")
    text = " ".join(text.lower().split()).strip(_FRAGMENT_JUNK)
    return text[4:] if text.startswith("the ") else text


def _negated(before: str) -> bool:
    """Whether the text just before a key or option negates it ("not (A)", "rather than B")."""
    return bool(_NEGATION.search(before[-60:]))


def _key_from_match(match: re.Match[str], table: _KeyPatterns, marked: bool) -> str | None:
    """The canonical key of a match; an unmarked key must be written as given or in capitals,
    and is a word rather than a key when it opens a contraction ("I'm") or, for "A" and "I", a
    phrase ("A dog")."""
    written = match.group("key")
    if not marked:
        if written not in table.exact:
            return None
        following = match.string[match.end("key") : match.end("key") + 40]
        if re.match(r"['’][A-Za-z]", following):
            return None
        word = re.match(r"[ \t]+([a-z]+)", following)
        if written.upper() in _WORD_KEYS and word and word.group(1) not in _KEY_FOLLOWERS:
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


def _labelled(key: str, after: str, options: dict[str, str], closed: bool = False) -> str:
    """``key``, or a conflict when the text it labels is another option's ("(C) <text of D>")."""
    gap = (_CLOSED_LABEL_GAP if closed else _LABEL_GAP).match(after)
    if gap is None or not options:
        return key
    rest = _plain(after[gap.end() :].split("\n", 1)[0])
    own = _plain(options.get(key, ""))
    if not rest or (own and re.match(rf"{re.escape(own)}(?![a-z0-9])", rest)):
        return key
    other = _option_opening(rest, options)
    if other is None or other == key:
        return key
    tail = rest[len(_plain(options[other])) :]
    return _CONFLICT if _LABEL_END.match(tail) or len(_plain(options[other]).split()) >= 3 else key


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
    key = table.by_upper.get(start.group("key").upper()) if start else None
    return _labelled(key, text[start.end() :], options, closed=True) if key is not None and start else key


def _after_phrase(rest: str, table: _KeyPatterns, options: dict[str, str]) -> str | None:
    """The key stated right after "the answer is": alone (any case), marked, or as the option's text."""
    line = rest.lstrip().split("\n", 1)[0]
    sentence = re.split(r"\.(?=\s|$)", line, maxsplit=1)[0]
    whole = _key_from_fragment(sentence, table, options, prefix=False) or _option_opening(line, options)
    if whole is not None:
        return whole
    match = table.after_phrase.match(line)
    key = _phrase_key(match, table) if match is not None else None
    if key is None:
        final = table.final_key.search(sentence)
        if final is None or _negated(sentence[: final.start("key")]):
            return None
        return _key_from_match(final, table, bool(final.group("lead")))
    assert match is not None
    alternative = table.alternative.match(line[match.end() :])
    if alternative is not None:
        other = table.after_phrase.match(line, match.end() + alternative.end())
        other_key = _phrase_key(other, table) if other is not None else None
        if other_key is not None and other_key != key:
            return _CONFLICT
    return _labelled(key, line[match.end() :], options)


def _phrase_key(match: re.Match[str], table: _KeyPatterns) -> str | None:
    line = match.string
    after = line[match.end() : match.end() + 1]
    marked = any(c in _MARKERS for c in match.group("lead")) or bool(re.search(r"[A-Za-z]", match.group("lead")))
    return _key_from_match(match, table, marked or (after != "" and after in _CLOSERS))


def _explicit_choices(text: str, table: _KeyPatterns, options: dict[str, str]) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for start, content in boxed_spans(text):
        key = _key_from_fragment(content, table, options)
        if key is not None:
            found.append((start, key))
    for phrases in (_EXPLICIT_PHRASE, _DECISION_PHRASE, _LABEL_PHRASE):
        for phrase in phrases.finditer(text):
            key = _after_phrase(text[phrase.end() : phrase.end() + _WINDOW], table, options)
            if key is not None:
                found.append((phrase.start(), key))
    for claim in table.reversed_claim.finditer(text):
        marked = bool(claim.group("lead").strip() or claim.group("close"))
        key = _key_from_match(claim, table, marked)
        if key is not None and not _negated(text[: claim.start()]):
            found.append((claim.start(), key))
    for commitment in table.commitment.finditer(text):
        marked = bool(commitment.group("lead").strip() or commitment.group("close").strip())
        key = _key_from_match(commitment, table, marked)
        if key is not None and _paired(commitment) and table.listed.match(text, commitment.end()) is None:
            found.append((commitment.start(), _labelled(key, text[commitment.end("key") :], options)))
    last = _last_line_choice(text, table, options)
    if last is not None:
        found.append(last)
    return found


def _content_lines(text: str) -> list[tuple[int, str]]:
    """(offset, line) for each line holding a letter or digit."""
    lines, offset = [], 0
    for line in text.split("\n"):
        if _ALNUM.search(line):
            lines.append((offset, line))
        offset += len(line) + 1
    return lines


def _last_line_choice(text: str, table: _KeyPatterns, options: dict[str, str]) -> tuple[int, str] | None:
    """A bold or standalone key (or the option's text) on the last non-empty line, or a key that
    closes it after a comma or colon ("After weighing both, C.")."""
    lines = _content_lines(text)
    if not lines:
        return None
    start, line = lines[-1]
    lead = _CONCLUSION.match(line)
    offset = lead.end() if lead else 0
    key = _key_from_fragment(line[offset:], table, options, prefix=False)
    if key is not None:
        return (start + offset, key)
    bolds = {}
    for match in table.bold.finditer(line):
        key = _key_from_match(match, table, True)
        if key is not None and not _negated(line[: match.start()]):
            bolds.setdefault(_labelled(key, line[match.end("key") :], options), match.start())
    if len(bolds) == 1:
        key, at = next(iter(bolds.items()))
        return (start + at, key)
    trailing = table.trailing.search(line)
    if trailing is not None and _paired(trailing) and table.list_end.search(line[: trailing.start()]) is None:
        marked = bool(trailing.group("lead").strip() or trailing.group("close").strip())
        key = _key_from_match(trailing, table, marked)
        if key is not None and not _negated(line[: trailing.start("key")]):
            return (start + trailing.start(), key)
    return None


def _paired(match: re.Match[str]) -> bool:
    """Whether a key's opening and closing marks pair up: "(C)" and "C" do, "C]" does not."""
    lead, close = match.group("lead"), match.group("close")
    return ("(" in lead) == (")" in close) and ("[" in lead) == ("]" in close)


def _without_restated_options(text: str, table: _KeyPatterns, options: dict[str, str]) -> tuple[str, str | None]:
    """``text`` with lines that merely restate an option ("A) Paris") blanked out, and the key
    of the last non-empty line when it is a lone restatement (a final "B) London" is an answer)."""
    if not options:
        return text, None
    spans = []
    for match in table.restated.finditer(text):
        key = table.by_upper.get(match.group("key").upper())
        if match.group("key") not in table.exact or key is None or key not in options:
            continue
        if _plain(options[key]) and _plain(match.group("rest")) == _plain(options[key]):
            spans.append((match.start(), match.end(), key))
    if not spans:
        return text, None
    final = None
    lines = _content_lines(text)
    starts = {s: key for s, _, key in spans}
    if lines and lines[-1][0] in starts and (len(lines) < 2 or lines[-2][0] not in starts):
        final = starts[lines[-1][0]]
    for begin, end, _ in spans:
        text = text[:begin] + " " * (end - begin) + text[end:]
    return text, final


def _first_mention(text: str, table: _KeyPatterns, options: dict[str, str]) -> str | None:
    mentions: list[tuple[int, str]] = []
    for pattern, marked in table.weak:
        for match in pattern.finditer(text):
            key = _key_from_match(match, table, marked)
            if key is not None and not _negated(text[: match.start("key")]):
                mentions.append((match.start("key"), _labelled(key, text[match.end("key") :], options)))
                break
    return min(mentions)[1] if mentions else None


def _quoted_option(text: str, options: dict[str, str]) -> str | None:
    """The one option whose full text appears in ``text`` (None when none or several do)."""
    haystack = f" {_plain(text)} "
    found = {}
    for key, option in options.items():
        needle = _plain(option)
        if not needle:
            continue
        pattern = rf"(?<![a-z0-9]){re.escape(needle)}(?![a-z0-9])"
        if re.fullmatch(r"[a-z]{4,}", needle):
            stem = needle[:-1] if needle.endswith("e") else needle
            pattern = rf"(?<![a-z0-9]){re.escape(stem)}(?:e|es|s|ed|d|ing|ive|ation)?(?![a-z0-9])"
        if any(not _negated(haystack[: m.start()]) for m in re.finditer(pattern, haystack)):
            found[key] = needle
    distinct = [k for k, n in found.items() if not any(n != other and n in other for other in found.values())]
    return distinct[0] if len(distinct) == 1 else None


def _choose(example: Example, output: str) -> str | None:
    """The chosen key, ``_CONFLICT`` when the output states contradictory choices, or None."""
    if not output or not output.strip():
        return None
    table = _patterns(choice_keys(example))
    options = example.choices or {}
    whole = _key_from_fragment(output, table, options, prefix=False)
    if whole is not None:
        return whole
    text, restated_last = _without_restated_options(output, table, options)
    explicit = _explicit_choices(text, table, options)
    if restated_last is not None:
        explicit.append((len(text), restated_last))
    if explicit:
        return max(explicit)[1]
    return _first_mention(text, table, options) or _quoted_option(text, options)


def extract_choice(example: Example, output: str) -> str | None:
    """The option key that ``output`` chose, as written in ``example.choices``, or None."""
    key = _choose(example, output)
    return None if key == _CONFLICT else key


def choice_conflict(example: Example, output: str) -> bool:
    """Whether ``output`` states contradictory choices: "(A) or (C)", or a key labelled with
    another option's text ("(C) <text of D>"); such an output chooses nothing."""
    return _choose(example, output) == _CONFLICT


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


def conflict_metrics(
    examples: Sequence[Example], outputs: Sequence[str], options: object = None
) -> list[dict[str, float]]:
    """``answer_conflict`` per item (1.0 when the output chose contradictory options), so the
    conflicts that scored 0 stay visible in the predictions and as a rate in ``metrics.json``."""
    return [{"answer_conflict": float(choice_conflict(e, o))} for e, o in zip(examples, outputs, strict=True)]


def scorer_spec() -> ScorerSpec:
    """The ``multiple_choice`` task type: lettered options, the chosen key against the gold key."""
    return ScorerSpec(
        task_type="multiple_choice",
        prompt=multiple_choice_prompt,
        extract=extract_choice,
        score=score_multiple_choice,
        metric="accuracy",
        extra_metrics=conflict_metrics,
    )
