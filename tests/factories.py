"""Plain factory functions: each makes one thing with sensible defaults, overridable."""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy.orm import Session

from evidence import cases, users
from evidence.models import Case, Role, User

_counter = itertools.count(1)


def make_user(session: Session, **overrides: Any) -> User:
    n = next(_counter)
    values: dict[str, Any] = {"name": f"user{n}", "role": Role.INVESTIGATOR, "unit": "Unit A"}
    values.update(overrides)
    return users.create_user(session, None, **values)


def make_case(session: Session, actor: User | None = None, **overrides: Any) -> Case:
    n = next(_counter)
    actor = actor or make_user(session)
    values: dict[str, Any] = {"reference": f"CASE-{n}", "title": f"Case {n}"}
    values.update(overrides)
    return cases.create_case(session, actor, **values)
