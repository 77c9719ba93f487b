"""rst_stream: HTTP/2 RST_STREAM of the reply's stream with ``code``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..base import NOT_APPLICABLE, Fault
from ..registry import register
from ..validate import h2_code


@register
@dataclass(frozen=True, slots=True)
class RstStream(Fault):
    kind: ClassVar[str] = "rst_stream"
    h2_only: ClassVar[bool] = True
    code: str | int = "INTERNAL_ERROR"

    def check(self, path: str) -> None:
        h2_code(self.code, f"{path}.code")

    @property
    def code_value(self) -> int:
        return h2_code(self.code, "code")

    async def act(self, channel: Any, out: Any) -> bool | str:
        if channel.protocol != "h2":
            return NOT_APPLICABLE
        await channel.reset_stream(self.code_value)
        return False
