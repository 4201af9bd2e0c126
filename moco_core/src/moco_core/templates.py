"""Prompt templates as method parameters, for every family and a lab's plugin.

A template is a ``str.format`` string.  Its placeholders are the values the method fills in, so
an override may reword, reorder or drop them but not invent new ones; a bad override is refused
when the parameters are validated, before any model loads, in one line naming the field.
"""

from __future__ import annotations

from collections.abc import Callable
from string import Formatter
from typing import Annotated, Any

from pydantic import AfterValidator, Field


def placeholders(template: str) -> set[str]:
    """The named fields of a ``str.format`` template (raises ValueError on unbalanced braces)."""
    return {name for _, name, _, _ in Formatter().parse(template) if name is not None}


def _fits(allowed: tuple[str, ...]) -> Callable[[str], str]:
    def check(template: str) -> str:
        try:
            found = placeholders(template)
        except ValueError as exc:
            raise ValueError(f"not a valid template ({exc}); write literal braces as {{{{ and }}}}") from None
        unknown = sorted(found - set(allowed))
        if unknown:
            known = ", ".join("{" + name + "}" for name in allowed) or "none"
            raise ValueError(f"unknown placeholder {{{unknown[0]}}} (this template knows {known})")
        return template

    return check


def template_type(*allowed: str) -> Any:
    """A ``str`` parameter type accepting only templates whose placeholders are in ``allowed``."""
    return Annotated[str, AfterValidator(_fits(allowed))]


def template_field(default: str, purpose: str, *allowed: str) -> Any:
    """A template parameter: its description (shown by ``moco info``) lists the placeholders."""
    names = ", ".join("{" + name + "}" for name in allowed)
    return Field(default=default, description=f"prompt template: {purpose}; placeholders {names}")
