"""The control plane: a small ASGI app on hypercorn, beside (never in) the data path."""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qs

from .faults.model import FaultPlan, PlanError
from .server import ServerState

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


class ControlApp:
    def __init__(self, state: ServerState, info: dict[str, Any], data_plane: Any) -> None:
        self.state = state
        self.info = info
        self.data_plane = data_plane

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        query = parse_qs(scope.get("query_string", b"").decode())
        body = await _read_body(receive)
        try:
            status, payload = await self.route(method, path, query, body)
        except ValueError as error:
            status, payload = 400, {"error": str(error)}
        data = json.dumps(payload, separators=(",", ":")).encode()
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})

    async def route(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        journal = self.state.journal
        if (method, path) == ("GET", "/health"):
            return 200, {"status": "ok", **self.info, "open_connections": len(self.state.handlers)}
        if (method, path) == ("GET", "/journal"):
            key = query.get("key", [None])[0]
            since = int(query.get("since", ["0"])[0])
            return 200, {"records": journal.query(key=key, since=since)}
        if (method, path) == ("POST", "/reset"):
            journal.reset()
            self.state.faults.load(self.state.faults.plan)
            return 200, {"status": "reset"}
        if (method, path) == ("GET", "/plan"):
            return 200, self.state.faults.plan.to_data()
        if (method, path) == ("PUT", "/plan"):
            try:
                plan = FaultPlan.from_data(json.loads(body or b"{}"))
            except PlanError as error:
                return 400, {"error": str(error), "path": error.path}
            except ValueError as error:
                return 400, {"error": f"plan is not JSON: {error}"}
            self.state.faults.load(plan)
            return 200, {"status": "loaded", "rules": len(plan.rules), "generation": self.state.faults.generation}
        if (method, path) == ("POST", "/lanes"):
            request = json.loads(body or b"{}")
            trial = request.get("trial") if isinstance(request, dict) else None
            if not isinstance(trial, str) or not trial:
                return 400, {"error": "lanes: body must be {\"trial\": \"<non-empty string>\"}"}
            host = request.get("host")
            if host is not None and not _is_address(host):
                return 400, {"error": "lanes: host must be an IP address (the network lab's host side), not a wildcard"}
            try:
                port = await self.data_plane.open_lane(trial, host)
            except OSError as error:
                return 400, {"error": f"lanes: cannot bind {host}: {error}"}
            return 200, {"port": port, "trial": trial, **({"host": host} if host else {})}
        if method == "DELETE" and path.startswith("/lanes/"):
            closed = self.data_plane.close_lane(int(path.rsplit("/", 1)[1]))
            return (200, {"status": "closed"}) if closed else (404, {"error": "no such lane"})
        if (method, path) == ("GET", "/lanes"):
            return 200, {"lanes": {str(port): trial for port, (trial, _) in self.data_plane.lanes.items()}}
        if (method, path) == ("DELETE", "/plan"):
            self.state.faults.load(FaultPlan())
            return 200, {"status": "cleared"}
        return 404, {"error": f"no route {method} {path}"}


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _lifespan(receive: Receive, send: Send) -> None:
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
