"""Brace-aware helpers for the bits of LaTeX that answers arrive in.

Regular expressions cannot match nested braces, and ``\\boxed{\\frac{1}{2}}`` is the most
common way a model states a maths answer, so these walk the text instead.
"""

from __future__ import annotations

import re

_BOX = re.compile(r"\\(?:boxed|fbox|box)(?![A-Za-z])")
_WRAPPERS = ("text", "textbf", "textit", "textrm", "textsf", "texttt", "mathrm", "mathbf", "mathit", "mbox", "emph")
_WRAPPER = re.compile(r"\\(?:" + "|".join(_WRAPPERS) + r")(?![A-Za-z])\s*(?=\{)")


def braced_group(text: str, start: int) -> tuple[str, int] | None:
    """The content of the ``{...}`` opening at ``text[start]`` and the index after it.

    Escaped braces (``\\{``) do not count. None when the group never closes (a truncated
    generation), so callers can fall back instead of scoring half an answer.
    """
    if start >= len(text) or text[start] != "{":
        return None
    depth = 0
    i = start
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i], i + 1
        i += 1
    return None


def _closing_braces(text: str) -> dict[int, int]:
    """Index of each ``{`` that closes -> index of its ``}``, in one pass (escapes skipped)."""
    closing: dict[int, int] = {}
    stack: list[int] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == "{":
            stack.append(i)
        elif char == "}" and stack:
            closing[stack.pop()] = i
        i += 1
    return closing


def boxed_spans(text: str) -> list[tuple[int, str]]:
    """Every balanced ``\\boxed{...}`` / ``\\fbox{...}`` / ``\\box{...}`` as (position, content), in text order.

    ``\\box{}`` is what the original toolkit's prompts ask for, so its outputs use it.

    ``\\boxed 5`` (no braces) is accepted too; unbalanced boxes are skipped.  Linear in the
    text length, so a degenerate generation full of open boxes stays cheap.
    """
    spans: list[tuple[int, str]] = []
    closing: dict[int, int] | None = None
    for match in _BOX.finditer(text):
        i = match.end()
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == "{":
            closing = _closing_braces(text) if closing is None else closing
            if i in closing:
                spans.append((match.start(), text[i + 1 : closing[i]]))
        elif i > match.end():
            token = re.match(r"[^\s$]+", text[i:])
            if token:
                spans.append((match.start(), token.group(0)))
    return spans


def last_boxed(text: str) -> str | None:
    """The content of the last balanced box in ``text``, or None."""
    spans = boxed_spans(text)
    return spans[-1][1] if spans else None


def unwrap_text_commands(text: str) -> str:
    """Replace ``\\text{X}``-like formatting commands by ``X`` (nested ones too), in one pass."""
    if "\\" not in text:
        return text
    out: list[str] = []
    wrapper_braces: list[bool] = []
    i = 0
    while i < len(text):
        command = _WRAPPER.match(text, i)
        if command is not None:
            wrapper_braces.append(True)
            i = command.end() + 1
            continue
        char = text[i]
        if char == "\\":
            out.append(text[i : i + 2])
            i += 2
            continue
        if char == "{":
            wrapper_braces.append(False)
        elif char == "}" and wrapper_braces and wrapper_braces.pop():
            i += 1
            continue
        out.append(char)
        i += 1
    return "".join(out)


def frac_arguments(text: str) -> tuple[str, str] | None:
    """Numerator and denominator when ``text`` is exactly one ``\\frac``/``\\dfrac``/``\\tfrac``.

    Arguments are braced groups or single characters (``\\frac12``).
    """
    match = re.match(r"\\[dt]?frac(?![A-Za-z])\s*", text)
    if match is None:
        return None
    arguments: list[str] = []
    i = match.end()
    for _ in range(2):
        while i < len(text) and text[i] == " ":
            i += 1
        if i >= len(text):
            return None
        if text[i] == "{":
            group = braced_group(text, i)
            if group is None:
                return None
            arguments.append(group[0])
            i = group[1]
        else:
            arguments.append(text[i])
            i += 1
    if text[i:].strip():
        return None
    return arguments[0], arguments[1]
