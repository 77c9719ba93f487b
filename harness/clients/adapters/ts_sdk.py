"""The official TypeScript SDK (``@anthropic-ai/sdk`` on npm) on Node and on Bun: harness/clients/js/client.mjs."""

from __future__ import annotations

from harness.clients.adapter import CLIENTS_DIR, NODE_BIN, ContractClient
from harness.clients.adapters.python_sdk import SDK_POLICY  # the SDKs share one retry policy

JS_DIR = CLIENTS_DIR / "js"
JS_CLIENT = str(JS_DIR / "client.mjs")
BUN_BIN = JS_DIR / "node_modules" / ".bin" / "bun"

CLIENTS = (
    ContractClient(
        "ts-sdk-node",
        "@anthropic-ai/sdk on Node 20 (undici), HTTP/1.1",
        ("http/1.1",),
        SDK_POLICY,
        requires=(JS_DIR / "node_modules" / "@anthropic-ai" / "sdk", NODE_BIN),
        argv=(NODE_BIN, JS_CLIENT),
    ),
    ContractClient(
        "ts-sdk-bun", "@anthropic-ai/sdk on Bun, HTTP/1.1", ("http/1.1",), SDK_POLICY, requires=(BUN_BIN,), argv=(str(BUN_BIN), JS_CLIENT)
    ),
    ContractClient(
        "ts-sdk-bun-h2",
        "@anthropic-ai/sdk on Bun with its experimental h2 client",
        ("h2",),
        SDK_POLICY,
        requires=(BUN_BIN,),
        argv=(str(BUN_BIN), JS_CLIENT),
        env={"BUN_FEATURE_FLAG_EXPERIMENTAL_HTTP2_CLIENT": "1"},
    ),
)
