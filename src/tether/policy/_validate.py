"""Argument validation: whether a value passes the constraints of a :class:`CompiledArg`.

The decision procedure calls :func:`validate_arg` for every argument of a call; the compiler
calls it too, to refuse an ``enum`` or ``const`` value that could never pass its own position.
"""

from __future__ import annotations

import math
from typing import Any

from tether.policy import _matchers as m
from tether.policy._model import NO_CONSTRAINTS, CompiledArg

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (dict,),
    "null": (type(None),),
}


def validate_arg(spec: CompiledArg, value: Any, where: str) -> str | None:
    """The first constraint ``value`` breaks, as a sentence naming it ``where``; None if it passes.

    Path matchers read ``~`` and relative paths as the policy said when it was compiled.
    """
    return _first_error(spec, value, where, ())


def _type_name(value: Any) -> str:
    """JSON type name of a Python value (for messages)."""
    for name, types in _JSON_TYPES.items():
        if isinstance(value, types) and not (name in ("integer", "number") and isinstance(value, bool)):
            return name
    return type(value).__name__


def _type_ok(value: Any, types: tuple[str, ...]) -> bool:
    for t in types:
        if t in ("integer", "number") and isinstance(value, bool):
            continue
        if t == "integer" and isinstance(value, float):
            if math.isfinite(value) and value.is_integer():
                return True
            continue
        if isinstance(value, _JSON_TYPES[t]):
            return True
    return False


def _first_error(spec: CompiledArg, value: Any, where: str, inherited: tuple[m.ValueMatcher, ...]) -> str | None:
    # Matchers on an array reach every item at any depth (a list inside a list, too), so they
    # travel down with the value; an item they cannot check (an object, a number) is refused.
    matchers = inherited + spec.matchers if inherited else spec.matchers
    if isinstance(value, float) and not math.isfinite(value):
        return f"{where} is {value!r}, which is not a finite number"
    if spec.types is not None and not _type_ok(value, spec.types):
        return f"{where} must be {' or '.join(spec.types)}, got {_type_name(value)}"
    if spec.has_const and not same_json(value, spec.const):
        return f"{where} must equal {spec.const!r}"
    if spec.enum is not None and not any(same_json(value, e) for e in spec.enum):
        return f"{where} must be one of {list(spec.enum)!r}, got {_short(value)}"
    if isinstance(value, str):
        if spec.min_len is not None and len(value) < spec.min_len:
            return f"{where} is shorter than {spec.min_len} characters"
        if spec.max_len is not None and len(value) > spec.max_len:
            return f"{where} is longer than {spec.max_len} characters"
        if spec.regex is not None and not spec.regex.search(value):
            return f"{where} {_short(value)} does not match pattern {spec.regex.pattern!r}"
        for matcher in matchers:
            refusal = matcher.refusal(value)
            if refusal is not None:
                return f"{where} {_short(value)} {refusal}"
    elif isinstance(value, list | tuple):
        if spec.min_items is not None and len(value) < spec.min_items:
            return f"{where} has fewer than {spec.min_items} items"
        if spec.max_items is not None and len(value) > spec.max_items:
            return f"{where} has more than {spec.max_items} items"
        item_spec = spec.items if spec.items is not None else NO_CONSTRAINTS
        if spec.items is not None or matchers:
            for i, item in enumerate(value):
                err = _first_error(item_spec, item, f"{where}[{i}]", matchers)
                if err:
                    return err
    elif matchers:
        keys = ", ".join(dict.fromkeys(matcher.key for matcher in matchers))
        return f"{where} is {_type_name(value)}, but {keys} can only check a string or a list of strings"
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if spec.minimum is not None and value < spec.minimum:
            return f"{where} is {value!r}, below the minimum {spec.minimum!r}"
        if spec.maximum is not None and value > spec.maximum:
            return f"{where} is {value!r}, above the maximum {spec.maximum!r}"
        if spec.exclusive_min is not None and value <= spec.exclusive_min:
            return f"{where} is {value!r}, not above {spec.exclusive_min!r}"
        if spec.exclusive_max is not None and value >= spec.exclusive_max:
            return f"{where} is {value!r}, not below {spec.exclusive_max!r}"
    elif isinstance(value, dict) and spec.properties is not None:
        for key, sub in spec.properties.items():
            if key in value:
                err = _first_error(sub, value[key], f"{where}.{key}", ())
                if err:
                    return err
            elif sub.required:
                return f"{where}.{key} is required"
        if not spec.additional:
            extra = [k for k in value if k not in spec.properties]
            if extra:
                return f"{where} has unexpected key(s) {sorted(map(str, extra))!r}"
    return None


def same_json(a: Any, b: Any) -> bool:
    """JSON equality: ``true`` is not ``1``, ``1`` is ``1.0`` (as JSON Schema's ``const`` and ``enum`` compare)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and bool(a == b)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
