"""truncated_clean: the body ends cleanly (last chunk / END_STREAM) without ``message_stop``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..base import Fault
from ..registry import register


@register
@dataclass(frozen=True, slots=True)
class TruncatedClean(Fault):
    kind: ClassVar[str] = "truncated_clean"

    async def act(self, channel: Any, out: Any) -> bool:
        await channel.end()
        return False
