"""A small JSON Schema (draft 2020-12 subset) checker for driver options, profile settings and
action arguments.

The schemas are plain JSON Schema documents, published as they are in a node's birth, so a client
that knows no model can check its arguments with any JSON Schema library. This module checks the
subset hallctl's schemas use (``type``, ``properties``, ``required``, ``additionalProperties``,
``items``, ``minItems``/``maxItems``, ``minimum``/``maximum``, ``minLength``/``maxLength``,
``pattern``, ``enum``, ``default``) and names the key path of the first problem, which is what a
technician needs in an exit-78 message. A full validator would be one more import on a Pi's
start-up for no gain here.
"""

from __future__ import annotations

import copy
import difflib
import re
from typing import Any, Mapping

__all__ = ["SchemaError", "check", "coerce", "with_defaults", "merge_objects", "describe"]

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (dict,),
    "null": (type(None),),
}
_TYPE_WORDS = {"string": "a string", "integer": "an integer", "number": "a number",
               "boolean": "true or false", "array": "an array", "object": "a table", "null": "null"}


class SchemaError(ValueError):
    """``path`` is the dotted key path (``lines[2]``, ``templates.called``); ``problem`` says
    what is wrong with the value there."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}" if path else problem)
        self.path, self.problem = path, problem


def _is(value: Any, type_name: str) -> bool:
    if type_name in ("integer", "number") and isinstance(value, bool):
        return False
    if type_name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES[type_name])


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def check(schema: Mapping[str, Any], value: Any, path: str = "") -> None:
    """Raise :class:`SchemaError` for the first place ``value`` does not fit ``schema``."""
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        if not any(_is(value, t) for t in names):
            want = " or ".join(_TYPE_WORDS[t] for t in names)
            raise SchemaError(path, f"expected {want}, got {_kind_of(value)} ({_short(value)})")
    if "enum" in schema and value not in schema["enum"]:
        raise SchemaError(path, f"must be one of {', '.join(map(repr, schema['enum']))}, got {_short(value)}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        lo, hi = schema.get("minimum"), schema.get("maximum")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise SchemaError(path, f"must be {_range(lo, hi)}, got {value!r}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            raise SchemaError(path, "must not be empty" if schema["minLength"] == 1
                              else f"must be at least {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise SchemaError(path, f"must be at most {schema['maxLength']} characters, got {len(value)}")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            raise SchemaError(path, schema.get("x-pattern-hint") or f"must match {schema['pattern']}, got {value!r}")
    if isinstance(value, (list, tuple)):
        if len(value) < schema.get("minItems", 0):
            raise SchemaError(path, f"needs at least {schema['minItems']} item(s)")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise SchemaError(path, f"takes at most {schema['maxItems']} item(s), got {len(value)}")
        if "items" in schema:
            for i, item in enumerate(value):
                check(schema["items"], item, _join(path, i))
    if isinstance(value, dict):
        props: Mapping[str, Any] = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        if extra is False:  # a misspelt key first: "missing 'level'" would hide the typo "lvl"
            for key in value:
                if key not in props:
                    close = difflib.get_close_matches(str(key), list(props), n=1, cutoff=0.6)
                    hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(sorted(props)) or 'none'})"
                    raise SchemaError(_join(path, str(key)), f"unknown key {key!r}{hint}")
        for key in schema.get("required", ()):
            if key not in value:
                raise SchemaError(_join(path, key), f"missing required key {key!r}")
        for key, item in value.items():
            if key in props:
                check(props[key], item, _join(path, key))
            elif isinstance(extra, Mapping):
                check(extra, item, _join(path, str(key)))


def coerce(schema: Mapping[str, Any], value: Any) -> Any:
    """``value`` (already checked) with integral numbers where the schema says integer: JSON
    Schema counts 3.0 as an integer, so a client may send it, and a driver gets 3."""
    if schema.get("type") == "integer" and isinstance(value, float):
        return int(value)
    if isinstance(value, dict):
        props = schema.get("properties", {})
        return {k: coerce(props[k], v) if k in props else v for k, v in value.items()}
    if isinstance(value, list) and "items" in schema:
        return [coerce(schema["items"], v) for v in value]
    return value


def with_defaults(schema: Mapping[str, Any], value: Mapping[str, Any]) -> dict[str, Any]:
    """``value`` (an object) with the ``default`` of every property it leaves out."""
    out = dict(value)
    for key, prop in schema.get("properties", {}).items():
        if key not in out and "default" in prop:
            out[key] = copy.deepcopy(prop["default"])
    return out


def merge_objects(*schemas: Mapping[str, Any]) -> dict[str, Any]:
    """One object schema taking the properties of each (a device's options: its driver's and its
    app's). A key both define is a programming error, raised as ValueError."""
    props: dict[str, Any] = {}
    required: list[str] = []
    for schema in schemas:
        for key, prop in schema.get("properties", {}).items():
            if key in props:
                raise ValueError(f"option {key!r} is defined twice")
            props[key] = prop
        required += list(schema.get("required", ()))
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}


def describe(schema: Mapping[str, Any]) -> str:
    """One line for a technician: ``lines: array of 1..8 strings (required); level: integer 0..15``."""
    parts = []
    required = set(schema.get("required", ()))
    for key, prop in schema.get("properties", {}).items():
        parts.append(f"{key}: {_describe_value(prop)}" + (" (required)" if key in required else ""))
    return "; ".join(parts) or "no arguments"


def _describe_value(prop: Mapping[str, Any]) -> str:
    kind = prop.get("type", "any")
    if kind == "array":
        lo, hi = prop.get("minItems"), prop.get("maxItems")
        count = f"{lo}..{hi} " if lo is not None and hi is not None else ""
        item = prop.get("items", {}).get("type", "value")
        text = f"array of {count}{item}s"
        if "maxLength" in prop.get("items", {}):
            text += f" of at most {prop['items']['maxLength']} characters"
        return text
    text = str(kind)
    if "minimum" in prop or "maximum" in prop:
        text += f" {_range(prop.get('minimum'), prop.get('maximum'))}"
    if "enum" in prop:
        text += " (" + "|".join(map(str, prop["enum"])) + ")"
    return text


def _range(lo: Any, hi: Any) -> str:
    if lo is not None and hi is not None:
        return f"{lo}..{hi}"
    return f">= {lo}" if lo is not None else f"<= {hi}"


def _kind_of(value: Any) -> str:
    for name, types in _TYPES.items():
        if _is(value, name):
            return {"object": "table"}.get(name, name)
    return type(value).__name__


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
