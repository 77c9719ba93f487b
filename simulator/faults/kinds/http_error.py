"""http_error: the reply is replaced, before its head, by the API's error answer with ``status``
(and the retry headers a real API sends with it)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

from ...api.errors import ApiError
from ..base import REPLY, Fault
from ..registry import register
from ..validate import MAX_SECONDS, PlanError, bounded


@register
@dataclass(frozen=True, slots=True)
class HttpError(Fault):
    kind: ClassVar[str] = "http_error"
    headers_only: ClassVar[bool] = True
    acts_as: ClassVar[str] = REPLY
    status: int = 529
    error_type: str = ""
    message: str = ""
    retry_after: float | None = None
    retry_after_ms: float | None = None
    should_retry: bool | None = None

    def check(self, path: str) -> None:
        if not 400 <= self.status <= 599:
            raise PlanError(f"{path}.status", f"must be an HTTP error status 400-599, not {self.status}")
        for name, most in (("retry_after", MAX_SECONDS), ("retry_after_ms", MAX_SECONDS * 1000)):
            value = getattr(self, name)
            if value is not None:
                bounded(value, f"{path}.{name}", most)

    def scaled(self, factor: float) -> HttpError:
        def times(value: float | None) -> float | None:
            return None if value is None else value * factor

        return replace(self, retry_after=times(self.retry_after), retry_after_ms=times(self.retry_after_ms))

    def durations(self) -> list[tuple[str, float]]:
        out = [] if self.retry_after is None else [("retry_after", self.retry_after)]
        if self.retry_after_ms is not None:
            out.append(("retry_after_ms", self.retry_after_ms / 1000))
        return out

    def reply(self, api: Any, request_id: str, path: str | None) -> Any:
        """The API's error reply (``api.error_reply``: the path picks the API's error form)."""
        extra = []
        if self.retry_after is not None:
            extra.append((b"retry-after", _number(self.retry_after)))
        if self.retry_after_ms is not None:
            extra.append((b"retry-after-ms", _number(self.retry_after_ms)))
        out = api.error_reply(ApiError(self.status, self.message, self.error_type), request_id, extra, path=path)
        if self.should_retry is not None:
            flag = b"true" if self.should_retry else b"false"
            out = replace(out, headers=(*(h for h in out.headers if h[0] != b"x-should-retry"), (b"x-should-retry", flag)))
        return out


def _number(value: float) -> bytes:
    return (str(int(value)) if float(value).is_integer() else repr(float(value))).encode()
