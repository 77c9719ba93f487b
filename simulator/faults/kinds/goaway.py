"""goaway: HTTP/2 GOAWAY. ``last_stream_id``: a number, "current" (covers the stream in flight) or
"previous" (the stream in flight is not covered, so a correct client retries it on a new
connection)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

from ..base import NOT_APPLICABLE, Fault
from ..registry import register
from ..validate import PlanError, bounded, h2_code


@register
@dataclass(frozen=True, slots=True)
class Goaway(Fault):
    kind: ClassVar[str] = "goaway"
    h2_only: ClassVar[bool] = True
    last_stream_id: int | str = "current"
    code: str | int = "NO_ERROR"
    debug: str = ""
    graceful: bool = True
    grace_s: float = 30.0

    def check(self, path: str) -> None:
        h2_code(self.code, f"{path}.code")
        if isinstance(self.last_stream_id, str) and self.last_stream_id not in ("current", "previous"):
            raise PlanError(f"{path}.last_stream_id", f"must be a number, 'current' or 'previous', not {self.last_stream_id!r}")
        if isinstance(self.last_stream_id, int) and not 0 <= self.last_stream_id < 2**31:
            raise PlanError(f"{path}.last_stream_id", "must be between 0 and 2^31-1")
        bounded(self.grace_s, f"{path}.grace_s")

    @property
    def terminal(self) -> bool:  # type: ignore[override]
        return not (self.graceful and self.last_stream_id == "current")

    @property
    def code_value(self) -> int:
        return h2_code(self.code, "code")

    def scaled(self, factor: float) -> Goaway:
        return replace(self, grace_s=self.grace_s * factor)

    def durations(self) -> list[tuple[str, float]]:
        return [("grace_s", self.grace_s)]

    async def act(self, channel: Any, out: Any) -> bool | str:
        if channel.protocol != "h2":
            return NOT_APPLICABLE
        return await channel.goaway(self.last_stream_id, self.code_value, self.debug.encode(), self.graceful, self.grace_s)
