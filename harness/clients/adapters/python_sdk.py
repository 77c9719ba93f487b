"""The official Python SDK (``anthropic`` on PyPI): harness/clients/programs/python_sdk_client.py."""

from __future__ import annotations

import sys

from harness.clients.adapter import ContractClient

SDK_POLICY = "2 retries; min(0.5*2^n, 8 s)*(1-0.25U); 408/409/429/5xx and connection errors; never mid-stream"
PROGRAM = "harness.clients.programs.python_sdk_client"
PYTHON = (sys.executable, "-m", PROGRAM)

CLIENTS = (
    ContractClient("python-sdk", "anthropic (PyPI), HTTP/1.1", ("http/1.1",), SDK_POLICY, argv=PYTHON),
    ContractClient(
        "python-sdk-h2", "anthropic (PyPI), DefaultHttpxClient(http2=True)", ("h2",), SDK_POLICY, argv=PYTHON, env={"STREAMCHAOS_HTTP2": "1"}
    ),
)
