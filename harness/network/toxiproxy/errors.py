"""What can go wrong with toxiproxy, as exception types: one per cause a caller handles apart.

The API errors also subclass the ``toxiproxy-python`` package's types, so code written against the
package (``except toxiproxy.exceptions.NotFound``) still catches them."""

from __future__ import annotations

import json

import toxiproxy.exceptions as _pkg_errors


class ToxiproxyError(Exception):
    """Anything that went wrong with toxiproxy."""


class ToxiproxyUnavailable(ToxiproxyError):
    """No usable ``toxiproxy-server`` binary; the message says how to get one."""


class ToxiproxyStartError(ToxiproxyError):
    """The binary exists but no attempt gave a server whose API answers."""


class ToxiproxyConnectionError(ToxiproxyError):
    """The API could not be reached (refused, reset, DNS...)."""


class ToxiproxyTimeout(ToxiproxyError):
    """An API call got no answer within its HTTP timeout."""


class ToxiproxyAPIError(ToxiproxyError):
    """The API answered with a status >= 400."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        self.method, self.path, self.status, self.body = method, path, status, body
        detail = body.strip()
        try:
            detail = json.loads(body).get("error", detail)
        except (ValueError, AttributeError):
            pass
        super().__init__(f"toxiproxy {method} {path}: HTTP {status}: {detail or '(empty body)'}")


class ProxyExists(ToxiproxyAPIError, _pkg_errors.ProxyExists):
    """409: a proxy or a toxic of that name already exists."""


class NotFound(ToxiproxyAPIError, _pkg_errors.NotFound):
    """404: no such proxy or toxic."""


class InvalidToxic(ToxiproxyAPIError, _pkg_errors.InvalidToxic):
    """400: the server rejected the request body (bad toxic type, stream, JSON...)."""


class ToxiproxyServerError(ToxiproxyAPIError):
    """5xx: e.g. 503 when a handler gave up after 25 s, or 500 when a proxy cannot listen."""


def api_error(method: str, path: str, status: int, body: str) -> ToxiproxyAPIError:
    """The exception type for an HTTP ``status`` >= 400."""
    if status == 409:
        return ProxyExists(method, path, status, body)
    if status == 404:
        return NotFound(method, path, status, body)
    if status == 400:
        return InvalidToxic(method, path, status, body)
    if status >= 500:
        return ToxiproxyServerError(method, path, status, body)
    return ToxiproxyAPIError(method, path, status, body)


class ToxicValidationError(ValueError):
    """A toxic attribute out of range: ``attribute`` is its name (``latency.jitter``)."""

    def __init__(self, attribute: str, message: str) -> None:
        super().__init__(f"{attribute}: {message}")
        self.attribute = attribute
        self.message = message
