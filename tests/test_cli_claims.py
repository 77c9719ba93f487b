"""The README's command-line claims, through the `streamchaos` command a user types: clients,
scenarios list|show|validate, run with --client-cmd placeholders and --client-output text,
report DIR, resume with --run-id, serve --tls --journal, and the gate's max_amplification,
per-scenario overrides and flags over the policy file."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest

from harness import scenario
from harness.clients import registry
from harness.drive.simulator_process import SimulatorProcess
from tests.support import KNOWN

ROOT = Path(__file__).resolve().parent.parent
STREAMCHAOS = Path(sys.executable).parent / "streamchaos"


def streamchaos(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    command = [str(STREAMCHAOS)] if STREAMCHAOS.exists() else [sys.executable, "-m", "harness.cli"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


FIN_SCENARIO = """
    version = 1
    name = "fin_once"
    seed = 3
    trials = 4
    transports = ["http/1.1"]
    tls = false
    deadline_s = 60.0
    [conversation]
    words = 40
    deltas = 30
    [[faults]]
    type = "fin"
    trigger = { at = "events", value = 20 }
    select = { attempts = [1] }
"""


@pytest.fixture(scope="module")
def fixed_retry_run(tmp_path_factory):
    """One finished run through the CLI: the known client that retries, a FIN on every first attempt."""
    base = tmp_path_factory.mktemp("cli")
    path = write(base / "fin_once.toml", FIN_SCENARIO)
    done = streamchaos(
        "run",
        "--scenarios",
        str(path),
        "--client-cmd",
        f"{KNOWN} fixed-retry",
        "--client-name",
        "fixed-retry",
        "--results",
        str(base / "results"),
        "--run-id",
        "fixed",
        "--workers",
        "2",
    )
    assert done.returncode == 0, done.stderr
    return base / "results" / "fixed", path


# -- clients and scenarios ---------------------------------------------------------------------


def test_clients_lists_every_built_in_client_and_whether_it_is_installed():
    done = streamchaos("clients")
    assert done.returncode == 0, done.stderr
    listed = {line.split()[0]: line for line in done.stdout.splitlines() if line and not line.startswith(" ")}
    assert set(registry.BUILT_IN) <= set(listed)
    for name in ("python-sdk", "python-sdk-h2", "ts-sdk-node", "ts-sdk-bun", "ts-sdk-bun-h2", "go-sdk", "claude-code", "curl"):
        assert " installed " in listed[name] or listed[name].split()[2] == "installed", listed[name]  # make setup installed it


def test_scenarios_list_show_and_validate():
    listed = streamchaos("scenarios", "list")
    assert listed.returncode == 0
    names = [line.split()[0] for line in listed.stdout.splitlines()]
    assert names == [p.stem for p in scenario.library()]
    assert "agentic_nat_eviction" in listed.stdout and "[idle_eviction]" in listed.stdout
    shown = streamchaos("scenarios", "show", "reset_mid_thinking")
    assert shown.returncode == 0
    assert shown.stdout.startswith("reset_mid_thinking: ") and "reproduces:" in shown.stdout
    plan = json.loads(shown.stdout.split("fault plan (as the simulator runs it, scaled):\n", 1)[1].split("client script", 1)[0])
    assert plan["faults"][0]["type"] == "tcp_reset" and plan["faults"][0]["trigger"]["block"] == "thinking"
    missing = streamchaos("scenarios", "show", "no_such_scenario")
    assert missing.returncode != 0 and "no_such_scenario" in missing.stderr


def test_scenarios_validate_says_ok_or_names_file_key_and_fix(tmp_path):
    good = write(tmp_path / "good.toml", FIN_SCENARIO)
    bad = write(tmp_path / "my.toml", "version = 1\n[conversation]\nwrods = 3\n")
    ok = streamchaos("scenarios", "validate", str(good))
    assert ok.returncode == 0 and ok.stdout.startswith(f"ok: {good} (fin_once: 1 faults, 0 toxic steps)")
    failed = streamchaos("scenarios", "validate", str(good), str(bad))
    assert failed.returncode == 1
    assert f"error: {bad}: conversation.wrods: unknown key; did you mean 'words'?" in failed.stderr


# -- run with a command template ------------------------------------------------------------

PLACEHOLDER_CLIENT = """
import json, os, ssl, sys, urllib.error, urllib.request
from harness.clients.script import first_request_body

base_url, api_key, ca_file, script_file, prompt, log = sys.argv[1:7]
with open(log, "a") as out:
    out.write(json.dumps([base_url, api_key, ca_file, script_file, prompt, os.environ["ANTHROPIC_BASE_URL"],
                          os.environ["ANTHROPIC_API_KEY"], os.environ.get("SSL_CERT_FILE", "")]) + "\\n")
script = json.load(open(script_file))
assert script["turns"][0]["prompt"] == prompt
body = json.dumps(first_request_body(script, stream=False)).encode()
context = ssl.create_default_context(cafile=ca_file)
for attempt in range(3):
    request = urllib.request.Request(base_url + "/v1/messages", data=body, method="POST",
                                     headers={"x-api-key": api_key, "content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=20, context=context) as response:
            message = json.load(response)
    except urllib.error.HTTPError as error:
        if error.code >= 500:
            continue
        raise
    print("".join(block["text"] for block in message["content"] if block["type"] == "text"))  # plain text
    sys.exit(0)
sys.exit(1)
"""


def test_run_fills_every_placeholder_and_takes_plain_text_answers(tmp_path):
    client = write(tmp_path / "client.py", PLACEHOLDER_CLIENT)
    log = tmp_path / "calls.jsonl"
    path = write(
        tmp_path / "err.toml",
        """
        version = 1
        name = "err_once"
        seed = 2
        trials = 2
        transports = ["http/1.1"]
        tls = true
        [conversation]
        words = 30
        stream = false
        [[faults]]
        type = "http_error"
        status = 500
        select = { attempts = [1] }
    """,
    )
    template = f"{sys.executable} {client} {{base_url}} {{api_key}} {{ca_file}} {{script_file}} {{prompt}} {log}"
    done = streamchaos(
        "run",
        "--scenarios",
        str(path),
        "--client-cmd",
        template,
        "--client-name",
        "placeholders",
        "--client-output",
        "text",
        "--results",
        str(tmp_path / "results"),
        "--run-id",
        "ph",
    )
    assert done.returncode == 0, done.stderr
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(calls) == 2
    for base_url, api_key, ca_file, script_file, prompt, env_url, env_key, env_ca in calls:
        assert base_url == env_url and base_url.startswith("https://localhost:")
        assert api_key == env_key and api_key.startswith("sc-ph-err_once-placeholders-")
        assert ca_file == env_ca and Path(ca_file).name == "ca.pem"
        assert script_file.endswith("script.json") and "@sc " in prompt
    records = [json.loads(line) for line in (tmp_path / "results" / "ph" / "trials.jsonl").read_text().splitlines()]
    assert [r["outcome"] for r in records] == ["recovered", "recovered"]  # the 500 fired; the text answer is intact
    assert all(r["answers_intact"] == r["answers_expected"] == 1 for r in records)


def test_report_rebuilds_the_outputs_of_a_results_directory(fixed_retry_run):
    directory, _ = fixed_retry_run
    outputs = ["summary.json", "summary.csv", "report.html"]
    for name in outputs:
        (directory / name).unlink()
    done = streamchaos("report", str(directory))
    assert done.returncode == 0, done.stderr
    assert all((directory / name).stat().st_size > 0 for name in outputs)
    (row,) = (
        json.loads((directory / "summary.json").read_text())["rows"]
        if isinstance(json.loads((directory / "summary.json").read_text()), dict)
        else json.loads((directory / "summary.json").read_text())
    )
    assert row["scenario"] == "fin_once" and row["trials"] == 4
    empty = streamchaos("report", str(directory / "nope"))
    assert empty.returncode == 2 and "has no trials.jsonl" in empty.stderr


def test_run_id_resumes_only_the_missing_trials(tmp_path):
    path = write(tmp_path / "fin_once.toml", FIN_SCENARIO)
    args = [
        "run",
        "--scenarios",
        str(path),
        "--client-cmd",
        f"{KNOWN} never-retry",
        "--client-name",
        "never",
        "--results",
        str(tmp_path / "results"),
        "--run-id",
        "resume-me",
        "--workers",
        "2",
    ]
    assert streamchaos(*args).returncode == 0
    trials = tmp_path / "results" / "resume-me" / "trials.jsonl"
    lines = trials.read_text().splitlines()
    kept = [line for line in lines if json.loads(line)["trial"] != 2]
    trials.write_text("\n".join(kept) + "\n")
    again = streamchaos(*args)
    assert again.returncode == 0, again.stderr
    records = [json.loads(line) for line in trials.read_text().splitlines()]
    assert len(records) == 4 and sorted(r["trial"] for r in records) == [0, 1, 2, 3]
    assert records[-1]["trial"] == 2  # only the missing one ran again


# -- serve ---------------------------------------------------------------------------------------


def test_serve_tls_prints_an_https_base_url_and_journal_appends_json_lines(tmp_path):
    journal = tmp_path / "journal.jsonl"
    with SimulatorProcess(["--tls", "--journal", str(journal), "--seed", "2"]) as sim:
        assert sim.base_url.startswith("https://localhost:")
        context = ssl.create_default_context(cafile=sim.ca_file)
        body = json.dumps({"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "hi\n@sc words=5"}]}).encode()
        request = urllib.request.Request(sim.base_url + "/v1/messages", data=body, method="POST", headers={"x-api-key": "serve-k"})
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            answer = json.load(response)
        assert answer["type"] == "message"
        sim.journal("serve-k")  # closed
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    (request_record,) = [r for r in records if r["kind"] == "request" and r["key"] == "serve-k"]
    assert request_record["tls"] is True and request_record["status"] == 200 and request_record["end"] == "complete"
    assert any(r["kind"] == "connection" and r["tls"] for r in records)


# -- the gate ----------------------------------------------------------------------------------


def gate(directory: Path, tmp_path: Path, policy: str | None, *flags: str) -> tuple[int, str]:
    """`streamchaos gate --from DIR ...`, in this process (the same main() the command runs; one
    process start per call would cost seconds each): the exit code and everything it printed."""
    import contextlib
    import io

    from harness import cli

    args = ["gate", "--from", str(directory), "--junit", str(tmp_path / "junit.xml")]
    if policy is not None:
        args += ["--policy", str(write(tmp_path / "policy.toml", policy))]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([*args, *flags])
    return code, out.getvalue() + err.getvalue()


def test_gate_max_amplification_per_scenario_overrides_and_flags_over_the_file(fixed_retry_run, tmp_path):
    directory, _ = fixed_retry_run
    summary = json.loads((directory / "summary.json").read_text())
    rows = summary["rows"] if isinstance(summary, dict) else summary
    amplification = rows[0]["amplification"]
    assert amplification > 1.2  # the FIN at event 20 of ~36 made the retry stream bytes again
    easy = "version = 1\n[defaults]\nmin_recovery_lower = 0.3\nmax_hangs = 0\nmax_data_loss = 0\n"
    assert gate(directory, tmp_path, easy)[0] == 0
    strict = easy + "max_amplification = 1.1\n"
    code, printed = gate(directory, tmp_path, strict)
    assert code == 1 and f"amplification {amplification:.2f} > 1.10" in printed, printed
    # a per-scenario table overrides the defaults for that scenario only
    overridden = strict + "[scenarios.fin_once]\nmax_amplification = 3.0\nmin_recovery_lower = 0.3\n"
    assert gate(directory, tmp_path, overridden)[0] == 0
    other = strict + "[scenarios.something_else]\nmax_amplification = 3.0\n"
    assert gate(directory, tmp_path, other)[0] == 1
    # flags win over the file
    assert gate(directory, tmp_path, strict, "--max-amplification", "3")[0] == 0
    unreachable = easy.replace("0.3", "0.99")
    assert gate(directory, tmp_path, unreachable)[0] == 1
    assert gate(directory, tmp_path, unreachable, "--min-recovery", "0.3")[0] == 0
    # and the command itself, once: exit code and JUnit XML
    done = streamchaos("gate", "--from", str(directory), "--policy", str(write(tmp_path / "strict.toml", strict)), "--junit", str(tmp_path / "j.xml"))
    assert done.returncode == 1 and "amplification" in (tmp_path / "j.xml").read_text()
