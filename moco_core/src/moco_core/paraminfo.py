"""What ``moco info`` shows of a parameter model: each field's type, default, allowed values and description."""

from __future__ import annotations

import enum
import typing
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

_BOUNDS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"), ("min_length", "length >="))


def type_name(annotation: Any) -> str:
    """A readable type: ``int``, ``float | None``, ``list[str]``, ``literal`` values shown separately."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return type_name(typing.get_args(annotation)[0])
    if origin is typing.Literal:
        return type(typing.get_args(annotation)[0]).__name__
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " | ".join(type_name(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


def allowed_values(field: FieldInfo) -> str:
    """Literal or enum choices, else numeric and length bounds, else an empty string."""
    annotation = field.annotation
    for candidate in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(candidate) is typing.Literal:
            return ", ".join(str(v) for v in typing.get_args(candidate))
        if isinstance(candidate, type) and issubclass(candidate, enum.Enum):
            return ", ".join(str(m.value) for m in candidate)
    bounds = _bounds(field.metadata)
    if not bounds:
        for candidate in (annotation, *typing.get_args(annotation)):
            for item in typing.get_args(candidate):
                if typing.get_origin(item) is typing.Annotated and _bounds(item.__metadata__):
                    return "each " + ", ".join(_bounds(item.__metadata__))
    return ", ".join(bounds)


def _bounds(metadata: Any) -> list[str]:
    found = []
    for constraint in metadata:
        if isinstance(constraint, FieldInfo):
            found += _bounds(constraint.metadata)
            continue
        for attribute, symbol in _BOUNDS:
            value = getattr(constraint, attribute, None)
            if value is not None:
                found.append(f"{symbol} {value}")
    return found


def describe_params(model: type[BaseModel]) -> list[dict[str, Any]]:
    """One record per parameter: name, type, default (None when required), required, allowed, description."""
    records = []
    for name, field in model.model_fields.items():
        required = field.is_required()
        default = None if required else field.get_default(call_default_factory=True)
        if isinstance(default, BaseModel):
            default = default.model_dump(mode="json")
        records.append(
            {
                "name": name,
                "type": type_name(field.annotation),
                "default": default,
                "required": required,
                "allowed": allowed_values(field),
                "description": field.description or "",
            }
        )
    return records
