"""Errors of the legal_forms package, on the project's exception tree."""

from evidence.errors import ConfigurationError, NotFound


class RegistryInvalid(ConfigurationError):
    """platforms.toml is malformed: a key is missing, mistyped or unsourced."""


class UnknownPlatform(NotFound):
    """No platform, alias or operator group has this name."""
