"""pytest plugin (entry point ``streamchaos``): fixtures for a client library's own test suite.

    def test_my_client_survives_a_graceful_goaway(streamchaos):
        streamchaos.apply("goaway_graceful_in_flight")     # a library scenario's fault plan
        answer = my_client(base_url=streamchaos.base_url(tls=True), api_key=streamchaos.key,
                           ca_file=streamchaos.ca_file).ask("hi")
        assert answer == streamchaos.answers()[-1]          # what the simulator generated

Fixtures: ``streamchaos`` (a simulator per test, with a fresh key, plan and journal helpers),
``streamchaos_simulator`` (one simulator process per session) and ``streamchaos_toxiproxy`` (a
real toxiproxy server per session; skipped with the reason when none is installed).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Iterator

import pytest

_keys = itertools.count(1)


@dataclass
class StreamChaos:
    """One test's view of the simulator: its own API key, so its journal slice is its own."""

    simulator: Any
    key: str
    toxiproxy: Any = None
    _proxies: list = field(default_factory=list)

    @property
    def ca_file(self) -> str:
        return self.simulator.ca_file

    @property
    def control_url(self) -> str:
        return self.simulator.control_url

    @property
    def control_headers(self) -> dict[str, str]:
        """Headers for your own control API requests (the bearer token when the simulator has one)."""
        return self.simulator.control_headers()

    def base_url(self, tls: bool = False) -> str:
        return self.simulator.lane_url(self.simulator.port, tls)

    def apply(self, scenario: str, time_scale: float | None = None) -> Any:
        """Load a scenario's fault plan (a library name or a TOML path); returns the Scenario."""
        from harness import scenario as scenarios

        item = scenarios.load(scenarios.find(scenario))
        self.simulator.load_plan(item.plan(time_scale).to_data())
        return item

    def plan(self, *faults: dict, seed: int = 0) -> None:
        """Load faults given inline, in the plan's JSON form."""
        self.simulator.load_plan({"seed": seed, "faults": list(faults)})

    def clear(self) -> None:
        self.simulator.load_plan({"faults": []})

    def journal(self) -> list[dict]:
        return self.simulator.journal(self.key)

    def requests(self) -> list[dict]:
        return sorted((r for r in self.journal() if r["kind"] == "request"), key=lambda r: r["t_headers"])

    def answers(self) -> list[str]:
        """The answer text the simulator generated for each request of this test, in order."""
        return [r["answer"]["text"] for r in self.requests() if r.get("answer")]

    def faults(self) -> list[dict]:
        return [note for r in self.journal() for note in r.get("faults", []) if "not_reached" not in note and "skipped" not in note]

    def proxy(self) -> Any:
        """A toxiproxy proxy in front of the simulator, for TCP-level toxics (deleted after the test)."""
        if self.toxiproxy is None:
            pytest.skip("toxiproxy is not installed (make toxiproxy)")
        proxy = self.toxiproxy.create_proxy(self.key, upstream_port=self.simulator.port)
        self._proxies.append(proxy)
        return proxy


@pytest.fixture(scope="session")
def streamchaos_simulator() -> Iterator[Any]:
    from harness.drive.simulator_process import SimulatorProcess

    with SimulatorProcess(["--seed", "0"]) as simulator:
        yield simulator


@pytest.fixture(scope="session")
def streamchaos_toxiproxy() -> Iterator[Any]:
    from harness.network.toxiproxy import ToxiproxyServer, available

    ok, why = available()
    if not ok:
        pytest.skip(why)
    with ToxiproxyServer() as server:
        yield server


@pytest.fixture
def streamchaos(request: pytest.FixtureRequest, streamchaos_simulator: Any) -> Iterator[StreamChaos]:
    toxiproxy = None
    if "streamchaos_toxiproxy" in request.fixturenames:
        toxiproxy = request.getfixturevalue("streamchaos_toxiproxy")
    chaos = StreamChaos(streamchaos_simulator, f"sk-pytest-{request.node.name[:48]}-{next(_keys)}", toxiproxy)
    yield chaos
    chaos.clear()
    for proxy in chaos._proxies:
        toxiproxy.delete_proxy(proxy)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "streamchaos: a test that drives a client through the streamchaos simulator")
