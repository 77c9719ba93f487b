"""Properties of the OpenAI encodings: for any conversation, the chunks and typed events carry exactly
the generator's answer (the Messages API's for the same prompt), in any split of the byte stream."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from simulator import sse
from simulator.api import openai_chat as chat
from simulator.api import openai_responses as responses
from simulator.api.answer import generate
from simulator.api.request import parse_messages_request

SEED = 3
prompts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
shapes = st.fixed_dictionaries(
    {
        "words": st.integers(1, 60),
        "deltas": st.one_of(st.none(), st.integers(1, 30)),
        "tool": st.booleans(),
        "max_tokens": st.integers(1, 80),
    }
)


def directive(shape: dict) -> str:
    line = f"@sc words={shape['words']}" + (f" deltas={shape['deltas']}" if shape["deltas"] else "")
    return line + (' tool=Bash input={"command":"ls -la"}' if shape["tool"] else "")


def messages_answer(prompt: str, max_tokens: int):
    body = {
        "model": "m",
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}],
        "tools": [{"name": "Bash", "input_schema": {"type": "object"}}],
    }
    return generate(SEED, parse_messages_request(json.dumps(body).encode()), 40)


def splits(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]


@given(prompts, shapes, st.lists(st.integers(0, 10**6), max_size=8))
def test_chat_chunks_carry_the_messages_answer(text, shape, cuts):
    prompt = f"{text}\n{directive(shape)}"
    body = {
        "model": "gpt-5",
        "messages": [{"role": "user", "content": prompt}],
        "max_completion_tokens": shape["max_tokens"],
        "stream": True,
        "stream_options": {"include_usage": True},
        "tools": [{"type": "function", "function": {"name": "Bash", "parameters": {"type": "object"}}}],
    }
    request, include_usage = chat.parse(json.dumps(body).encode())
    answer = generate(SEED, request, 40)
    want = messages_answer(prompt, shape["max_tokens"])
    assert answer == want
    wire = b"".join(e.data for e in chat.chunks(answer, "chatcmpl-x", "gpt-5", include_usage))
    decoder, lines = sse.Decoder(), []
    for piece in splits(wire, cuts):
        lines += [e.data for e in decoder.feed(piece)]
    assert lines[-1] == "[DONE]" and decoder.pending == b""
    chunks = [json.loads(line) for line in lines[:-1]]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert "".join(d.get("content") or "" for d in deltas) == want.text
    arguments = "".join(call["function"]["arguments"] for d in deltas for call in d.get("tool_calls") or [])
    assert arguments == "".join(b.content for b in want.tool_uses)
    assert chunks[-1]["usage"]["completion_tokens"] == want.output_tokens


@given(prompts, shapes)
def test_responses_events_carry_the_messages_answer_in_sequence(text, shape):
    prompt = f"{text}\n{directive(shape)}"
    body = {
        "model": "gpt-5",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": prompt}]}],
        "max_output_tokens": shape["max_tokens"],
        "stream": True,
        "tools": [{"type": "function", "name": "Bash", "parameters": {"type": "object"}}],
    }
    request = responses.parse(json.dumps(body).encode())
    answer = generate(SEED, request, 40)
    want = messages_answer(prompt, shape["max_tokens"])
    assert answer == want
    events = list(sse.decode_all(b"".join(e.data for e in responses.events(answer, "resp_x", "gpt-5", shape["max_tokens"]))))
    payloads = [e.json() for e in events]
    assert [p["sequence_number"] for p in payloads] == list(range(len(payloads)))
    assert [e.name for e in events] == [p["type"] for p in payloads]
    assert "".join(p["delta"] for p in payloads if p["type"] == "response.output_text.delta") == want.text
    final = payloads[-1]
    assert final["type"] == ("response.incomplete" if want.stop_reason == "max_tokens" else "response.completed")
    assert final["response"]["usage"]["output_tokens"] == want.output_tokens
