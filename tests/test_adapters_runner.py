"""Every built-in client adapter through the runner once (README "Driving clients"): each one is
installed by `make setup`, runs the contract, and its printed answer is the generated one."""

from __future__ import annotations

import textwrap

import pytest

from harness import runner, scenario
from harness.clients import registry

pytestmark = [pytest.mark.clients, pytest.mark.slow]


def test_every_built_in_adapter_runs_through_the_runner(tmp_path):
    path = tmp_path / "plain.toml"
    path.write_text(textwrap.dedent("""
        version = 1
        name = "plain"
        seed = 4
        trials = 1
        transports = ["http/1.1", "h2"]
        tls = true
        deadline_s = 120.0
        [conversation]
        words = 30
        [[faults]]
        type = "slow"
        ttft_s = 0.05
    """))
    item = scenario.load(path)
    clients = tuple(registry.BUILT_IN.values())
    for client in clients:
        installed, why = client.installed()
        assert installed, f"{client.name}: {why} (make setup installs it)"
    directory = runner.run(runner.RunConfig((item,), clients, results_dir=tmp_path / "results", run_id="adapters", workers=4))
    records = {r["client"]: r for r in runner.only_latest(runner.load_records(directory))}
    assert set(records) == set(registry.BUILT_IN)
    for name, record in records.items():
        # the slow rule fired on the request, and the client printed exactly the generated answer
        assert record["outcome"] == "recovered", (name, record["outcome"], record["error_line"], record["integrity"], record["stderr_tail"][-300:])
        assert record["answers_intact"] == record["answers_expected"] == 1, name
        assert record["exit_code"] == 0 and not record["hung"], name
