"""The custody log's checks in compiled code (evidence/_custodycheck.c)."""

from collections.abc import Callable, Sequence
from typing import Any

class Checker:
    """Certifies a run of custody entries, or says it is not certain."""

    def __init__(self, first_seq: int, starts_log: bool, case_id: str | None,
                 marks: Sequence[int], depth: int, batch: int = ...) -> None: ...
    def sqlite(self, path: str, after: int, upto: int,
               on_batch: Callable[[int], object] | None = ...) -> bool: ...
    def copy(self, chunk: bytes | bytearray | memoryview,
             on_batch: Callable[[int], object] | None = ...) -> bool: ...
    def result(self) -> dict[str, Any] | None: ...
    @property
    def gave_up(self) -> tuple[str, int] | None: ...
