"""How counts read in the sentences the services and the capture worker write."""

from __future__ import annotations


def counted(count: int, one: str, many: str | None = None) -> str:
    """`count` things in words a reader expects: "1 download", "2 downloads", "2 large bodies"
    (`many` where the plural is not `one` + "s")."""
    return f"{count} {one if count == 1 else (many or one + 's')}"
