"""Built-in clients of the OpenAI-compatible APIs (Chat Completions, Responses).

Each is a real package from its registry: ``openai`` from PyPI (pyproject's test extra) and, from
npm, ``openai`` and the Vercel AI SDK (``ai`` with ``@ai-sdk/openai``), pinned by
harness/clients/openai_js/package-lock.json (``make setup`` runs ``npm ci`` there). The policies
are what each package's code does (read from the installed versions: openai 3.57.0 on PyPI,
openai 7.59.0 and ai 7.0.173 / @ai-sdk/openai 4.0.118 on npm), shown beside the backoff the
simulator measures.
"""

from __future__ import annotations

import sys

from harness.clients.registry import BUILT_IN, NODE_BIN, ROOT, ContractClient

OPENAI_JS_DIR = ROOT / "harness" / "clients" / "openai_js"
OPENAI_APIS = ("chat", "responses")

OPENAI_PYTHON_POLICY = ("2 retries; min(0.5*2^n, 8 s)*(1-0.25U); 408/409/429/5xx and connection errors; x-should-retry overrides; "
                        "retry-after-ms then retry-after honoured up to 120 s (longer: no retry); never mid-stream; read timeout 600 s")
OPENAI_NODE_POLICY = ("2 retries; min(0.5*2^n, 8 s)*(1-0.25U); 408/409/429/5xx and connection errors; x-should-retry overrides; "
                      "retry-after-ms then retry-after honoured up to 60 s (longer: default backoff); never mid-stream; timeout 600 s until the response headers (the body has none)")
AI_SDK_POLICY = ("maxRetries 2; 2 s then 4 s, no jitter; APICallError.isRetryable (408/409/429/5xx; fetch failed, ECONNRESET, "
                 "UND_ERR_SOCKET ...) before the response; retry-after-ms then retry-after honoured under 60 s; never mid-stream "
                 "(streamRetries is opt-in, default 0); no timeout (timeout.firstChunkMs/chunkMs start after the headers)")
AI_SDK_STREAM_RETRIES_POLICY = AI_SDK_POLICY.replace("never mid-stream (streamRetries is opt-in, default 0)",
                                                     "streamRetries 2: provider errors after the stream started are retried")

PYTHON = (sys.executable, "-m", "harness.clients.openai_python_client")
NODE_OPENAI = str(OPENAI_JS_DIR / "openai_client.mjs")
NODE_AI_SDK = str(OPENAI_JS_DIR / "ai_sdk_client.mjs")

CLIENTS = (
    ContractClient("openai-python", "openai (PyPI), httpx, HTTP/1.1", ("http/1.1",), OPENAI_PYTHON_POLICY, argv=PYTHON, apis=OPENAI_APIS),
    ContractClient("openai-python-h2", "openai (PyPI), DefaultHttpxClient(http2=True)", ("h2",), OPENAI_PYTHON_POLICY, argv=PYTHON,
                   env={"STREAMCHAOS_HTTP2": "1"}, apis=OPENAI_APIS),
    ContractClient("openai-node", "openai (npm) on Node (undici), HTTP/1.1", ("http/1.1",), OPENAI_NODE_POLICY,
                   requires=(OPENAI_JS_DIR / "node_modules" / "openai", NODE_BIN), argv=(NODE_BIN, NODE_OPENAI), apis=OPENAI_APIS),
    ContractClient("ai-sdk-node", "Vercel AI SDK (ai + @ai-sdk/openai) on Node (undici), HTTP/1.1", ("http/1.1",), AI_SDK_POLICY,
                   requires=(OPENAI_JS_DIR / "node_modules" / "ai", OPENAI_JS_DIR / "node_modules" / "@ai-sdk" / "openai", NODE_BIN),
                   argv=(NODE_BIN, NODE_AI_SDK), apis=OPENAI_APIS),
    ContractClient("ai-sdk-node-stream-retries", "Vercel AI SDK on Node with streamText's streamRetries: 2", ("http/1.1",), AI_SDK_STREAM_RETRIES_POLICY,
                   requires=(OPENAI_JS_DIR / "node_modules" / "ai", OPENAI_JS_DIR / "node_modules" / "@ai-sdk" / "openai", NODE_BIN),
                   argv=(NODE_BIN, NODE_AI_SDK), env={"STREAMCHAOS_STREAM_RETRIES": "2"}, apis=OPENAI_APIS),
)

BUILT_IN.update({c.name: c for c in CLIENTS})
