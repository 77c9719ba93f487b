"""curl streaming one request, no retries: the baseline that never recovers."""

from __future__ import annotations

import json
from dataclasses import dataclass

from harness.clients.adapter import ClientAdapter, Invocation, Launch
from harness.clients.launch import contract_env
from harness.clients.script import first_request_body


@dataclass(frozen=True)
class CurlClient(ClientAdapter):
    """The script's first request, streamed; the raw SSE is the output."""

    http2: bool = False

    def invocation(self, launch: Launch) -> Invocation:
        body = first_request_body(launch.script, stream=True)
        body_file = launch.workdir / "body.json"
        body_file.write_text(json.dumps(body))
        argv = [
            "curl",
            "-sS",
            "-N",
            "--fail-with-body",
            "--http2" if self.http2 else "--http1.1",
            "-H",
            f"x-api-key: {launch.api_key}",
            "-H",
            "anthropic-version: 2023-06-01",
            "-H",
            "content-type: application/json",
            "--data-binary",
            f"@{body_file}",
            f"{launch.base_url}/v1/messages",
        ]
        if launch.ca_file:
            argv[1:1] = ["--cacert", launch.ca_file]
        if launch.script.get("timeout_s"):
            argv[1:1] = ["--max-time", str(launch.script["timeout_s"])]
        return Invocation(
            tuple(argv), contract_env(launch.base_url, launch.api_key, launch.script, launch.ca_file, script_dir=launch.workdir), output="sse"
        )


CLIENTS = (CurlClient("curl", "curl --http1.1, no retries", ("http/1.1",), "no retries", requires=("curl",), max_turns=1, parallel=False),)
