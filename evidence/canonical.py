"""Canonical JSON (RFC 8785 for the values the custody log uses): one byte string per value.

Keys are sorted by their UTF-16 code units, there is no insignificant white space, strings are
UTF-8 with only the escapes RFC 8785 allows, and numbers are integers within the I-JSON range.
Floats are refused rather than approximated: a hash must never depend on how a float prints.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

MAX_SAFE_INTEGER = 2**53 - 1

JsonValue = None | bool | int | str | list["JsonValue"] | dict[str, "JsonValue"]


class CanonicalJsonError(ValueError):
    """The value cannot be written as canonical JSON."""


def _utf16_key(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


def _encode_string(value: str) -> str:
    # json.dumps with ensure_ascii=False writes exactly RFC 8785's string form: \" \\ \b \f \n \r \t
    # and \u00xx (lower case) for the other control characters, everything else as is.
    return json.dumps(value, ensure_ascii=False)


def _write(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise CanonicalJsonError(f"integer {value} is outside the I-JSON range")
        out.append(str(value))
    elif isinstance(value, float):
        raise CanonicalJsonError("floats are not allowed in canonical entries; use a string")
    elif isinstance(value, str):
        out.append(_encode_string(value))
    elif isinstance(value, Mapping):
        items = []
        for key in value:
            if not isinstance(key, str):
                raise CanonicalJsonError(f"object key {key!r} is not a string")
            items.append(key)
        items.sort(key=_utf16_key)
        out.append("{")
        for index, key in enumerate(items):
            if index:
                out.append(",")
            out.append(_encode_string(key))
            out.append(":")
            _write(value[key], out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise CanonicalJsonError(f"{type(value).__name__} is not a JSON value")


def _plain(value: Any) -> bool:
    """True when the C encoder writes `value` exactly as RFC 8785 does.

    That holds for dicts, lists and tuples of str, int, bool and None whose integers are in
    range and whose keys are all in the Basic Multilingual Plane (where code-point order and
    UTF-16 order agree). Anything else takes the careful writer below, which also explains
    what is wrong.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str or item is None or kind is bool:
            continue
        if kind is int:
            if not -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                return False
        elif kind is dict:
            for key, child in item.items():
                if type(key) is not str or (key and max(key) > "\uffff"):
                    return False
                stack.append(child)
        elif kind is list or kind is tuple:
            stack.extend(item)
        else:
            return False
    return True


def canonical_json(value: Any) -> bytes:
    """The canonical UTF-8 bytes of `value`."""
    try:
        if _plain(value):
            text = json.dumps(
                value, ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False
            )
        else:
            out: list[str] = []
            _write(value, out)
            text = "".join(out)
    except RecursionError as exc:
        raise CanonicalJsonError("value is nested too deeply") from exc
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalJsonError("string holds a lone surrogate, which UTF-8 cannot carry") from exc


def parse_canonical(data: bytes) -> Any:
    """Parse canonical JSON and refuse bytes that are not in canonical form."""
    try:
        value = json.loads(data.decode("utf-8"))
    except RecursionError as exc:
        raise CanonicalJsonError("JSON is nested too deeply") from exc
    except ValueError as exc:  # bad UTF-8, bad JSON, or an integer too long to convert
        raise CanonicalJsonError(f"not valid JSON: {exc}") from exc
    if canonical_json(value) != data:
        raise CanonicalJsonError("JSON is valid but not in canonical form")
    return value
