"""What the fault types' wire tests send and how they read the journal."""

from __future__ import annotations

from tests.wire import h1_exchange, post

SEED = 9  # the plan seed the fault-key tests were written with
BODY = {"model": "m", "max_tokens": 4000, "stream": True, "messages": [{"role": "user", "content": "hello\n@sc deltas=94"}]}
THINKING = {
    "model": "m",
    "max_tokens": 4000,
    "stream": True,
    "thinking": {"type": "adaptive"},
    "messages": [{"role": "user", "content": "think\n@sc words=30 thinking_words=60"}],
}


def body(deltas: int = 30, stream: bool = True, content: str = "hello") -> dict:
    return {"model": "m", "max_tokens": 2000, "stream": stream, "messages": [{"role": "user", "content": f"{content}\n@sc deltas={deltas}"}]}


def names(events):
    return [e.name for e in events]


def records(sim, key):
    """The journal's request records of the trial ``key``."""
    return [r for r in sim.journal(key) if r["kind"] == "request"]


def once(sim, path: str, payload: dict, key: str):
    """One request on its own connection (connection: close), read to EOF."""
    return h1_exchange("127.0.0.1", sim.port, post(path, payload, key=key, extra="connection: close\r\n"), timeout_s=10)


def exchange(sim, key, payload=None, path="/v1/messages", timeout_s=10.0):
    return h1_exchange("127.0.0.1", sim.port, post(path, payload or body(), key=key), until_complete=True, timeout_s=timeout_s)
