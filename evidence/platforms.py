"""The platform registry as the core sees it: an interface only.

The registry's data (hosts, aliases, identifiers, with their sources) lives in `legal_forms`
(`legal_forms/platforms.toml`), and the core imports no other package (ARCHITECTURE.md). So the
core names what it needs here and loads the implementation through the entry point group
`evidence.platform_registry`, which `legal_forms` fills in `pyproject.toml`. Deconfliction
uses it to fold a platform's alternate hosts and to read account identifiers out of URLs, from
the same file that capture and the legal forms use; the legal request service reads a
platform's name, identifier kinds and preservation limits (`evidence.requests`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Protocol

from evidence.errors import NotFound
from evidence.plugins import installed

ENTRY_POINT_GROUP = "evidence.platform_registry"


# The registry's entry for a provider it does not list: a target on a host (or an account on
# a platform) the registry does not know is addressed to it, its addressee typed by the user.
GENERIC = "generic"


class IdentifierInfo(Protocol):
    """An identifier kind a platform accepts in legal requests, and the service it names."""

    @property
    def kind(self) -> str: ...
    @property
    def service(self) -> str: ...


class PreservationInfo(Protocol):
    @property
    def max_extensions(self) -> int | None: ...


class PlatformInfo(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def display_name(self) -> str: ...
    @property
    def identifiers(self) -> Sequence[IdentifierInfo]: ...
    @property
    def preservation(self) -> PreservationInfo: ...


class UrlRecognition(Protocol):
    @property
    def platform(self) -> str: ...
    @property
    def identifier_kind(self) -> str | None: ...
    @property
    def identifier(self) -> str | None: ...
    @property
    def content_kind(self) -> str | None: ...
    @property
    def content_id(self) -> str | None: ...
    @property
    def short_link(self) -> bool: ...


class PlatformRegistry(Protocol):
    @property
    def names(self) -> Sequence[str]:
        """The platforms' own names (no aliases), in the registry's order."""
        ...

    def get(self, name: str) -> PlatformInfo:
        """The platform by name or alias; raises a NotFound subclass when there is none."""
        ...

    def platform_for_host(self, host: str) -> PlatformInfo | None: ...

    def recognise(self, url: str) -> UrlRecognition | None: ...


@functools.cache
def platform_registry() -> PlatformRegistry:
    """The installed registry, loaded once per process."""
    registry: PlatformRegistry = installed(ENTRY_POINT_GROUP, "platform registry")
    return registry


def display_name(name: str) -> str:
    """The platform's name as people read it ("X (formerly Twitter)"); a name the registry does
    not know, as it was given."""
    try:
        return platform_registry().get(name).display_name
    except NotFound:
        return name
