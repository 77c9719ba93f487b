"""From an HTTP request to a reply: routing, authentication, validation, the answer.

Pure apart from two counters for unique ids; transports call :meth:`MessagesApi.handle` and then
write the reply however their protocol (and the fault plan) says.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..config import SimulatorConfig
from . import answer as answers
from .errors import ApiError, retryable_status
from .events import WireEvent, body_events, message_start
from .openai_router import OPENAI_PATHS, OpenAIApi, is_openai
from .reply import JsonReply, Reply, StreamReply
from .request import MessagesRequest, parse_count_tokens_request, parse_messages_request

Headers = Sequence[tuple[bytes, bytes]]

MODELS = (
    ("claude-opus-4-7", "Claude Opus 4.7", "2026-04-16T00:00:00Z"),
    ("claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-17T00:00:00Z"),
    ("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-15T00:00:00Z"),
)

ROUTES = {
    "/v1/messages": "POST",
    "/v1/messages/count_tokens": "POST",
    "/v1/models": "GET",
    **dict.fromkeys(OPENAI_PATHS, "POST"),  # OpenAI-compatible APIs: simulator/api/openai_router.py
}


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What the journal and the fault plan need to know about a request."""

    method: str
    path: str
    api_key: str | None
    retry_count: int | None
    user_agent: str | None
    body_sha256: str
    body_bytes: int


LAZY_PIECES = 2048  # an answer with more delta pieces is encoded while it is written, never held whole
CACHE_MAX_BYTES = 32 * 1024 * 1024  # encoded answers kept for repeats (besides the count limit)


def header(headers: Headers, name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


def api_key_of(headers: Headers) -> str | None:
    key = header(headers, b"x-api-key")
    if key:
        return key
    auth = header(headers, b"authorization")
    if auth and auth[:7].lower() == "bearer " and auth[7:].strip():
        return auth[7:].strip()
    return None


def describe(method: str, target: str, headers: Headers, body: bytes) -> RequestInfo:
    retry = header(headers, b"x-stainless-retry-count")
    return RequestInfo(
        method=method,
        path=target,
        api_key=api_key_of(headers),
        retry_count=int(retry) if retry and retry.isascii() and retry.isdigit() and len(retry) < 10 else None,
        user_agent=header(headers, b"user-agent"),
        body_sha256=hashlib.sha256(body).hexdigest(),
        body_bytes=len(body),
    )


class MessagesApi:
    """The API surface, with an LRU of encoded answers (identical requests are common in load)."""

    def __init__(self, config: SimulatorConfig, cache_size: int = 1024) -> None:
        self.config = config
        self._ids = itertools.count(1)
        self._prefix = os.urandom(4).hex()
        self._cache: OrderedDict[str, tuple[MessagesRequest, answers.Answer, tuple[WireEvent, ...], bytes, dict]] = OrderedDict()
        self._cache_size = cache_size
        self._cache_bytes = 0
        self._reset_header: tuple[int, bytes] = (0, b"")
        self.openai = OpenAIApi(config)

    def new_request_id(self) -> str:
        return f"req_sc{self._prefix}{next(self._ids):012d}"

    def handle(self, info: RequestInfo, body: bytes, request_id: str) -> Reply:
        return answers.finish(self.handle_steps(info, body, request_id))

    def handle_steps(self, info: RequestInfo, body: bytes, request_id: str):
        """:meth:`handle` in slices: a generator that yields between slices of a long answer's
        generation (a server lets other streams run there) and returns the Reply."""
        try:
            return (yield from self._route(info, body, request_id))
        except ApiError as error:
            return self.error_reply(error, request_id, path=info.path)

    def error_reply(self, error: ApiError, request_id: str, extra: Sequence[tuple[bytes, bytes]] = (), path: str | None = None) -> JsonReply:
        if is_openai(path):
            return self.openai.error_reply(error, request_id, extra)
        headers = (
            (b"content-type", b"application/json"),
            (b"request-id", request_id.encode()),
            (b"x-should-retry", b"true" if retryable_status(error.status) else b"false"),
            *extra,
        )
        return JsonReply(error.status, headers, error.body(request_id))

    def _route(self, info: RequestInfo, body: bytes, request_id: str):
        yield from ()  # a generator: only /v1/messages yields
        path = info.path.split("?", 1)[0]
        model_path = path.startswith("/v1/models/") and len(path) > len("/v1/models/")
        expected = "GET" if model_path else ROUTES.get(path)
        if expected is None:
            raise ApiError(404, "Not Found", "not_found_error")
        if info.method != expected and not (info.method == "HEAD" and expected == "GET"):
            raise ApiError(405, f"Method Not Allowed: {info.method} {path}", "invalid_request_error")
        if info.api_key is None:
            raise ApiError(401, "x-api-key header is required", "authentication_error")
        if info.body_bytes > self.config.max_body_bytes:
            raise ApiError(413, "Request exceeds the maximum allowed number of bytes.", "request_too_large")
        if path == "/v1/messages":
            return (yield from self._messages(info, body, request_id))
        if path in OPENAI_PATHS:
            return self.openai.handle(path, info.body_sha256, body, request_id)
        if path == "/v1/messages/count_tokens":
            return self._json(200, {"input_tokens": parse_count_tokens_request(body)}, request_id)
        if model_path:
            model_id = path[len("/v1/models/") :]
            for entry in MODELS:
                if entry[0] == model_id:
                    return self._json(200, _model(entry), request_id)
            raise ApiError(404, f"model: {model_id}", "not_found_error")
        data = [_model(entry) for entry in MODELS]
        return self._json(200, {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}, request_id)

    def _messages(self, info: RequestInfo, body: bytes, request_id: str):
        request, answer, tail, tail_bytes, summary = yield from self._answer(info.body_sha256, body)
        message_id = "msg_" + request_id[4:]
        if not request.stream:
            message = answers.message_object(answer, message_id, request.model)
            reply = self._json(200, message, request_id)
            return JsonReply(reply.status, reply.headers, reply.body, answer, request)
        headers = (
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"request-id", request_id.encode()),
            *self._rate_limit_headers(),
        )
        start = message_start(answer, message_id, request.model)
        if tail is None:
            return StreamReply(headers, None, request, answer, b"", summary, start, request.directives.ping_every or self.config.ping_every)
        return StreamReply(headers, (start, *tail), request, answer, tail_bytes, summary)

    def _answer(self, digest: str, body: bytes):
        cached = self._cache.get(digest)
        if cached is not None:
            self._cache.move_to_end(digest)
            return cached
        request = parse_messages_request(body)
        answer = yield from answers.generate_steps(self.config.seed, request, self.config.default_words)
        if sum(len(block.pieces) for block in answer.blocks) > LAZY_PIECES:
            return (request, answer, None, b"", answer.summary())  # long: encoded while written, not cached
        ping_every = request.directives.ping_every or self.config.ping_every
        tail = body_events(answer, ping_every)
        entry = (request, answer, tail, b"".join(event.data for event in tail), answer.summary())
        self._cache[digest] = entry
        self._cache_bytes += 3 * len(entry[3])  # the events, their join and the summary, roughly
        while len(self._cache) > self._cache_size or (self._cache_bytes > CACHE_MAX_BYTES and len(self._cache) > 1):
            _, dropped = self._cache.popitem(last=False)
            self._cache_bytes -= 3 * len(dropped[3])
        return entry

    def clear_cache(self) -> None:
        self._cache.clear()
        self._cache_bytes = 0

    def _json(self, status: int, payload: object, request_id: str) -> JsonReply:
        headers = (
            (b"content-type", b"application/json"),
            (b"request-id", request_id.encode()),
            *self._rate_limit_headers(),
        )
        return JsonReply(status, headers, json.dumps(payload, separators=(",", ":")).encode())

    def _rate_limit_headers(self) -> tuple[tuple[bytes, bytes], ...]:
        second = int(time.time())
        if self._reset_header[0] != second:
            at = (datetime.fromtimestamp(second, UTC) + timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
            self._reset_header = (second, at.encode())
        reset = self._reset_header[1]
        out: list[tuple[bytes, bytes]] = []
        for kind, limit in ((b"requests", b"4000"), (b"tokens", b"2000000"), (b"input-tokens", b"1600000"), (b"output-tokens", b"400000")):
            prefix = b"anthropic-ratelimit-" + kind
            out += [(prefix + b"-limit", limit), (prefix + b"-remaining", limit), (prefix + b"-reset", reset)]
        return tuple(out)


def _model(entry: tuple[str, str, str]) -> dict:
    return {"type": "model", "id": entry[0], "display_name": entry[1], "created_at": entry[2]}
