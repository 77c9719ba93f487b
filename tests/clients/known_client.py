"""A client of known behaviour, for testing the harness itself.

    python known_client.py MODE

Modes: ``never-retry`` (one attempt, error on failure), ``fixed-retry`` (up to 3 retries, 300 ms
apart), ``partial-ok`` (prints whatever arrived and exits 0), ``hang`` (waits forever for the
stream, no timeout), ``repeat-on-retry`` (retries but keeps the text of failed attempts, so the
answer it prints repeats its beginning). It follows the client contract: ANTHROPIC_BASE_URL,
ANTHROPIC_API_KEY, SSL_CERT_FILE, STREAMCHAOS_SCRIPT; one JSON line per turn.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import time
import urllib.request

from harness.clients.script import first_request_body, read_script
from simulator import sse

FIXED_BACKOFF_S = 0.3


def stream_once(body: bytes, timeout: float | None) -> tuple[str, bool]:
    """One streaming attempt: (text received, whether message_stop came)."""
    request = urllib.request.Request(
        os.environ["ANTHROPIC_BASE_URL"] + "/v1/messages",
        data=body,
        method="POST",
        headers={"x-api-key": os.environ["ANTHROPIC_API_KEY"], "content-type": "application/json", "anthropic-version": "2023-06-01"},
    )
    context = ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE"))
    decoder, text, complete = sse.Decoder(), [], False
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            while True:
                chunk = response.read1(65536)
                if not chunk:
                    break
                for event in decoder.feed(chunk):
                    if event.name == "content_block_delta":
                        text.append(event.json()["delta"].get("text", ""))
                    elif event.name == "message_stop":
                        complete = True
    except Exception:
        return "".join(text), False
    return "".join(text), complete


def main(mode: str) -> int:
    script = read_script()
    body = json.dumps(first_request_body(script, stream=True)).encode()
    timeout = None if mode == "hang" else 10.0
    attempts = 4 if mode in ("fixed-retry", "repeat-on-retry") else 1
    kept = ""
    for attempt in range(attempts):
        if attempt:
            time.sleep(FIXED_BACKOFF_S)
        text, complete = stream_once(body, timeout)
        if complete:
            print(json.dumps({"turn": 0, "text": kept + text if mode == "repeat-on-retry" else text}), flush=True)
            return 0
        if mode == "repeat-on-retry":
            kept += text
    if mode == "partial-ok":
        print(json.dumps({"turn": 0, "text": text}), flush=True)
        return 0
    print(json.dumps({"turn": 0, "error": f"StreamFailed: no message_stop after {attempts} attempt(s)"}), flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
