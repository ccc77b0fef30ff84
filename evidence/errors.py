"""The project's exception tree: one base with an HTTP status, one subclass per business condition.

Services raise these; the API renders them as JSON and the CLI prints the message and exits
non-zero. Nothing here knows about HTTP frameworks.
"""


class EvidenceError(Exception):
    """Base of every expected, explainable failure."""

    status_code = 400

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code

    def __str__(self) -> str:
        return self.message


class ConfigurationError(EvidenceError):
    """Settings or the data home are missing or unusable."""

    status_code = 500


class NotInitialised(ConfigurationError):
    """The data home has not been made by `evidence init`."""


class NotFound(EvidenceError):
    """The thing asked for does not exist."""

    status_code = 404


class AccessDenied(NotFound):
    """The caller may not see this; answered as not found so its existence does not leak."""


class PermissionDenied(EvidenceError):
    """The caller can see the object but lacks the role or access to change it."""

    status_code = 403


class Conflict(EvidenceError):
    """The change clashes with the current state."""

    status_code = 409


class DuplicateReference(Conflict):
    """A case with this reference already exists."""


class CaseClosed(Conflict):
    """The case is closed and refuses new evidence."""


class InvalidInput(EvidenceError):
    """The input is malformed or out of range."""

    status_code = 422


class BlobMissing(NotFound):
    """The blob store has no object with this hash."""


class BlobCorrupted(EvidenceError):
    """A stored object's bytes no longer hash to its address."""

    status_code = 500


class StorageFull(EvidenceError):
    """The blob store ran out of space; nothing was kept."""

    status_code = 507


class CustodyError(EvidenceError):
    """The custody log could not be written or read as required."""

    status_code = 500
