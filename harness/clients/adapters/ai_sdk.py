"""The Vercel AI SDK (``ai`` with ``@ai-sdk/openai`` on npm, pinned by harness/clients/openai_js/package-lock.json):
harness/clients/openai_js/ai_sdk_client.mjs. Its policy as read from ai 7.0.173 / @ai-sdk/openai 4.0.118."""

from __future__ import annotations

from harness.clients.adapter import NODE_BIN, ContractClient
from harness.clients.adapters.openai_node import OPENAI_JS_DIR
from harness.clients.adapters.openai_python import OPENAI_APIS

AI_SDK_POLICY = (
    "maxRetries 2; 2 s then 4 s, no jitter; APICallError.isRetryable (408/409/429/5xx; fetch failed, ECONNRESET, "
    "UND_ERR_SOCKET ...) before the response; retry-after-ms then retry-after honoured under 60 s; never mid-stream "
    "(streamRetries is opt-in, default 0); no timeout (timeout.firstChunkMs/chunkMs start after the headers)"
)
AI_SDK_STREAM_RETRIES_POLICY = AI_SDK_POLICY.replace(
    "never mid-stream (streamRetries is opt-in, default 0)", "streamRetries 2: provider errors after the stream started are retried"
)
REQUIRES = (OPENAI_JS_DIR / "node_modules" / "ai", OPENAI_JS_DIR / "node_modules" / "@ai-sdk" / "openai", NODE_BIN)
ARGV = (NODE_BIN, str(OPENAI_JS_DIR / "ai_sdk_client.mjs"))

CLIENTS = (
    ContractClient(
        "ai-sdk-node",
        "Vercel AI SDK (ai + @ai-sdk/openai) on Node (undici), HTTP/1.1",
        ("http/1.1",),
        AI_SDK_POLICY,
        requires=REQUIRES,
        argv=ARGV,
        apis=OPENAI_APIS,
    ),
    ContractClient(
        "ai-sdk-node-stream-retries",
        "Vercel AI SDK on Node with streamText's streamRetries: 2",
        ("http/1.1",),
        AI_SDK_STREAM_RETRIES_POLICY,
        requires=REQUIRES,
        argv=ARGV,
        env={"STREAMCHAOS_STREAM_RETRIES": "2"},
        apis=OPENAI_APIS,
    ),
)
