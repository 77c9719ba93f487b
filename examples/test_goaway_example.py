"""Example: a client library's own test, using the streamchaos pytest plugin.

Run with:  .venv/bin/python -m pytest examples/test_goaway_example.py
"""

import importlib
import ssl

import anthropic
import pytest

# The SDK's HTTP library (httpx; anthropic 2.14 ships it as httpx2): its exception types.
http = importlib.import_module(anthropic.DefaultHttpxClient.__mro__[1].__module__.split(".")[0])


@pytest.mark.xfail(
    strict=True,
    raises=http.RemoteProtocolError,
    reason="known: httpx's h2 fails a stream that a graceful GOAWAY covers (REFERENCE §3); strict, so a fix shows up",
)
def test_python_sdk_over_h2_survives_a_graceful_goaway(streamchaos):
    streamchaos.apply("goaway_graceful_in_flight")  # GOAWAY(NO_ERROR) covering the stream in flight
    client = anthropic.Anthropic(
        base_url=streamchaos.base_url(tls=True),
        api_key=streamchaos.key,
        http_client=anthropic.DefaultHttpxClient(http2=True, verify=ssl.create_default_context(cafile=streamchaos.ca_file)),
        max_retries=2,
    )
    try:
        with client.messages.stream(
            model="claude-sonnet-4-6", max_tokens=1024, messages=[{"role": "user", "content": "Hello\n@sc words=80"}]
        ) as stream:
            text = stream.get_final_text()
    except http.RemoteProtocolError as error:  # exactly this failure is expected: h2's ConnectionTerminated(NO_ERROR)
        assert str(error).startswith("<ConnectionTerminated error_code:0, last_stream_id:1"), error
        raise
    assert [f["type"] for f in streamchaos.faults()][:1] == ["goaway"]  # the GOAWAY really went out
    assert text == streamchaos.answers()[-1]  # the whole answer, once


def test_python_sdk_does_not_retry_a_mid_stream_reset(streamchaos):
    streamchaos.plan({"type": "tcp_reset", "trigger": {"at": "events", "value": 10}, "select": {"attempts": [1]}})
    client = anthropic.Anthropic(base_url=streamchaos.base_url(), api_key=streamchaos.key, max_retries=2)
    with pytest.raises(Exception, match="Connection reset by peer"):
        with client.messages.stream(model="m", max_tokens=1024, messages=[{"role": "user", "content": "Hi\n@sc words=60"}]) as stream:
            stream.get_final_text()
    assert len(streamchaos.requests()) == 1  # documented: the SDK never retries a stream that started
