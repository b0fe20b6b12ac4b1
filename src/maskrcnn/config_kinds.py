"""What kind of value each Config attribute takes, and the messages about names and values (Config's helpers).

A kind is read from the attribute's default and annotation in the class that declares it
(``_expected_kind``); ``_has_kind`` checks a value against it; ``_KIND_WORDS`` words it for messages.
"""

from __future__ import annotations

import difflib
from typing import Any

import numpy as np

_KIND_WORDS = {"bool": "true or false", "int": "an integer", "number": "a number", "str": "a string",
               "numbers": "a list of numbers", "list": "a list", "weights": "a mapping of loss name to number"}
# Attributes whose default's type is narrower than what they accept: (kind, None allowed).
_KIND_OVERRIDES = {"IMAGE_MIN_SCALE": ("number", False), "GRADIENT_CLIP_NORM": ("number", True)}


def _expected_kind(cls: type, key: str) -> tuple[str, bool] | None:
    """(kind, None allowed) of attribute ``key``, from its declaring class's default and annotation."""
    if key in _KIND_OVERRIDES:
        return _KIND_OVERRIDES[key]
    for klass in reversed(cls.__mro__):
        if key in vars(klass):
            default = vars(klass)[key]
            annotation = str(vars(klass).get("__annotations__", {}).get(key, ""))
            break
    else:
        return None
    nullable = "None" in annotation
    if isinstance(default, bool):
        return "bool", nullable
    if isinstance(default, int):
        return "int", nullable
    if isinstance(default, float):
        return "number", nullable
    if isinstance(default, str):
        return "str", nullable
    if isinstance(default, dict):
        return "weights", nullable
    if isinstance(default, (list, tuple, np.ndarray)):
        numeric = len(default) == 0 or all(_has_kind(v, ("number", False)) for v in default)
        return ("numbers" if numeric else "list"), nullable
    if default is None and annotation:
        for word, kind in (("str", "str"), ("int", "int"), ("float", "number"), ("bool", "bool"), ("list", "list")):
            if word in annotation:
                return kind, True
    return None


def _has_kind(value: Any, kind: tuple[str, bool]) -> bool:
    name, nullable = kind
    if value is None:
        return nullable
    is_bool = isinstance(value, (bool, np.bool_))
    if name == "bool":
        return is_bool
    if name == "int":
        return isinstance(value, (int, np.integer)) and not is_bool
    if name == "number":
        return isinstance(value, (int, float, np.integer, np.floating)) and not is_bool
    if name == "str":
        return isinstance(value, str)
    if name == "weights":
        return isinstance(value, dict) and all(_has_kind(v, ("number", False)) for v in value.values())
    if not isinstance(value, (list, tuple, np.ndarray)):
        return False
    return name == "list" or all(_has_kind(v, ("number", False)) for v in value)


def _is_attribute(cls: type, key: str) -> bool:
    return key in cls.attribute_names()


def _unknown_message(cls: type, key: str, source: str) -> str:
    close = difflib.get_close_matches(key, cls.attribute_names(), n=1)
    hint = f"did you mean {close[0]!r}?" if close else "see Config.attribute_names() for the known ones"
    return f"{source}: unknown config attribute {key!r}; {hint}"


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value
