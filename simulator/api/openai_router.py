"""The OpenAI-compatible surface of the simulator: Chat Completions and Responses, chosen by path.

:class:`simulator.api.router.MessagesApi` hands requests to these paths here after its common
checks (method, key, size); errors raised on these paths are written in OpenAI's form
(``{"error": {"message", "type", "param", "code"}}``, ``x-request-id``, ``x-ratelimit-*``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from ..config import SimulatorConfig
from . import answer as answers
from . import openai_chat as chat
from . import openai_responses as responses
from .errors import ApiError
from .openai_common import body_json, error_body, error_reply_headers, headers
from .reply import JsonReply, StreamReply
from .request import MessagesRequest

OPENAI_PATHS = {chat.PATH: "chat", responses.PATH: "responses"}
API_PATHS = {"messages": "/v1/messages", "chat": chat.PATH, "responses": responses.PATH}


def is_openai(path: str | None) -> bool:
    return path is not None and path.split("?", 1)[0] in OPENAI_PATHS


class OpenAIApi:
    def __init__(self, config: SimulatorConfig, cache_size: int = 256) -> None:
        self.config = config
        self._cache: OrderedDict[str, tuple[MessagesRequest, bool, answers.Answer, dict]] = OrderedDict()
        self._cache_size = cache_size

    def handle(self, path: str, body_sha256: str, body: bytes, request_id: str) -> JsonReply | StreamReply:
        request, include_usage, answer, summary = self._answer(path, body_sha256, body)
        if path == chat.PATH:
            cid = chat.completion_id(request_id)
            if not request.stream:
                return JsonReply(200, headers(request_id, False), body_json(chat.completion(answer, cid, request.model)), answer, request)
            events = chat.chunks(answer, cid, request.model, include_usage)
            encoder = chat.error_chunk
        else:
            rid = responses.response_id(request_id)
            if not request.stream:
                payload = responses.response_object(answer, rid, request.model, request.max_tokens, responses.now(), True)
                return JsonReply(200, headers(request_id, False), body_json(payload), answer, request)
            events = responses.events(answer, rid, request.model, request.max_tokens)
            encoder = responses.error_event
        tail = b"".join(e.data for e in events[1:])
        return StreamReply(headers(request_id, True), events, request, answer, tail, summary, error_event=encoder)

    def error_reply(self, error: ApiError, request_id: str, extra: Sequence[tuple[bytes, bytes]] = ()) -> JsonReply:
        return JsonReply(error.status, error_reply_headers(request_id, error.status, extra), error_body(error))

    def _answer(self, path: str, digest: str, body: bytes) -> tuple[MessagesRequest, bool, answers.Answer, dict]:
        key = f"{path}:{digest}"
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        if path == chat.PATH:
            request, include_usage = chat.parse(body)
        else:
            request, include_usage = responses.parse(body), False
        answer = answers.generate(self.config.seed, request, self.config.default_words)
        entry = (request, include_usage, answer, answer.summary())
        self._cache[key] = entry
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return entry


def expected_answer(seed: int, path: str, body: bytes, default_words: int = SimulatorConfig().default_words) -> answers.Answer:
    """The answer the simulator gives to this body on an OpenAI path. (The default is an instance's:
    on a slots dataclass the class attribute is the slot descriptor, not the default value.)"""
    request = chat.parse(body)[0] if path == chat.PATH else responses.parse(body)
    return answers.generate(seed, request, default_words)
