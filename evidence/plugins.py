"""Implementations the core uses but may not import, found through entry point groups.

The core names an interface (a Protocol) and the group; another package of the project fills
the group in `pyproject.toml` with a function that returns its implementation
(ARCHITECTURE.md: arrows of import point one way).
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from evidence.errors import ConfigurationError


def installed(group: str, what: str) -> Any:
    """What the first entry point of `group` returns when called; `what` names it in errors."""
    points = list(entry_points(group=group))
    if not points:
        raise ConfigurationError(
            f"no {what} is installed (entry point group {group!r}); reinstall evidence-locker"
        )
    return points[0].load()()
