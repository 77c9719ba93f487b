"""One test per toxic module (harness/network/toxiproxy/toxics/): its bounds, its defaults, how it
follows a time scale, and its JSON both ways. No server needed; the real server's view of every
kind is tests/test_toxiproxy.py's round trip."""

from __future__ import annotations

import pytest

from harness.network.toxiproxy.errors import ToxicValidationError
from harness.network.toxiproxy.toxics import (
    MAX_INT64,
    MAX_MS,
    MAX_RATE,
    MAX_US,
    TOXIC_KINDS,
    BandwidthToxic,
    LatencyToxic,
    LimitDataToxic,
    ResetPeerToxic,
    SlicerToxic,
    SlowCloseToxic,
    TimeoutToxic,
    Toxic,
    scaled_attributes,
    scaled_toxic,
    toxic_from_api,
    toxic_from_data,
)


def round_trips(toxic: Toxic) -> None:
    """The API's JSON names the kind ``type`` (the only place it does) and reads back equal."""
    data = toxic.to_api()
    assert data["type"] == toxic.kind and data["name"] == toxic.toxic_name
    assert toxic_from_api(data) == toxic
    assert toxic_from_data({"type": toxic.kind, **{k: data[k] for k in ("name", "stream", "toxicity")}, **data["attributes"]}) == toxic


def rejects(cls: type[Toxic], attribute: str, **values) -> None:
    with pytest.raises(ToxicValidationError) as info:
        cls(**values)
    assert info.value.attribute == f"{cls.kind}.{attribute}"


def test_the_table_has_one_entry_per_module():
    assert {
        "latency": LatencyToxic,
        "bandwidth": BandwidthToxic,
        "slow_close": SlowCloseToxic,
        "timeout": TimeoutToxic,
        "reset_peer": ResetPeerToxic,
        "slicer": SlicerToxic,
        "limit_data": LimitDataToxic,
    } == TOXIC_KINDS
    assert all(cls.kind == kind for kind, cls in TOXIC_KINDS.items())


def test_latency():
    toxic = LatencyToxic(latency=100, jitter=10)
    assert toxic.name == "latency_downstream" and toxic.attributes() == {"latency": 100, "jitter": 10}
    round_trips(toxic)
    assert scaled_toxic(toxic, 2) == LatencyToxic(latency=200, jitter=20)
    LatencyToxic(latency=MAX_MS)
    rejects(LatencyToxic, "latency", latency=MAX_MS + 1)
    rejects(LatencyToxic, "jitter", jitter=-1)


def test_bandwidth():
    toxic = BandwidthToxic(rate=100, stream="upstream")
    assert toxic.name == "bandwidth_upstream"
    round_trips(toxic)
    assert scaled_toxic(toxic, 2) == BandwidthToxic(rate=50, stream="upstream")  # a rate: divided
    assert scaled_toxic(BandwidthToxic(rate=1), 10).rate == 1  # nonzero stays nonzero
    BandwidthToxic(rate=MAX_RATE)
    rejects(BandwidthToxic, "rate", rate=MAX_RATE + 1)
    rejects(BandwidthToxic, "rate", rate=1.5)


def test_slow_close():
    toxic = SlowCloseToxic(delay=500)
    round_trips(toxic)
    assert scaled_toxic(toxic, 0.1) == SlowCloseToxic(delay=50)
    rejects(SlowCloseToxic, "delay", delay=-5)
    rejects(SlowCloseToxic, "delay", delay=True)


def test_timeout():
    toxic = TimeoutToxic(timeout=0)  # 0: never close
    round_trips(toxic)
    assert scaled_toxic(TimeoutToxic(timeout=1000), 0.5) == TimeoutToxic(timeout=500)
    assert scaled_toxic(toxic, 0.5) == toxic  # 0 keeps its meaning
    rejects(TimeoutToxic, "timeout", timeout=MAX_MS + 1)


def test_reset_peer():
    toxic = ResetPeerToxic(timeout=20, toxicity=0.0, name="linger_rst")
    round_trips(toxic)
    assert scaled_toxic(toxic, 3) == ResetPeerToxic(timeout=60, toxicity=0.0, name="linger_rst")
    rejects(ResetPeerToxic, "timeout", timeout=-1)
    rejects(ResetPeerToxic, "toxicity", toxicity=1.5)


def test_slicer():
    toxic = SlicerToxic(average_size=64, size_variation=32, delay=2000)
    round_trips(toxic)
    assert scaled_toxic(toxic, 0.5) == SlicerToxic(average_size=64, size_variation=32, delay=1000)  # sizes do not scale
    rejects(SlicerToxic, "average_size", average_size=0)  # toxiproxy would recurse forever
    rejects(SlicerToxic, "size_variation", average_size=8, size_variation=8)
    rejects(SlicerToxic, "delay", delay=MAX_US + 1)


def test_limit_data():
    toxic = LimitDataToxic(bytes=1000)
    round_trips(toxic)
    assert scaled_toxic(toxic, 0.1) == toxic  # bytes are not time
    LimitDataToxic(bytes=MAX_INT64)
    rejects(LimitDataToxic, "bytes", bytes=-1)


def test_scaling_follows_each_kind_and_refuses_a_bad_scale():
    assert scaled_attributes("latency", {"latency": 10, "jitter": 0}, 3) == {"latency": 30, "jitter": 0}
    assert scaled_attributes("no_such_kind", {"latency": 10}, 3) == {"latency": 10}
    for factor in (0, -1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="time scale"):
            scaled_attributes("latency", {"latency": 10}, factor)
