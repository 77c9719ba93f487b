"""The official Go SDK (``anthropic-sdk-go``): harness/clients/go, built by ``make setup`` into tools/bin."""

from __future__ import annotations

from harness.clients.adapter import CLIENTS_DIR, ContractClient

GO_POLICY = "2 retries; min(0.5*2^n, 8 s) - U*delay/4; 408/409/429/5xx and connection errors; never mid-stream"
GO_CLIENT = CLIENTS_DIR.parent.parent / "tools" / "bin" / "streamchaos-go-client"

CLIENTS = (ContractClient("go-sdk", "anthropic-sdk-go, h2 over TLS", ("h2",), GO_POLICY, requires=(GO_CLIENT,), argv=(str(GO_CLIENT),)),)
