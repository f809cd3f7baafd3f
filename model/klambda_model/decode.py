"""Decoding + validation of user documents against the field table.

``decode(cls, data, path, errors)`` walks a dataclass type and the user's data together,
appends every problem as ``"<path>: <message>"`` to ``errors`` (it never stops at the first)
and returns the built instance, or ``None`` when something under it was invalid.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
import types
import typing
from collections.abc import Mapping
from typing import Any

from .fields import Constraints, FieldMeta, Rule, field_meta, json_name

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def join(path: str, key: str) -> str:
    if not path:
        return key
    if _IDENT.match(key):
        return f"{path}.{key}"
    return f'{path}["{key}"]'


def describe(value: Any) -> str:
    """'string "abc"', 'integer 3', 'an object', ... for messages."""
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value:g}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f'string "{shown}"'
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


@dataclasses.dataclass(frozen=True)
class FieldInfo:
    attr: str
    json: str
    type: Any
    meta: FieldMeta


@functools.cache
def object_fields(cls: type) -> tuple[FieldInfo, ...]:
    hints = typing.get_type_hints(cls)
    return tuple(
        FieldInfo(attr=f.name, json=json_name(f), type=hints[f.name], meta=field_meta(f))
        for f in dataclasses.fields(cls)
    )


def rules_of(cls: type) -> tuple[Rule, ...]:
    rules: tuple[Rule, ...] = getattr(cls, "__rules__", ())
    return rules


def ignored_keys(cls: type) -> frozenset[str]:
    ignored: frozenset[str] = getattr(cls, "__ignored__", frozenset())
    return ignored


def unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def decode(cls: type, data: Any, path: str, errors: list[str]) -> Any:
    """Decodes an object of dataclass ``cls``; see the module docstring."""
    if not isinstance(data, Mapping):
        errors.append(f"{path or '<document>'}: expected an object, got {describe(data)}")
        return None
    infos = object_fields(cls)
    known = {i.json: i for i in infos}
    ignored = ignored_keys(cls)
    before = len(errors)
    for key in data:
        if not isinstance(key, str):
            errors.append(f"{path or '<document>'}: field names must be strings, got {key!r}")
        elif key not in known and key not in ignored:
            hint = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
            suffix = f"; did you mean {hint[0]}?" if hint else f"; known fields: {', '.join(known)}"
            errors.append(f"{join(path, key)}: unknown field{suffix}")
    kwargs: dict[str, Any] = {}
    for info in infos:
        raw = data.get(info.json)
        sub = join(path, info.json)
        if raw is None:
            if info.meta.required:
                errors.append(f"{sub}: required field is missing")
            continue
        kwargs[info.attr] = decode_value(info.type, info.meta, raw, sub, errors)
    for rule in rules_of(cls):
        try:
            message = rule.check(data)
        except (TypeError, ValueError, AttributeError):
            message = None  # wrong types: already reported field by field
        if message:
            errors.append(f"{join(path, rule.field) if rule.field else path}: {message}")
    if len(errors) > before:
        return None
    return cls(**kwargs)


def decode_value(tp: Any, meta: FieldMeta, raw: Any, path: str, errors: list[str]) -> Any:
    tp, _ = unwrap_optional(tp)
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return decode(tp, raw, path, errors)
    if origin is tuple:
        (item_tp, _ellipsis) = typing.get_args(tp)
        return _decode_list(item_tp, meta, raw, path, errors)
    if origin in (Mapping, dict):
        _key_tp, value_tp = typing.get_args(tp)
        return _decode_map(value_tp, meta, raw, path, errors)
    return decode_scalar(tp, meta.value, raw, path, errors)


def _decode_list(item_tp: Any, meta: FieldMeta, raw: Any, path: str, errors: list[str]) -> Any:
    if not isinstance(raw, list | tuple):
        errors.append(f"{path}: expected a list, got {describe(raw)}")
        return None
    if meta.max_items is not None and len(raw) > meta.max_items:
        errors.append(f"{path}: at most {meta.max_items} items are allowed (got {len(raw)})")
    if meta.min_items is not None and len(raw) < meta.min_items:
        errors.append(f"{path}: at least {meta.min_items} items are required (got {len(raw)})")
    item_meta = dataclasses.replace(meta, max_items=None, min_items=None)
    return tuple(
        decode_value(item_tp, item_meta, item, f"{path}[{i}]", errors) for i, item in enumerate(raw)
    )


def _decode_map(value_tp: Any, meta: FieldMeta, raw: Any, path: str, errors: list[str]) -> Any:
    if not isinstance(raw, Mapping):
        errors.append(f"{path}: expected an object (a map), got {describe(raw)}")
        return None
    if meta.max_items is not None and len(raw) > meta.max_items:
        errors.append(f"{path}: at most {meta.max_items} entries are allowed (got {len(raw)})")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        skey = str(key).lower() if isinstance(key, bool) else str(key)
        sub = join(path, skey)
        check_string(meta.key, skey, sub, errors, what="key")
        if value is None:
            errors.append(f"{sub}: a value is required (got null)")
            continue
        out[skey] = decode_value(value_tp, dataclasses.replace(meta, max_items=None), value, sub,
                                 errors)
    return out


def decode_scalar(tp: Any, c: Constraints, raw: Any, path: str, errors: list[str]) -> Any:
    if tp is str:
        if isinstance(raw, bool | int | float):
            shown = str(raw).lower() if isinstance(raw, bool) else str(raw)
            errors.append(f'{path}: expected a string, got {describe(raw)} (quote it: "{shown}")')
            return None
        if not isinstance(raw, str):
            errors.append(f"{path}: expected a string, got {describe(raw)}")
            return None
        check_string(c, raw, path, errors)
        return raw
    if tp is bool:
        if not isinstance(raw, bool):
            errors.append(f"{path}: expected true or false, got {describe(raw)}")
            return None
        return raw
    if tp is int:
        if isinstance(raw, float) and raw.is_integer():
            raw = int(raw)
        if isinstance(raw, bool) or not isinstance(raw, int):
            errors.append(f"{path}: expected an integer, got {describe(raw)}")
            return None
        check_number(c, raw, path, errors)
        return raw
    if tp is float:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            errors.append(f"{path}: expected a number, got {describe(raw)}")
            return None
        check_number(c, raw, path, errors)
        return float(raw)
    raise TypeError(f"unsupported field type {tp!r} at {path}")


def _fmt(n: float) -> str:
    return str(int(n)) if float(n).is_integer() else f"{n:g}"


def check_number(c: Constraints, value: float, path: str, errors: list[str]) -> None:
    if c.minimum is not None and value < c.minimum:
        errors.append(f"{path}: {_fmt(value)} is below the minimum {_fmt(c.minimum)}")
    if c.maximum is not None and value > c.maximum:
        errors.append(f"{path}: {_fmt(value)} is above the maximum {_fmt(c.maximum)}")


def check_string(
    c: Constraints, value: str, path: str, errors: list[str], *, what: str = "value"
) -> None:
    if c.enum and value not in c.enum:
        hint = difflib.get_close_matches(value, list(c.enum), n=1, cutoff=0.6)
        extra = f"; did you mean {hint[0]}?" if hint else ""
        errors.append(f'{path}: "{value}" is not supported; use one of {", ".join(c.enum)}{extra}')
        return
    if c.min_length is not None and len(value) < c.min_length:
        if c.min_length == 1:
            errors.append(f"{path}: the {what} must not be empty")
        else:
            errors.append(f"{path}: the {what} must be at least {c.min_length} characters long")
        return
    if c.max_length is not None and len(value) > c.max_length:
        errors.append(
            f"{path}: the {what} is {len(value)} characters long; the maximum is {c.max_length}"
        )
        return
    if c.pattern and not re.fullmatch(c.pattern, value):
        explain = c.pattern_hint or f"it must match {c.pattern}"
        errors.append(f'{path}: invalid {what} "{value}": {explain}')
