"""malformed_sse: ``garbled``: the event's JSON is corrupted; ``split``: the event is written in
two pieces ``gap_s`` apart (legal, tests parser buffering); ``no_blank_line``: the terminator is
lost. The reply goes on after it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from ..base import EVENT, Fault
from ..registry import register
from ..validate import PlanError, bounded


@register
@dataclass(frozen=True, slots=True)
class MalformedSse(Fault):
    kind: ClassVar[str] = "malformed_sse"
    terminal: ClassVar[bool] = False
    acts_as: ClassVar[str] = EVENT
    mode: str = "garbled"
    gap_s: float = 0.05

    def check(self, path: str) -> None:
        if self.mode not in ("garbled", "split", "no_blank_line"):
            raise PlanError(f"{path}.mode", f"must be 'garbled', 'split' or 'no_blank_line', not {self.mode!r}")
        bounded(self.gap_s, f"{path}.gap_s")

    def scaled(self, factor: float) -> MalformedSse:
        return replace(self, gap_s=self.gap_s * factor)

    def durations(self) -> list[tuple[str, float]]:
        return [("gap_s", self.gap_s)]

    def pieces(self, event: bytes) -> tuple[bytes, ...]:
        """The bytes the event is written as (one or more writes, ``gap_s`` apart)."""
        if self.mode == "garbled":
            head, _, data = event.partition(b"\ndata: ")
            return (head + b"\ndata: " + data[: max(1, len(data) // 2)].rstrip(b"\n") + b"\x00}\n\n",)
        if self.mode == "no_blank_line":
            return (event[:-1],)
        middle = len(event) // 2
        return (event[:middle], event[middle:])
