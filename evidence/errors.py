"""The project's exception tree: one base with an HTTP status, one subclass per business condition.

Services raise these; the API renders them as JSON and the CLI prints the message and exits
non-zero. Nothing here knows about HTTP frameworks.
"""

from __future__ import annotations

import errno
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evidence.request_input import RequestProblem


class EvidenceError(Exception):
    """Base of every expected, explainable failure."""

    status_code = 400
    # Whole seconds after which the same request may succeed, where that is known (a throttled
    # login); the API sends it as Retry-After.
    retry_after: int | None = None
    # Each part of the input the error is about, for a client to place it (the API's `details`:
    # loc, msg, type); None where the message alone says it.
    details: list[dict[str, Any]] | None = None

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


class UpgradeRefused(ConfigurationError):
    """A migration found rows it may not change to go on; the database is left as it was."""


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
    # What each named input was refused for, where a service checked them all at once
    # (`of_fields`), for a form to say each beside its input; empty: the message alone says it.
    fields: Mapping[str, str] = {}

    @staticmethod
    def of_fields(found: Mapping[str, str]) -> InvalidInput:
        """Every input refused at once, each by the name of its body field (message: what is
        wrong with it), in the order given."""
        error = InvalidInput("; ".join(found.values()))
        error.fields = dict(found)
        error.details = [{"loc": ["body", name], "msg": message, "type": "value_error"}
                         for name, message in found.items()]
        return error


class BlobMissing(NotFound):
    """The blob store has no object with this hash."""


class BlobCorrupted(EvidenceError):
    """A stored object's bytes no longer hash to its address."""

    status_code = 500


class StorageFull(EvidenceError):
    """The blob store ran out of space; nothing was kept."""

    status_code = 507


class DatabaseBusy(EvidenceError):
    """Another writer held the database longer than this could wait; nothing was changed."""

    status_code = 503


# The errno values of a disk (or a quota) with no room left: an OSError with one of them is a
# full disk, wherever the write was.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class StoreUnavailable(EvidenceError):
    """The blob store cannot be reached or refuses us (an S3 service down, wrong credentials)."""

    status_code = 503


class BackupFailed(EvidenceError):
    """A backup could not be made whole; nothing was left at its destination."""

    status_code = 409


class CustodyError(EvidenceError):
    """The custody log could not be written or read as required."""

    status_code = 500


class LogBroken(Conflict):
    """The custody log does not verify: nothing that would vouch for it (a checkpoint, a
    bundle) is made."""

    def __init__(self, message: str, *, first: str | None = None) -> None:
        super().__init__(message)
        # The first entry that breaks and why, where one is named: the same break refused
        # again has the same `first`, whatever else was added after it.
        self.first = first


class RequestIncomplete(InvalidInput):
    """A legal request cannot be generated; every missing or wrong field is listed at once."""

    def __init__(self, kind: str, found: Sequence[RequestProblem]) -> None:
        problems = [p.message for p in found]
        lines = "\n".join(f"- {p}" for p in problems)
        super().__init__(f"{kind}: {len(problems)} problem(s) to fix before the request can be "
                         f"generated:\n{lines}")
        self.problems = problems  # as the API and the command line say them
        self.found = tuple(found)  # each with what it is about, for a form to place it
        self.details = [
            {"loc": [] if p.about is None else [p.about.part, *([p.about.name] if p.about.name
                                                               else [])],
             "msg": p.message, "type": "missing" if p.missing else "invalid"}
            for p in self.found
        ]


class IllegalTransition(Conflict):
    """A legal request cannot move from its current status to the one asked for."""


class PreservationEnded(Conflict):
    """The preservation has ended (recorded expired, or its period is over): nothing to extend."""


class FourEyesViolation(Conflict):
    """The one who proposed a decision or drafted a legal request may not also approve it."""


class DecisionNotPending(Conflict):
    """The decision was already decided or superseded and cannot be decided again."""


class CaptureMissing(Conflict):
    """A takedown needs a complete capture of the target first."""


class DeconflictionHold(Conflict):
    """Another case holds the same selector and the hit is not yet resolved."""


class PreservationMissing(Conflict):
    """A takedown needs a preservation request for the target, or a waiver with a reason."""
