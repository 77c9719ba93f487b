"""The official OpenAI Node SDK (``openai`` on npm, pinned by harness/clients/openai_js/package-lock.json):
harness/clients/openai_js/openai_client.mjs. Its policy as read from openai 7.59.0."""

from __future__ import annotations

from harness.clients.adapter import CLIENTS_DIR, NODE_BIN, ContractClient
from harness.clients.adapters.openai_python import OPENAI_APIS

OPENAI_JS_DIR = CLIENTS_DIR / "openai_js"
OPENAI_NODE_POLICY = (
    "2 retries; min(0.5*2^n, 8 s)*(1-0.25U); 408/409/429/5xx and connection errors; x-should-retry overrides; "
    "retry-after-ms then retry-after honoured up to 60 s (longer: default backoff); never mid-stream; "
    "timeout 600 s until the response headers (the body has none)"
)

CLIENTS = (
    ContractClient(
        "openai-node",
        "openai (npm) on Node (undici), HTTP/1.1",
        ("http/1.1",),
        OPENAI_NODE_POLICY,
        requires=(OPENAI_JS_DIR / "node_modules" / "openai", NODE_BIN),
        argv=(NODE_BIN, str(OPENAI_JS_DIR / "openai_client.mjs")),
        apis=OPENAI_APIS,
    ),
)
