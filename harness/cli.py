"""The ``streamchaos`` command."""

from __future__ import annotations

import argparse
import gc
import json
import signal
import sys
from pathlib import Path
from typing import Any

import trio

from harness import limits

_SIGNALS_RECEIVED: list[int] = []


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP: unwinds like Ctrl-C, so every finally block stops what it started."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _terminate_as_interrupt(signum, frame) -> None:
    """The first SIGINT, SIGTERM or SIGHUP interrupts; later ones are noted but do not interrupt
    the (bounded) cleanup the first one started. The exit status is then 128 + the first signal."""
    _SIGNALS_RECEIVED.append(signum)
    if len(_SIGNALS_RECEIVED) == 1:
        raise Interrupted(signum)


def _install_signal_handlers() -> dict[int, Any]:
    """Our handlers for SIGINT, SIGTERM and SIGHUP; the ones they replace (to restore)."""
    _SIGNALS_RECEIVED.clear()
    return {signum: signal.signal(signum, _terminate_as_interrupt) for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}


def _exit_status(code: int) -> int:
    """By convention a run ended by a signal exits 128 + its number (SIGINT 130, SIGTERM 143, SIGHUP 129)."""
    return 128 + _SIGNALS_RECEIVED[0] if _SIGNALS_RECEIVED else code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="streamchaos", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the fake Messages API until SIGINT/SIGTERM")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=limits.port, default=0)
    serve.add_argument("--control-port", type=limits.port, default=0)
    serve.add_argument("--tls", action="store_true", help="advertise https (the port speaks both)")
    serve.add_argument("--seed", type=int, default=0)
    serve.add_argument("--journal", type=Path, default=None, help="append JSON lines here")
    serve.add_argument("--words", type=int, default=40, help="default answer length in words")
    serve.add_argument("--ttft-ms", type=float, default=0.0, help="time to first token")
    serve.add_argument("--tokens-per-second", type=float, default=None)
    serve.add_argument("--frame-per-event", action="store_true", help="one write per SSE event")
    serve.add_argument("--max-body-bytes", type=int, default=32 * 1024 * 1024)
    serve.set_defaults(handler=_serve)

    serve.add_argument("--scenario", default=None, help="load this scenario's fault plan (a name from scenarios/ or a file)")
    serve.add_argument(
        "--control-token", default=None, help="require 'Authorization: Bearer TOKEN' on the control API (generated when --host is not loopback)"
    )
    serve.add_argument(
        "--journal-memory-mb", type=float, default=64.0, help="in-memory journal budget; oldest records evicted first (the file keeps all)"
    )
    serve.add_argument("--journal-max-mb", type=float, default=256.0, help="rotate the --journal file past this size (FILE.1 ... FILE.4 kept)")

    run = commands.add_parser("run", help="drive clients through scenarios; results to results/<run-id>/")
    _add_run_options(run)
    run.add_argument("--shard", default=None, metavar="I/N", help="run shard I of N (1-based) of the grid, balanced by expected trial cost")
    run.add_argument("--shard-from-env", action="store_true", help="take the shard from STREAMCHAOS_SHARD (I/N) or JOB_COMPLETION_INDEX (0-based)")
    run.add_argument("--shard-count", type=int, default=None, help="N for JOB_COMPLETION_INDEX (default: STREAMCHAOS_SHARD_COUNT)")
    run.add_argument("--baseline", type=Path, default=None, help="a results directory to compare with (a section of report.html)")
    run.set_defaults(handler=_run)

    merge = commands.add_parser("merge", help="merge shard results directories into one (trials, summary, CSV, report, JUnit)")
    merge.add_argument("directories", type=Path, nargs="+")
    merge.add_argument("--out", type=Path, required=True, help="the merged results directory (must not hold trials yet)")
    merge.add_argument("--policy", type=Path, default=None, help="TOML thresholds for the merged junit.xml (default: the default policy)")
    merge.set_defaults(handler=_merge)

    gate = commands.add_parser("gate", help="run (or read) results and pass or fail them against a policy; JUnit XML")
    _add_run_options(gate)
    gate.add_argument("--from", dest="from_dir", type=Path, default=None, help="judge this results directory instead of running")
    gate.add_argument("--policy", type=Path, default=None, help="TOML thresholds (see README: CI gate)")
    gate.add_argument("--junit", type=Path, default=None, help="write JUnit XML here (default: <results>/junit.xml)")
    gate.add_argument("--min-recovery", type=float, default=None, help="lower bound of the 95%% recovery interval, 0..1")
    gate.add_argument("--max-hangs", type=int, default=None)
    gate.add_argument("--max-data-loss", type=int, default=None)
    gate.add_argument("--max-amplification", type=float, default=None)
    gate.add_argument("--sequential", action="store_true", help="run each cell's trials in batches; stop as soon as the recovery interval decides")
    gate.add_argument("--batch", type=int, default=None, help="trials per cell per look of --sequential (default: the policy's, else 5)")
    gate.set_defaults(handler=_gate)

    compare = commands.add_parser("compare", help="the reference client with each retry strategy through scenarios: table and plots")
    compare.add_argument(
        "--strategies",
        nargs="+",
        default=None,
        help="names from harness/measure/strategies.py (default: sdk-default full-jitter idle-watchdog resilient)",
    )
    compare.add_argument("--scenarios", nargs="+", required=True, help="names from scenarios/ or files")
    compare.add_argument("--trials", type=limits.trials, default=None, help="trials per strategy and scenario (default: each scenario's)")
    compare.add_argument("--results", type=Path, default=None, help="results directory (default: results/)")
    compare.add_argument("--run-id", type=limits.run_id, default=None, help="resume (or name) this run")
    compare.add_argument("--time-scale", type=limits.time_scale, default=None, help="override every scenario's time_scale (strategies scale with it)")
    compare.add_argument("--workers", type=limits.workers, default=None, help="trials at once (default: the core count, at least 2)")
    compare.add_argument("--http2", action="store_true", help="the reference client over h2 (TLS, ALPN) instead of HTTP/1.1")
    compare.set_defaults(handler=_compare)

    clients = commands.add_parser("clients", help="the built-in clients and whether each is installed")
    clients.set_defaults(handler=_clients)

    from harness import versions_cli  # issue 14: setup, bisect

    versions_cli.add_commands(commands, _add_run_options)

    report = commands.add_parser("report", help="summarize a results directory again (summary, CSV, HTML)")
    report.add_argument("directory", type=Path, nargs="?", default=None)
    report.add_argument("--baseline", type=Path, default=None, help="another results directory: a section of what changed against it")
    report.set_defaults(handler=_report)

    diff = commands.add_parser("diff", help="cells whose recovery, hangs or data loss changed between two runs (Fisher's exact test)")
    diff.add_argument("run_a", type=Path, help="the baseline results directory")
    diff.add_argument("run_b", type=Path, help="the results directory to judge against it")
    diff.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    diff.add_argument(
        "--fail-on",
        default="worse",
        choices=("worse", "change", "any", "never"),
        help="exit 1 when a cell got significantly worse (default), changed significantly, changed at all, or never",
    )
    diff.add_argument("--strip-versions", action="store_true", help="match clients by the name before '@' (two versions of one client)")
    diff.add_argument("--json", type=Path, default=None, help="write the comparison here as JSON")
    diff.set_defaults(handler=_diff)

    replay = commands.add_parser("replay", help="run one recorded trial again, same decisions; a reproducer bundle (pcap, TLS keys, SSE)")
    replay.add_argument("directory", type=Path, help="the results directory the trial is in")
    replay.add_argument("--scenario", required=True)
    replay.add_argument("--client", required=True)
    replay.add_argument("--trial", type=int, required=True)
    replay.add_argument("--out", type=Path, default=None, help="bundle directory (default: <results>/replay-<scenario>-<client>-<trial>)")
    replay.add_argument("--no-pcap", action="store_true", help="skip tcpdump (no capture privileges)")
    replay.set_defaults(handler=_replay)

    scenarios = commands.add_parser("scenarios", help="list, show or validate scenario files")
    which = scenarios.add_subparsers(dest="action", required=True)
    which.add_parser("list", help="the library, one line each").set_defaults(handler=_scenarios_list)
    show = which.add_parser("show", help="one scenario: what it reproduces, its faults, its plan")
    show.add_argument("name")
    show.set_defaults(handler=_scenarios_show)
    validate = which.add_parser("validate", help="check files; exit 1 on the first error per file")
    validate.add_argument("files", nargs="+", type=Path)
    validate.set_defaults(handler=_scenarios_validate)

    args = parser.parse_args(argv)
    from harness.drive.rundir import RunLocked

    # serve handles its signals itself (graceful GOAWAY)
    previous = _install_signal_handlers() if args.command != "serve" and _in_main_thread() else {}
    try:
        return _exit_status(args.handler(args))
    except KeyboardInterrupt:  # interrupted outside a run (loading, summarizing): no traceback
        print(f"streamchaos: interrupted ({signal.Signals(_SIGNALS_RECEIVED[0]).name if _SIGNALS_RECEIVED else 'SIGINT'})", file=sys.stderr)
        return _exit_status(130)
    except RunLocked as error:
        print(f"streamchaos: {error}", file=sys.stderr)
        return 2
    finally:
        for signum, handler in previous.items():  # for callers in-process (tests, the pytest plugin)
            signal.signal(signum, handler)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenarios", nargs="+", default=None, help="names from scenarios/ or files (default: the whole library)")
    parser.add_argument("--clients", nargs="+", default=None, help="built-in clients (default: every installed one)")
    parser.add_argument("--client-cmd", default=None, help="any client: a command template, e.g. 'node my.js {base_url}'")
    parser.add_argument("--client-name", default="custom")
    parser.add_argument("--client-output", default="contract", choices=("contract", "text"))
    parser.add_argument("--trials", type=limits.trials, default=None, help="trials per scenario and client (default: each scenario's)")
    parser.add_argument("--max-trials", type=limits.trials, default=None, help="cap each scenario's default trial count")
    parser.add_argument("--workers", type=limits.workers, default=None, help="trials at once (default: the core count, at least 2)")
    parser.add_argument("--results", type=Path, default=None, help="results directory (default: results/)")
    parser.add_argument("--run-id", type=limits.run_id, default=None, help="resume (or name) this run")
    parser.add_argument("--time-scale", type=limits.time_scale, default=None, help="override every scenario's time_scale")


def _select_scenarios(names: list[str] | None):
    from harness import scenario

    paths = [scenario.find(name) for name in names] if names else scenario.library()
    return tuple(scenario.load(path) for path in paths)


def _select_clients(args: argparse.Namespace):
    from harness.clients import registry, versions

    if args.client_cmd:
        chosen = [registry.command_client(args.client_cmd, args.client_name, args.client_output)]
        chosen += [versions.resolve(name) for name in (args.clients or [])]
        return tuple(chosen)
    if args.clients:  # NAME or NAME@VERSION (issue 14): a version installs on first use
        return tuple(versions.resolve(name) for name in args.clients)
    defaults = (versions.resolve(c.name, install=False) for c in registry.BUILT_IN.values() if c.on_by_default)
    return tuple(c for c in defaults if c.installed()[0])


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console(stderr=True)
    directory = _execute(args, console)
    if not isinstance(directory, Path):
        return directory
    status = _summarize(
        directory,
        console,
        {"scenarios": len(args.scenarios or []) or "library", "clients": ", ".join(args.clients or []) or "installed"},
        baseline=args.baseline,
    )
    from harness.present import step_summary

    step_summary.for_directory("streamchaos run", directory)
    return status


def _run_config(args: argparse.Namespace, console, command: str):
    """The RunConfig the run/gate options say (with the shard slice), or exit code 2 with the reason."""
    import os

    from harness.drive import runner, shards
    from harness.scenario import ScenarioError

    try:
        scenarios = _select_scenarios(args.scenarios)
        clients = _select_clients(args)
    except (ScenarioError, KeyError, ValueError) as error:
        console.print(f"[red]{command}:[/red] {error}")
        return 2
    if not clients:
        console.print(f"[red]{command}:[/red] no client is installed; run `make setup` or `streamchaos setup`, or pass --client-cmd")
        return 2
    config = runner.RunConfig(
        scenarios=scenarios,
        clients=clients,
        results_dir=args.results or runner.RESULTS,
        run_id=args.run_id or runner.new_run_id(),
        trials=args.trials,
        max_trials=args.max_trials,
        workers=args.workers or max(2, os.cpu_count() or 2),
        time_scale=args.time_scale,
    )
    try:
        return shards.prepare(args, config)
    except shards.ShardError as error:
        console.print(f"[red]{command}:[/red] {error}")
        return 2


def _execute(args: argparse.Namespace, console) -> Path | int:
    """Run what the options say; the results directory, or an exit code if it could not run."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    from harness.drive import runner

    config = _run_config(args, console, "streamchaos")
    if not isinstance(config, runner.RunConfig):
        return config
    from harness.present import fieldmatch

    fieldmatch.save(config.results_dir / config.run_id, config.scenarios)  # issue 14: the field rows beside the results
    with Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("trials", total=None)

        def update(progress: runner.Progress, record) -> None:
            label = f"{record.scenario} / {record.client}: {record.outcome}" if record else ""
            bar.update(task, total=progress.total, completed=progress.done, description=label[:70])

        try:
            return runner.run(config, runner.Progress(on_update=update))
        except KeyboardInterrupt:
            console.print(
                f"[yellow]interrupted[/yellow]: recorded trials are in {config.results_dir / config.run_id}; resume with --run-id {config.run_id}"
            )
            return _exit_status(130)
        except runner.rundir.RunLocked as error:
            console.print(f"[red]streamchaos:[/red] {error}")
            return 2


def _gate(args: argparse.Namespace) -> int:
    from rich.console import Console

    from harness.drive import runner
    from harness.measure import metrics
    from harness.present import gate

    console = Console(stderr=True)
    try:
        policy = gate.load_policy(args.policy) if args.policy else gate.Policy()
        policy = gate.with_overrides(
            policy,
            min_recovery_lower=args.min_recovery,
            max_hangs=args.max_hangs,
            max_data_loss=args.max_data_loss,
            max_amplification=args.max_amplification,
        )
    except gate.PolicyError as error:
        console.print(f"[red]streamchaos gate:[/red] {error}")
        return 2
    from harness.present import sequential

    try:
        plan = sequential.options(args.policy, args.batch, args.sequential)
    except gate.PolicyError as error:
        console.print(f"[red]streamchaos gate:[/red] {error}")
        return 2
    if plan is not None:
        return sequential.command(args, policy, plan, console, run_config=_run_config, summarize=_summarize)
    if args.from_dir:
        directory = args.from_dir.resolve()
        if not (directory / "trials.jsonl").exists():
            console.print(f"[red]streamchaos gate:[/red] {directory} has no trials.jsonl")
            return 2
    else:
        directory = _execute(args, console)
        if not isinstance(directory, Path):
            return directory
    status = _summarize(directory, console, {"gate": str(args.policy or "flags")})
    if status:
        return status
    verdicts = gate.evaluate(metrics.summarize(runner.only_latest(runner.load_records(directory))), policy)
    junit = args.junit or directory / "junit.xml"
    junit.write_text(gate.junit_xml(verdicts))
    failed = [v for v in verdicts if not v.passed]
    for verdict in verdicts:
        mark = "[green]PASS[/green]" if verdict.passed else "[red]FAIL[/red]"
        detail = f"skipped: {verdict.skipped}" if verdict.skipped else "; ".join(verdict.reasons)
        console.print(f"{mark} {verdict.scenario} / {verdict.client} {detail}")
    console.print(f"gate: {len(verdicts) - len(failed)} passed, {len(failed)} failed; JUnit XML: {junit}")
    from harness.present import step_summary

    step_summary.for_verdicts("streamchaos gate", verdicts, directory)
    return 1 if failed else 0


def _merge(args: argparse.Namespace) -> int:
    from harness.present import merge

    return merge.command(args)


def _compare(args: argparse.Namespace) -> int:
    from harness.present import compare

    return compare.command(args)


def _summarize(directory: Path, console, extra: dict, baseline: Path | None = None) -> int:
    from harness.drive import runner
    from harness.measure import metrics
    from harness.present import diff, report, report_html

    records = runner.only_latest(runner.load_records(directory))
    rows = metrics.summarize(records)
    meta = {"run_id": directory.name, "trials recorded": len([r for r in records if not r.get("skipped")]), **extra}
    against, status = None, 0
    if baseline is not None:
        try:
            against = diff.compare(diff.load_rows(baseline), rows, label_a=Path(baseline).name, label_b=directory.name)
            meta["baseline"] = str(baseline)
        except diff.DiffError as error:  # the report is still written, without that section
            console.print(f"[red]streamchaos:[/red] --baseline: {error}")
            status = 2
    from harness.present import versions_report  # issue 14: field matches and version columns

    added = versions_report.extend(directory, rows, records)
    paths = report.write_all(directory, rows, meta, baseline=against, records=records)
    versions_report.finish(paths, added)
    report_html.print_summary(rows)
    versions_report.print_tables(added)
    if against is not None:
        diff.print_result(against)
    console.print(f"results: {paths['json']}, {paths['csv']}, {paths['html']}")
    return status


def _report(args: argparse.Namespace) -> int:
    from rich.console import Console

    from harness.drive import runner

    directory = args.directory or (runner.RESULTS / "latest")
    if not (directory / "trials.jsonl").exists():
        print(f"streamchaos report: {directory} has no trials.jsonl", file=sys.stderr)
        return 2
    return _summarize(directory.resolve(), Console(stderr=True), {}, baseline=args.baseline)


def _diff(args: argparse.Namespace) -> int:
    from harness.present import diff

    return diff.command(args)


def _replay(args: argparse.Namespace) -> int:
    from harness.drive import replay

    return replay.command(args)


def _clients(args: argparse.Namespace) -> int:
    from harness.clients import registry, versions

    for client in (versions.resolve(c.name, install=False) for c in registry.BUILT_IN.values()):  # a cached pinned version counts
        installed, why = client.installed()
        state = "installed" if installed else f"missing: {why}"
        print(f"{client.name:<15} {'/'.join(client.protocols):<10} {state:<12}  {client.description}")
        print(f"{'':<15} policy: {client.policy}")
    from harness import versions_cli

    versions_cli.print_cached()
    return 0


def _scenarios_list(args: argparse.Namespace) -> int:
    from harness import scenario

    for path in scenario.library():
        try:
            item = scenario.load(path)
        except scenario.ScenarioError as error:
            print(f"{path.stem:<28} INVALID: {error}")
            continue
        kinds = ", ".join(
            sorted(
                {rule.fault.kind for rule in item.faults.rules}
                | ({"toxics"} if item.toxics else set())
                | ({"network"} if getattr(item, "network", None) else set())
            )
        )
        print(f"{item.name:<28} {item.title}  [{kinds}]")
    return 0


def _scenarios_show(args: argparse.Namespace) -> int:
    from harness import scenario

    try:
        item = scenario.load(scenario.find(args.name))
    except scenario.ScenarioError as error:
        print(error, file=sys.stderr)
        return 2
    print(f"{item.name}: {item.title}\n")
    print(f"reproduces: {'; '.join(item.reproduces) or '-'}")
    print(f"shape: {item.shape}\nexpect: {item.expect}\n")
    print(
        f"seed {item.seed}, {item.trials} trials, concurrency {item.concurrency}, time_scale {item.time_scale:g}, "
        f"transports {', '.join(item.transports)}, {'TLS' if item.tls else 'cleartext'}, deadline {item.deadline():.1f} s"
    )
    if getattr(item, "network", None) is not None:
        print(f"network lab (real time): {json.dumps(item.network.to_json())}")
    print("fault plan (as the simulator runs it, scaled):")
    print(json.dumps(item.plan().to_data(), indent=2))
    print("client script (STREAMCHAOS_SCRIPT):")
    plan = item.client_script()
    for turn in plan["turns"]:
        if len(turn["prompt"]) > 300:
            turn["prompt"] = turn["prompt"][:120] + f"... [{len(turn['prompt'])} characters]"
    print(json.dumps(plan, indent=2))
    for client, seen in item.field.items():
        print(f"field, {client}: {seen}")
    return 0


def _scenarios_validate(args: argparse.Namespace) -> int:
    from harness import scenario

    failed = 0
    for path in args.files:
        try:
            item = scenario.load(path)
        except scenario.ScenarioError as error:
            print(f"error: {error}", file=sys.stderr)
            failed += 1
        else:
            print(f"ok: {path} ({item.name}: {len(item.faults.rules)} faults, {len(item.toxics)} toxic steps)")
    return 1 if failed else 0


def _serve(args: argparse.Namespace) -> int:
    from simulator.config import SimulatorConfig
    from simulator.service import Simulator

    try:
        config = SimulatorConfig(
            seed=args.seed,
            default_words=args.words,
            time_to_first_token_s=args.ttft_ms / 1000,
            tokens_per_second=args.tokens_per_second,
            coalesce=not args.frame_per_event,
            max_body_bytes=args.max_body_bytes,
        )
    except ValueError as error:
        print(f"streamchaos serve: {error}", file=sys.stderr)
        return 2
    plan = None
    if args.scenario:
        from harness import scenario

        try:
            plan = scenario.load(scenario.find(args.scenario)).plan()
        except scenario.ScenarioError as error:
            print(f"streamchaos serve: {error}", file=sys.stderr)
            return 2
    from simulator.service import is_loopback

    for name in ("journal_memory_mb", "journal_max_mb"):
        value = getattr(args, name)
        if not (value == value and 0.01 <= value <= 1024 * 1024):
            print(f"streamchaos serve: --{name.replace('_', '-')} must be between 0.01 and 1048576, got {value}", file=sys.stderr)
            return 2
    problem = _serve_problem(args)
    if problem:
        print(f"streamchaos serve: {problem}", file=sys.stderr)
        return 2
    if not is_loopback(args.host):
        print(
            f"streamchaos serve: warning: --host {args.host} is not loopback: the fake API and its control API are reachable from other machines; "
            "the control API requires the control_token printed in the ready line",
            file=sys.stderr,
            flush=True,
        )
    try:
        simulator = Simulator(
            config,
            host=args.host,
            port=args.port,
            control_port=args.control_port,
            tls=args.tls,
            journal_path=args.journal,
            control_token=args.control_token,
            journal_memory_bytes=int(args.journal_memory_mb * 1024 * 1024),
            journal_file_bytes=int(args.journal_max_mb * 1024 * 1024),
        )
    except OSError as error:
        print(f"streamchaos serve: cannot start: {error.strerror or error}{f' ({error.filename})' if error.filename else ''}", file=sys.stderr)
        return 2
    if plan is not None:
        simulator.state.faults.load(plan)

    async def run() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
            async with trio.open_nursery() as nursery:
                endpoints = await nursery.start(simulator.run)
                # Full collections stop the whole server (40-140 ms with 1,000 streams in flight), so
                # they are made rarer: start-up objects live as long as the process and are frozen
                # out of them, and a full collection waits for 100 (not 10) younger ones.
                gc.collect()
                gc.freeze()
                gc.set_threshold(700, 10, 100)
                print(json.dumps(endpoints.as_dict()), flush=True)
                async for _ in signals:
                    await simulator.stop()
                    break

    try:
        trio.run(run)
    except BaseException as error:
        found = _os_error(error)
        if found is None:
            raise
        import errno

        if found.errno in (errno.EADDRNOTAVAIL, errno.EADDRINUSE, errno.EACCES):
            print(
                f"streamchaos serve: cannot listen on {args.host} (port {args.port}, control port {args.control_port}): {found.strerror or found}",
                file=sys.stderr,
            )
        else:
            print(f"streamchaos serve: {found}", file=sys.stderr)
        return 2
    return 0


def _serve_problem(args: argparse.Namespace) -> str | None:
    """What makes ``serve``'s options unusable before anything starts (None: nothing)."""
    if args.journal is not None:
        if args.journal.is_dir():
            return f"--journal {args.journal}: is a directory; give a file to append JSON lines to"
        if not args.journal.parent.is_dir():
            return f"--journal {args.journal}: the directory {args.journal.parent} does not exist"
    return None


def _os_error(error: BaseException) -> OSError | None:
    """The OSError inside ``error`` (itself, or within an exception group), if any."""
    if isinstance(error, OSError):
        return error
    for inner in getattr(error, "exceptions", ()) or ():
        found = _os_error(inner)
        if found is not None:
            return found
    return None


if __name__ == "__main__":
    sys.exit(main())
