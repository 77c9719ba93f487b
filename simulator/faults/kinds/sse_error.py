"""sse_error: ``event: error`` on an HTTP 200 stream, then the stream ends."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ... import sse
from ..base import Fault
from ..registry import register


@register
@dataclass(frozen=True, slots=True)
class SseError(Fault):
    kind: ClassVar[str] = "sse_error"
    error_type: str = "overloaded_error"
    message: str = "Overloaded"

    async def act(self, channel: Any, out: Any) -> bool:
        encode = getattr(out, "error_event", None)  # another API's form (simulator/api/openai_*.py)
        if encode is not None:
            await out.emit(encode(self.error_type, self.message, out.writer.record["events_out"]))
        else:
            payload = {"type": "error", "error": {"type": self.error_type, "message": self.message}}
            await out.emit(sse.encode("error", payload))
        await channel.end()
        return False
