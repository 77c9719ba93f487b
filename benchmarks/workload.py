"""The one workload every server in the data-plane benchmark answers: a 100-event streaming reply.

The request asks the simulator for 188 words in 94 text deltas (``@sc words=188 deltas=94``), so the
answer has message_start + ping + content_block_start + 94 deltas + content_block_stop +
message_delta + message_stop = 100 events of about 128 bytes each (the deltas carry two words).
``deltas`` is capped at the number of words, so ``words`` has to be given too.

The reference servers (hypercorn, MockServer) stream the very bytes the simulator produces for this
body, generated here once with :class:`simulator.api.router.MessagesApi`.
"""

from __future__ import annotations

import json
from functools import lru_cache

DELTAS = 94
WORDS = 2 * DELTAS
EVENTS = DELTAS + 6
API_KEY = "bench"
PROMPT = f"streamchaos benchmark\n@sc words={WORDS} deltas={DELTAS}"
PATH = "/v1/messages"


def request_body() -> bytes:
    return json.dumps(
        {
            "model": "claude-sonnet-4-6",
            "max_tokens": 1024,
            "stream": True,
            "messages": [{"role": "user", "content": PROMPT}],
        },
        separators=(",", ":"),
    ).encode()


@lru_cache(maxsize=1)
def reference_reply() -> tuple[tuple[tuple[bytes, bytes], ...], tuple[tuple[str, bytes], ...]]:
    """(headers, ((event name, SSE bytes), ...)) exactly as the simulator streams them."""
    from simulator.api.router import MessagesApi, StreamReply, describe
    from simulator.config import SimulatorConfig

    body = request_body()
    api = MessagesApi(SimulatorConfig())
    headers = [(b"x-api-key", API_KEY.encode()), (b"content-type", b"application/json")]
    reply = api.handle(describe("POST", PATH, headers, body), body, api.new_request_id())
    if not isinstance(reply, StreamReply):
        raise RuntimeError(f"the simulator did not stream the benchmark request: {reply!r}")
    if len(reply.events) != EVENTS:
        raise RuntimeError(f"the benchmark request gives {len(reply.events)} events, not {EVENTS}")
    return tuple(reply.headers), tuple((event.name, event.data) for event in reply.events)


def reference_text() -> str:
    """The answer's text: what aimock is told to stream."""
    from simulator.sse import decode_all

    text = []
    for _, data in reference_reply()[1]:
        for event in decode_all(data):
            payload = event.json()
            if payload.get("type") == "content_block_delta":
                text.append(payload["delta"].get("text", ""))
    return "".join(text)
