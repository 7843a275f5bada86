"""Strict request types, shared by every request body (issue 11, "loose types").

:class:`StrictRequest` is the base of every request model: JSON fields must have JSON types
(``true``/``false`` for booleans, numbers for numbers; ``"yes"``, ``"0"`` or ``"0.5"`` are refused).
Form fields (multipart or urlencoded) are always strings, so :meth:`StrictRequest.from_form`
converts them by the field's declared type first: booleans from exactly ``true``, ``false``,
``1`` or ``0``; integers and numbers from their decimal spelling; anything else is left to the
strict validation. A field added to a subclass inherits all of this from its annotation alone.
"""

from __future__ import annotations

import math
import re
import types
from typing import Annotated, Any, Self, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError

from midiscribe.service.api.errors import ApiError

_INT = re.compile(r"[+-]?\d{1,18}")
_FLOAT = re.compile(r"[+-]?(\d{1,18}(\.\d{0,18})?|\.\d{1,18})([eE][+-]?\d{1,3})?")
_BOOLS = {"true": True, "false": False, "1": True, "0": False}


class StrictRequest(BaseModel):
    """Unknown fields are ignored (as the original API does); known ones must have their own type."""

    model_config = ConfigDict(strict=True, extra="ignore")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ApiError(400, "invalid_parameters", describe(exc)) from None

    @classmethod
    def from_form(cls, fields: dict[str, str]) -> Self:
        converted = {name: _convert(cls, name, value) for name, value in fields.items()}
        return cls.from_json(converted)


def describe(exc: ValidationError) -> str:
    """Which field, and what is wrong with it; never the value sent (it may be huge or secret)."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def _convert(model: type[BaseModel], name: str, value: str) -> Any:
    field = model.model_fields.get(name)
    if field is None:
        return value
    kind = _scalar(field.annotation)
    if kind is bool:
        if value not in _BOOLS:
            raise ApiError(400, "invalid_parameters", f"{name}: a form field must be true, false, 1 or 0")
        return _BOOLS[value]
    if kind in (int, float) and not value.strip() and _optional(field.annotation):
        return None
    if kind is int:
        if not _INT.fullmatch(value):
            raise ApiError(400, "invalid_parameters", f"{name}: must be a whole number")
        return int(value)
    if kind is float:
        number = float(value) if _FLOAT.fullmatch(value) else math.nan
        if not math.isfinite(number):
            raise ApiError(400, "invalid_parameters", f"{name}: must be a number")
        return number
    return value


def _members(annotation: Any) -> tuple[Any, ...]:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _members(get_args(annotation)[0])
    if origin is Union or isinstance(annotation, types.UnionType):
        return tuple(m for arg in get_args(annotation) for m in _members(arg))
    return (annotation,)


def _scalar(annotation: Any) -> type | None:
    members = set(_members(annotation))
    for kind in (bool, int, float):  # bool first: it is an int too
        if kind in members:
            return kind
    return None


def _optional(annotation: Any) -> bool:
    return type(None) in _members(annotation)
