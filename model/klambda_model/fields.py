"""The field table: every resource field declares its type, bounds, default and description once.

Resource classes are frozen dataclasses whose fields are built with :func:`spec_field`.
The metadata attached here drives three things, so they cannot drift apart:

* validation and decoding of user documents (:mod:`klambda_model.decode`),
* the CRD ``openAPIV3Schema`` and CEL rules (:mod:`klambda_model.crd`),
* the field reference in ``docs/resources.md``.

Cross-field constraints are :class:`Rule` objects listed in a class's ``__rules__``; each
carries a Python check (used locally) and, where expressible, the CEL rule and message the
API server enforces.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

META_KEY = "klambda"


@dataclass(frozen=True)
class Constraints:
    """Constraints of a scalar value (a field, an array item, or a map value)."""

    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[str, ...] = ()
    pattern: str = ""  # RE2-compatible (no lookarounds): it is copied into the CRD
    pattern_hint: str = ""  # what the pattern means, for error messages
    min_length: int | None = None
    max_length: int | None = None


@dataclass(frozen=True)
class FieldMeta:
    description: str
    json_name: str = ""
    required: bool = False
    value: Constraints = Constraints()  # the field's own value (or array items / map values)
    min_items: int | None = None
    max_items: int | None = None
    key: Constraints = Constraints()  # map keys
    crd_default: bool = True  # emit the dataclass default as the CRD default


@dataclass(frozen=True)
class Rule:
    """A constraint over several fields of one object.

    ``check`` receives the object as the user wrote it (JSON names, raw values; it must be
    robust to wrong types, which are reported separately) and returns an error message or
    ``None``. ``cel`` is the equivalent x-kubernetes-validations rule ("" if CEL cannot
    express it: then only ``klambda apply`` and the operator enforce it). ``field`` is the
    JSON name the error is reported on ("" = the object itself).
    """

    message: str
    check: Callable[[Mapping[str, Any]], str | None]
    cel: str = ""
    field: str = ""


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def spec_field(
    *,
    description: str,
    default: Any = dataclasses.MISSING,
    factory: Callable[[], Any] | None = None,
    json_name: str = "",
    min_items: int | None = None,
    max_items: int | None = None,
    key: Constraints = Constraints(),
    crd_default: bool = True,
    **value: Any,
) -> Any:
    """Declares one field. Without ``default``/``factory`` the field is required."""
    required = default is dataclasses.MISSING and factory is None
    meta = FieldMeta(
        description=description,
        json_name=json_name,
        required=required,
        value=Constraints(**value),
        min_items=min_items,
        max_items=max_items,
        key=key,
        crd_default=crd_default,
    )
    md = {META_KEY: meta}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=md)
    if required:
        return dataclasses.field(metadata=md)
    return dataclasses.field(default=default, metadata=md)


def exactly_one(*names: str, cel: bool = True) -> Rule:
    """Exactly one of ``names`` must be set (non-null)."""
    listed = ", ".join(names)

    def check(obj: Mapping[str, Any]) -> str | None:
        found = [n for n in names if obj.get(n) is not None]
        if len(found) == 1:
            return None
        return f"exactly one of {listed} must be set (found {len(found)}" + (
            f": {', '.join(found)})" if found else ")"
        )

    expr = " + ".join(f"(has(self.{n}) ? 1 : 0)" for n in names) + " == 1"
    return Rule(
        message=f"exactly one of {listed} must be set", check=check, cel=expr if cel else ""
    )


def field_meta(f: dataclasses.Field[Any]) -> FieldMeta:
    meta = f.metadata.get(META_KEY)
    if not isinstance(meta, FieldMeta):
        raise TypeError(f"field {f.name} was not declared with spec_field()")
    return meta


def json_name(f: dataclasses.Field[Any]) -> str:
    return field_meta(f).json_name or camel(f.name)
