"""The official OpenAI Python SDK (``openai`` on PyPI, pyproject's test extra):
harness/clients/programs/openai_python_client.py. Its policy as read from openai 3.57.0."""

from __future__ import annotations

import sys

from harness.clients.adapter import ContractClient

OPENAI_APIS = ("chat", "responses")
OPENAI_PYTHON_POLICY = (
    "2 retries; min(0.5*2^n, 8 s)*(1-0.25U); 408/409/429/5xx and connection errors; x-should-retry overrides; "
    "retry-after-ms then retry-after honoured up to 120 s (longer: no retry); never mid-stream; read timeout 600 s"
)
PYTHON = (sys.executable, "-m", "harness.clients.programs.openai_python_client")

CLIENTS = (
    ContractClient("openai-python", "openai (PyPI), httpx, HTTP/1.1", ("http/1.1",), OPENAI_PYTHON_POLICY, argv=PYTHON, apis=OPENAI_APIS),
    ContractClient(
        "openai-python-h2",
        "openai (PyPI), DefaultHttpxClient(http2=True)",
        ("h2",),
        OPENAI_PYTHON_POLICY,
        argv=PYTHON,
        env={"STREAMCHAOS_HTTP2": "1"},
        apis=OPENAI_APIS,
    ),
)
