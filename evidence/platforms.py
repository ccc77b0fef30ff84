"""The platform registry as the core sees it: an interface only.

The registry's data (hosts, aliases, identifiers, with their sources) lives in `legal_forms`
(`legal_forms/platforms.toml`), and the core imports no other package (ARCHITECTURE.md). So the
core names what it needs here and loads the implementation through the entry point group
`evidence.platform_registry`, which `legal_forms` fills in `pyproject.toml`. Deconfliction
uses it to fold a platform's alternate hosts and to read account identifiers out of URLs, from
the same file that capture and the legal forms use.
"""

from __future__ import annotations

import functools
from importlib.metadata import entry_points
from typing import Protocol

from evidence.errors import ConfigurationError

ENTRY_POINT_GROUP = "evidence.platform_registry"


class PlatformInfo(Protocol):
    @property
    def name(self) -> str: ...


class UrlRecognition(Protocol):
    @property
    def platform(self) -> str: ...
    @property
    def identifier_kind(self) -> str | None: ...
    @property
    def identifier(self) -> str | None: ...
    @property
    def short_link(self) -> bool: ...


class PlatformRegistry(Protocol):
    def get(self, name: str) -> PlatformInfo:
        """The platform by name or alias; raises a NotFound subclass when there is none."""
        ...

    def platform_for_host(self, host: str) -> PlatformInfo | None: ...

    def recognise(self, url: str) -> UrlRecognition | None: ...


@functools.cache
def platform_registry() -> PlatformRegistry:
    """The installed registry, loaded once per process."""
    points = list(entry_points(group=ENTRY_POINT_GROUP))
    if not points:
        raise ConfigurationError(
            f"no platform registry is installed (entry point group {ENTRY_POINT_GROUP!r}); "
            "reinstall evidence-locker"
        )
    loader = points[0].load()
    registry: PlatformRegistry = loader()
    return registry
