"""Every built-in client adapter through the runner once (README "Driving clients"): each one is
installed by `make setup`, runs the contract, and its printed answer is the generated one."""

from __future__ import annotations

import pytest

from harness import scenario
from harness.clients import registry
from harness.drive import runner

pytestmark = [pytest.mark.clients, pytest.mark.slow]


PLAIN = """
version = 1
name = "plain_{api}"
api = "{api}"
seed = 4
trials = 1
transports = ["http/1.1", "h2"]
tls = true
deadline_s = 120.0
[conversation]
{model}words = 30
[[faults]]
type = "slow"
ttft_s = 0.05
"""


def test_every_built_in_adapter_runs_through_the_runner(tmp_path):
    clients = tuple(registry.BUILT_IN.values())
    for client in clients:
        installed, why = client.installed()
        assert installed, f"{client.name}: {why} (make setup installs it)"
    items = []
    for api in ("messages", "chat", "responses"):  # each client runs on every API it speaks
        path = tmp_path / f"plain_{api}.toml"
        path.write_text(PLAIN.format(api=api, model="" if api == "messages" else 'model = "gpt-5"\n'))
        items.append(scenario.load(path))
    directory = runner.run(runner.RunConfig(tuple(items), clients, results_dir=tmp_path / "results", run_id="adapters", workers=4))
    records = runner.only_latest(runner.load_records(directory))
    ran = {(r["scenario"], r["client"]) for r in records if r["outcome"] != "skipped"}
    assert ran == {(f"plain_{api}", c.name) for c in clients for api in c.apis}
    for record in records:
        name = (record["scenario"], record["client"])
        if record["outcome"] == "skipped":
            assert "api" in (record.get("skipped") or ""), (name, record.get("skipped"))
            continue
        # the slow rule fired on the request, and the client printed exactly the generated answer
        assert record["outcome"] == "recovered", (name, record["outcome"], record["error_line"], record["integrity"], record["stderr_tail"][-300:])
        assert record["answers_intact"] == record["answers_expected"] == 1, name
        assert record["exit_code"] == 0 and not record["hung"], name
