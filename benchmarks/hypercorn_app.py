"""The reference server: a plain ASGI app that streams the simulator's 100-event answer.

``hypercorn --worker-class trio --workers 0 hypercorn_app:app`` (run from benchmarks/). POST
/v1/messages reads the body and streams the pre-encoded events, one ``http.response.body`` message
per event; nothing else is done per request, so this is the floor a hypercorn-based simulator
could reach.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from workload import PATH, reference_reply

from simulator.control import lifespan

HEADERS, EVENTS = reference_reply()
HEADER_LIST = [list(h) for h in HEADERS]
CHUNKS = [data for _, data in EVENTS]
NOT_FOUND = b'{"type":"error","error":{"type":"not_found_error","message":"Not Found"}}'


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        more = message.get("more_body", False)
    if scope["method"] != "POST" or scope["path"] != PATH:
        await send({"type": "http.response.start", "status": 404, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": NOT_FOUND})
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADER_LIST})
    for chunk in CHUNKS:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
