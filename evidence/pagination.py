"""Keyset pagination for every list the services hand out: stable under inserts, bounded.

A cursor is an opaque token naming the last row of the previous page by its sort key, so a page
never repeats or skips a row that was added meanwhile (offsets do). Callers treat it as text.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import orjson
from sqlalchemy import ColumnElement, Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute, Session

from evidence.errors import InvalidInput

T = TypeVar("T")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_CURSOR_LENGTH = 512


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def _encode(values: Sequence[Any]) -> str:
    plain = [v.isoformat() if isinstance(v, datetime) else
             str(v) if isinstance(v, uuid.UUID) else v for v in values]
    return base64.urlsafe_b64encode(orjson.dumps(plain)).decode().rstrip("=")


def _decode(cursor: str, key: Sequence[InstrumentedAttribute[Any]]) -> list[Any]:
    bad = InvalidInput("cursor is not one this API handed out; start again without it")
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise bad
    try:
        raw = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as exc:
        raise bad from exc
    if not isinstance(raw, list) or len(raw) != len(key):
        raise bad
    values: list[Any] = []
    for value, column in zip(raw, key, strict=True):
        # A TypeDecorator (UTCDateTime) says `object`; the type it decorates knows better.
        kind = getattr(column.type, "impl", column.type).python_type
        try:
            if kind is datetime and isinstance(value, str):
                moment = datetime.fromisoformat(value)
                if moment.tzinfo is None:
                    raise bad
                values.append(moment)
            elif kind is uuid.UUID and isinstance(value, str):
                values.append(uuid.UUID(value))
            elif kind is int and isinstance(value, int) and not isinstance(value, bool):
                if abs(value) >= 2**63:
                    raise bad
                values.append(value)
            else:
                raise bad
        except ValueError as exc:
            raise bad from exc
    return values


def _after(key: Sequence[InstrumentedAttribute[Any]], values: Sequence[Any], *,
           descending: bool = False) -> ColumnElement[bool]:
    """Rows strictly after `values` in the lexicographic order of `key` (or its reverse)."""
    first, rest = key[0], key[1:]
    beyond = first < values[0] if descending else first > values[0]
    if not rest:
        return beyond
    return or_(beyond, and_(first == values[0],
                            _after(rest, values[1:], descending=descending)))


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}")
    return limit


def paginate(
    session: Session,
    query: Select[T],
    *,
    key: Sequence[InstrumentedAttribute[Any]],
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
    descending: bool = False,
) -> Page[T]:
    """One page of `query` in ascending `key` order, or descending (newest first, say); the
    last column of `key` must be unique."""
    check_limit(limit)
    if cursor:
        query = query.where(_after(key, _decode(cursor, key), descending=descending))
    order = [column.desc() for column in key] if descending else list(key)
    rows = list(session.scalars(query.order_by(*order).limit(limit + 1)))
    items = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = _encode([getattr(last, column.key) for column in key])
    return Page(items, next_cursor)
