"""The SSE encoder and decoder agree on every event and every way of splitting the bytes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from simulator import sse

names = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20).filter(lambda s: ":" not in s and s.strip() == s)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(st.lists(st.tuples(names, json_values), min_size=1, max_size=8), st.data())
def test_round_trip_under_any_split(events, data):
    wire = b"".join(sse.encode(name, {"v": value}) for name, value in events)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=10)))
    decoder, decoded, previous = sse.Decoder(), [], 0
    for cut in [*cuts, len(wire)]:
        decoded += decoder.feed(wire[previous:cut])
        previous = cut
    assert [(e.name, e.json()["v"]) for e in decoded] == events
    assert decoder.pending == b""


@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=60))
def test_multiline_data_round_trips(text):
    (event,) = sse.Decoder().feed(sse.encode_raw("x", text.replace("\r", "")))
    assert event.data == text.replace("\r", "")


@given(st.binary(max_size=200))
def test_decoder_never_crashes_on_garbage(blob):
    decoder = sse.Decoder()
    for event in decoder.feed(blob):
        assert isinstance(event.name, str) and isinstance(event.data, str)
