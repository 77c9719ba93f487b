"""http_error on the wire: the real error body and the retry headers."""

from __future__ import annotations

import json
import re

import pytest

from tests.faults.client import BODY, SEED, body, once, records
from tests.wire import h1_exchange, post


def test_http_529_with_retry_headers(sim, plan):
    plan({"type": "http_error", "status": 529, "retry_after": 2, "retry_after_ms": 1500, "should_retry": True})
    result = h1_exchange("127.0.0.1", sim.port, post("/v1/messages", BODY) + b"", timeout_s=1)
    head = result.head.decode().lower()
    assert result.status == 529
    assert "retry-after: 2\r" in head and "retry-after-ms: 1500\r" in head and "x-should-retry: true" in head
    assert json.loads(result.body)["error"] == {"type": "overloaded_error", "message": "Overloaded"}


@pytest.mark.parametrize(
    "status,error_type,message,retry",
    [
        (429, "rate_limit_error", "Number of requests has exceeded your rate limit.", "true"),
        (500, "api_error", "Internal server error", "true"),
    ],
)
def test_429_and_500_carry_the_real_body_and_headers(sim, plan, status, error_type, message, retry):
    plan({"type": "http_error", "status": status, "retry_after": 3}, seed=SEED)
    result = once(sim, "/v1/messages", body(), f"e{status}")
    head = result.head.decode().lower()
    assert result.status == status
    answer = json.loads(result.body)
    assert answer["type"] == "error" and answer["error"] == {"type": error_type, "message": message}
    assert re.search(rf"\r\nrequest-id: {answer['request_id']}\r", head), head
    assert f"\r\nx-should-retry: {retry}\r" in head and "\r\nretry-after: 3\r" in head
    (request,) = records(sim, f"e{status}")
    assert request["status"] == status and request["request_id"] == answer["request_id"]
