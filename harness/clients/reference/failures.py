"""How an attempt fails: the failure taxonomy the retry decision reads, and its builders."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from simulator.api.errors import retryable_status


class Failure(Exception):
    """One attempt's failure, carrying what the retry decision needs."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        mid_stream: bool = False,
        connection_level: bool = False,
        retry_after_s: float | None = None,
        reached_server: bool = True,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.mid_stream = mid_stream  # the response headers had arrived: the request was committed
        self.connection_level = connection_level  # the connection itself is suspect
        self.retry_after_s = retry_after_s
        self.reached_server = reached_server
        self.attempt = 0
        self.gave_up = ""

    def line(self, max_attempts: int) -> str:
        where = ", mid-stream" if self.mid_stream else ""
        why = f"; {self.gave_up}" if self.gave_up else ""
        return f"{type(self).__name__}: {self} (attempt {self.attempt}/{max_attempts}{where}{why})"


class ConnectionFailure(Failure):
    """A transport error: refused, reset, closed mid-body, a protocol error, a timeout."""


class GoawayFailure(ConnectionFailure):
    """h2 GOAWAY ended the stream."""


class StreamResetFailure(Failure):
    """h2 RST_STREAM: the stream ended, the connection lives on."""


class IdleTimeout(ConnectionFailure):
    """The strategy's watchdog: no byte for ``idle_timeout_s``."""


class StatusFailure(Failure):
    def __init__(self, status: int, error_type: str, message: str, **kwargs: Any) -> None:
        super().__init__(f"HTTP {status} {error_type}: {message}".rstrip(": "), **kwargs)
        self.status = status
        self.error_type = error_type


class StreamErrorEvent(Failure):
    """An SSE ``error`` event after HTTP 200."""


class IncompleteStream(Failure):
    """The body ended without ``message_stop``: the answer is not whole."""


class MalformedStream(Failure):
    """An event the client cannot read (bad JSON, a missing field)."""


class ThrottledLocally(Failure):
    """Adaptive throttling dropped the attempt before it was sent."""


def describe(error: BaseException) -> str:
    """``Class: message``; an empty message is taken from the exception's causes (httpx's
    ReadError often says nothing itself)."""
    text, seen = str(error), set()
    cause: BaseException | None = error
    while not text and cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
        if cause is None or not isinstance(cause, Exception):  # a cancellation says nothing useful
            break
        text = str(cause)
        if text:
            text = f"{type(cause).__name__}: {text}"
    if not text and isinstance(error, httpx.TimeoutException):
        text = "the client's timeout (timeout_s) expired"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def transport_failure(error: BaseException, mid_stream: bool) -> Failure:
    text = describe(error)
    if "ConnectionTerminated" in text:
        return GoawayFailure(text, mid_stream=mid_stream, connection_level=True)
    if "StreamReset" in text:
        return StreamResetFailure(text, mid_stream=mid_stream)
    return ConnectionFailure(text, mid_stream=mid_stream, connection_level=True)


def retry_after_s(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """``retry-after-ms`` first, then ``retry-after`` (seconds or an HTTP date); None if absent or bad."""
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            seconds = float(value) / 1000
            if seconds >= 0:
                return seconds
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - (time.time() if now is None else now)
        except (TypeError, ValueError):
            return None
    return seconds if seconds >= 0 else None


def status_failure(status: int, headers: Mapping[str, str], body: bytes) -> StatusFailure:
    retryable = retryable_status(status)
    should = (headers.get("x-should-retry") or "").lower()
    if should == "true":
        retryable = True
    elif should == "false":
        retryable = False
    error_type, message = "", body.decode("utf-8", "replace")[:200]
    try:
        error = json.loads(body).get("error", {})
        error_type, message = error.get("type", ""), error.get("message", "")
    except (ValueError, AttributeError):
        pass
    return StatusFailure(status, error_type, message, retryable=retryable, retry_after_s=retry_after_s(headers))
