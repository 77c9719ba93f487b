"""The API's error shapes: one type, one body format, the status codes the real API uses."""

from __future__ import annotations

import json
from dataclasses import dataclass

ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    409: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

DEFAULT_MESSAGES: dict[str, str] = {
    "invalid_request_error": "Invalid request",
    "authentication_error": "x-api-key header is required",
    "permission_error": "Your API key does not have permission to use the specified resource.",
    "not_found_error": "Not Found",
    "request_too_large": "Request exceeds the maximum allowed number of bytes.",
    "rate_limit_error": "Number of requests has exceeded your rate limit.",
    "api_error": "Internal server error",
    "timeout_error": "Request timed out",
    "overloaded_error": "Overloaded",
}


def retryable_status(status: int) -> bool:
    """Whether an error status is worth retrying: the rule the official SDKs apply (408, 409, 429,
    any 5xx), which the simulator states in ``x-should-retry`` and the harness's clients follow."""
    return status in (408, 409, 429) or status >= 500


@dataclass(frozen=True, slots=True)
class ApiError(Exception):
    """An HTTP error answer; raised by validation, returned by faults."""

    status: int
    message: str = ""
    error_type: str = ""

    @property
    def type(self) -> str:
        return self.error_type or ERROR_TYPES.get(self.status, "api_error")

    @property
    def text(self) -> str:
        return self.message or DEFAULT_MESSAGES.get(self.type, "Error")

    def payload(self, request_id: str | None) -> dict:
        body: dict = {"type": "error", "error": {"type": self.type, "message": self.text}}
        if request_id is not None:
            body["request_id"] = request_id
        return body

    def body(self, request_id: str | None) -> bytes:
        return json.dumps(self.payload(request_id), separators=(",", ":")).encode()


def invalid(message: str) -> ApiError:
    return ApiError(400, message, "invalid_request_error")
