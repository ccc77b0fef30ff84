"""How a time is written for people to read: UTC, to the second.

The one formatter behind the report, the web pages, the legal forms and the messages that name
a time, so a moment reads the same wherever it is shown. The exact value (microseconds, offset)
stays where it is recorded: bundle.json, the custody entries, the API's JSON.
"""

from __future__ import annotations

from datetime import UTC, datetime


def to_the_second(moment: datetime, *, zone: bool = True) -> str:
    """`2026-03-11 09:30:00 UTC` (without ` UTC` when `zone` is false, for a column that says
    it once). Cut, not rounded, so a time never moves into the next second. A naive time is
    taken as UTC: the database may hand one back, and every time here is UTC."""
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if zone else "")
