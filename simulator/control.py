"""The control plane: a small ASGI app on hypercorn, beside (never in) the data path.

Bounded like the data plane: bodies at most :data:`MAX_BODY_BYTES` (413), JSON depth and finite
numbers checked (400), journal reads paged, every failure a JSON answer (a bug of ours: 500 with
its digest). With a token (``--control-token``, or generated when bound beyond loopback) every
request needs ``Authorization: Bearer <token>`` (401 otherwise).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from .api.limits import MAX_JSON_DEPTH, TooDeep, loads_bounded, non_finite_path
from .faults.model import FaultPlan, PlanError
from .journal import PAGE_RECORDS, PAGE_RECORDS_MAX
from .state import ServerState

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]

MAX_BODY_BYTES = 1024 * 1024


class Raw(bytes):
    """A reply body already encoded (journal pages are spliced from stored JSON lines)."""


class ControlApp:
    def __init__(self, state: ServerState, info: dict[str, Any], data_plane: Any, token: str | None = None) -> None:
        self.state = state
        self.info = info
        self.data_plane = data_plane
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        payload: Any  # JSON data, or a Raw body
        try:
            if not self._authorized(scope):
                status, payload = (
                    401,
                    {"error": "control API: send 'Authorization: Bearer <control_token>' (the token is in the ready line of streamchaos serve)"},
                )
            else:
                body = await _read_body(scope, receive, MAX_BODY_BYTES)
                if body is None:
                    status, payload = 413, {"error": f"control API: request body larger than {MAX_BODY_BYTES} bytes"}
                else:
                    query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
                    status, payload = await self.route(method, path, query, body)
        except ValueError as error:
            status, payload = 400, {"error": str(error)}
        except Exception as error:  # a bug of ours: a clear 500, and the control plane goes on
            info = self.state.errors.note(error, f"control request {method} {path}")
            status, payload = 500, {"error": f"internal error ({info['type']}: {info['message']})", "digest": info["digest"]}
        data = payload if isinstance(payload, Raw) else json.dumps(payload, separators=(",", ":")).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": data})

    def _authorized(self, scope: Scope) -> bool:
        if not self.token:
            return True
        for name, value in scope.get("headers", ()):
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                return hmac.compare_digest(value[7:].strip(), self.token.encode())
        return False

    async def route(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        journal = self.state.journal
        if (method, path) == ("GET", "/health"):
            return 200, {
                "status": "ok",
                **self.info,
                "open_connections": len(self.state.handlers),
                "journal": journal.stats(),
                **self.state.errors.health(),
            }
        if (method, path) == ("GET", "/journal"):
            return 200, _journal_page(journal, query)
        if (method, path) == ("POST", "/reset"):
            journal.reset()
            self.state.api.clear_cache()
            self.state.faults.load(self.state.faults.plan)
            _give_back_memory()
            return 200, {"status": "reset"}
        if (method, path) == ("GET", "/plan"):
            return 200, self.state.faults.plan.to_data()
        if (method, path) == ("PUT", "/plan"):
            try:
                plan = FaultPlan.from_data(_json(body, "plan"))
            except PlanError as error:
                return 400, {"error": str(error), "path": error.path}
            self.state.faults.load(plan)
            return 200, {"status": "loaded", "rules": len(plan.rules), "generation": self.state.faults.generation}
        if (method, path) == ("POST", "/lanes"):
            request = _json(body, "lanes")
            trial = request.get("trial") if isinstance(request, dict) else None
            if not isinstance(trial, str) or not trial:
                return 400, {"error": 'lanes: body must be {"trial": "<non-empty string>"}'}
            host = request.get("host")
            if host is not None and not _is_address(host):
                return 400, {"error": "lanes: host must be an IP address (the network lab's host side), not a wildcard"}
            try:
                port = await self.data_plane.open_lane(trial, host)
            except OSError as error:
                return 400, {"error": f"lanes: cannot bind {host}: {error}"}
            return 200, {"port": port, "trial": trial, **({"host": host} if host else {})}
        if method == "DELETE" and path.startswith("/lanes/"):
            closed = self.data_plane.close_lane(_int(path.rsplit("/", 1)[1], "lane port"))
            return (200, {"status": "closed"}) if closed else (404, {"error": "no such lane"})
        if (method, path) == ("GET", "/lanes"):
            return 200, {"lanes": {str(port): trial for port, (trial, _) in self.data_plane.lanes.items()}}
        if (method, path) == ("DELETE", "/plan"):
            self.state.faults.load(FaultPlan())
            return 200, {"status": "cleared"}
        return 404, {"error": f"no route {method} {path}"}


def _journal_page(journal: Any, query: dict[str, list[str]]) -> Raw:
    """``{"records": [...], "next": SEQ|null, ...}``: pass ``since=next`` for the next page."""
    key = query.get("key", [None])[0]
    if key == "":
        raise ValueError("journal: key must not be empty (leave it out to page through every record)")
    since = _int(query.get("since", ["0"])[0], "journal: since")
    limit = _int(query.get("limit", [str(PAGE_RECORDS)])[0], "journal: limit")
    if not 1 <= limit <= PAGE_RECORDS_MAX:
        raise ValueError(f"journal: limit must be between 1 and {PAGE_RECORDS_MAX}, got {limit}")
    lines, cursor = journal.page(key=key, since=since, limit=limit)
    stats = journal.stats()
    tail = {"next": cursor, "oldest_seq": stats["oldest_seq"], "evicted": stats["evicted"]}
    return Raw(b'{"records":[' + ",".join(lines).encode() + b"]," + json.dumps(tail, separators=(",", ":")).encode()[1:])


def _json(body: bytes, what: str) -> Any:
    try:
        return loads_bounded(body or b"{}")
    except TooDeep:
        raise ValueError(f"{what}: JSON nested more than {MAX_JSON_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as error:
        where = non_finite_path(body)
        if where:
            raise ValueError(f"{what}: {where} must be a finite number ({error})") from None
        raise ValueError(f"{what} is not JSON (finite numbers only): {error}") from None


def _int(text: str, what: str) -> int:
    if not (text.isascii() and text.lstrip("-").isdigit()) or len(text) > 19:
        raise ValueError(f"{what} must be a whole number, got {text[:40]!r}")
    return int(text)


def _give_back_memory() -> None:
    """After a reset: collect, and let glibc return freed arenas to the system."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    """The body, or None once it is larger than ``limit`` (declared or received)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            return None
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def lifespan(receive: Receive, send: Send) -> None:
    """The ASGI lifespan protocol for an app with nothing to start or stop."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _is_address(value: object) -> bool:
    import ipaddress

    try:
        return isinstance(value, str) and not ipaddress.ip_address(value).is_unspecified
    except ValueError:
        return False
