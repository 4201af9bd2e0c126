"""The parameters of the example method, as a pydantic model.

moco validates ``params:`` from the run config against this model before any model loads, so
a typo or a bad value fails with one line naming the field.  ``moco info template_longest_answer``
prints each field with its default and ``description``.  This module is imported when the
plugin registers, so it must stay light: pydantic only, no torch.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class LongestAnswerParams(BaseModel):
    # extra="forbid" turns an unknown key (a typo such as ``topk``) into an error instead of
    # silently running with the default; every moco method does this.
    model_config = ConfigDict(extra="forbid")

    top_k: int | None = Field(
        default=None,
        ge=1,
        description="only the top_k models by dev score compete (None: every pool model, no dev pass)",
    )
