"""The ``streamchaos`` command."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

import trio


def _terminate_as_interrupt(signum, frame) -> None:
    """SIGTERM unwinds like Ctrl-C, so every finally block stops what it started."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="streamchaos", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the fake Messages API until SIGINT/SIGTERM")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0)
    serve.add_argument("--control-port", type=int, default=0)
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

    run = commands.add_parser("run", help="drive clients through scenarios; results to results/<run-id>/")
    _add_run_options(run)
    run.set_defaults(handler=_run)

    gate = commands.add_parser("gate", help="run (or read) results and pass or fail them against a policy; JUnit XML")
    _add_run_options(gate)
    gate.add_argument("--from", dest="from_dir", type=Path, default=None, help="judge this results directory instead of running")
    gate.add_argument("--policy", type=Path, default=None, help="TOML thresholds (see README: CI gate)")
    gate.add_argument("--junit", type=Path, default=None, help="write JUnit XML here (default: <results>/junit.xml)")
    gate.add_argument("--min-recovery", type=float, default=None, help="lower bound of the 95%% recovery interval, 0..1")
    gate.add_argument("--max-hangs", type=int, default=None)
    gate.add_argument("--max-data-loss", type=int, default=None)
    gate.add_argument("--max-amplification", type=float, default=None)
    gate.set_defaults(handler=_gate)

    compare = commands.add_parser("compare", help="the reference client with each retry strategy through scenarios: table and plots")
    compare.add_argument("--strategies", nargs="+", default=None, help="names from harness/strategies.py (default: sdk-default full-jitter idle-watchdog resilient)")
    compare.add_argument("--scenarios", nargs="+", required=True, help="names from scenarios/ or files")
    compare.add_argument("--trials", type=int, default=None, help="trials per strategy and scenario (default: each scenario's)")
    compare.add_argument("--results", type=Path, default=None, help="results directory (default: results/)")
    compare.add_argument("--run-id", default=None, help="resume (or name) this run")
    compare.add_argument("--time-scale", type=float, default=None, help="override every scenario's time_scale (strategies scale with it)")
    compare.add_argument("--workers", type=int, default=None, help="trials at once (default: the core count, at least 2)")
    compare.add_argument("--http2", action="store_true", help="the reference client over h2 (TLS, ALPN) instead of HTTP/1.1")
    compare.set_defaults(handler=_compare)

    clients = commands.add_parser("clients", help="the built-in clients and whether each is installed")
    clients.set_defaults(handler=_clients)

    from harness import versions_cli  # issue 14: setup, bisect

    versions_cli.add_commands(commands, _add_run_options)

    report = commands.add_parser("report", help="summarize a results directory again (summary, CSV, HTML)")
    report.add_argument("directory", type=Path, nargs="?", default=None)
    report.set_defaults(handler=_report)

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
    if args.command != "serve":  # serve handles SIGTERM itself (graceful GOAWAY)
        signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    return args.handler(args)


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenarios", nargs="*", default=None, help="names from scenarios/ or files (default: the whole library)")
    parser.add_argument("--clients", nargs="*", default=None, help="built-in clients (default: every installed one)")
    parser.add_argument("--client-cmd", default=None, help="any client: a command template, e.g. 'node my.js {base_url}'")
    parser.add_argument("--client-name", default="custom")
    parser.add_argument("--client-output", default="contract", choices=("contract", "text"))
    parser.add_argument("--trials", type=int, default=None, help="trials per scenario and client (default: each scenario's)")
    parser.add_argument("--max-trials", type=int, default=None, help="cap each scenario's default trial count")
    parser.add_argument("--workers", type=int, default=None, help="trials at once (default: the core count, at least 2)")
    parser.add_argument("--results", type=Path, default=None, help="results directory (default: results/)")
    parser.add_argument("--run-id", default=None, help="resume (or name) this run")
    parser.add_argument("--time-scale", type=float, default=None, help="override every scenario's time_scale")


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
    return _summarize(directory, console, {"scenarios": len(args.scenarios or []) or "library", "clients": ", ".join(args.clients or []) or "installed"})


def _execute(args: argparse.Namespace, console) -> Path | int:
    """Run what the options say; the results directory, or an exit code if it could not run."""
    import os

    from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeElapsedColumn

    from harness import runner
    from harness.scenario import ScenarioError

    try:
        scenarios = _select_scenarios(args.scenarios)
        clients = _select_clients(args)
    except (ScenarioError, KeyError, ValueError) as error:
        console.print(f"[red]streamchaos:[/red] {error}")
        return 2
    if not clients:
        console.print("[red]streamchaos:[/red] no client is installed; run `make setup` or `streamchaos setup`, or pass --client-cmd")
        return 2
    config = runner.RunConfig(
        scenarios=scenarios, clients=clients, results_dir=args.results or runner.RESULTS, run_id=args.run_id or runner.new_run_id(),
        trials=args.trials, max_trials=args.max_trials, workers=args.workers or max(2, os.cpu_count() or 2), time_scale=args.time_scale,
    )
    from harness import fieldmatch

    fieldmatch.save(config.results_dir / config.run_id, scenarios)  # issue 14: the field rows beside the results
    with Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("trials", total=None)

        def update(progress: runner.Progress, record) -> None:
            label = f"{record.scenario} / {record.client}: {record.outcome}" if record else ""
            bar.update(task, total=progress.total, completed=progress.done, description=label[:70])

        try:
            return runner.run(config, runner.Progress(on_update=update))
        except KeyboardInterrupt:
            console.print(f"[yellow]interrupted[/yellow]: recorded trials are in {config.results_dir / config.run_id}; "
                          f"resume with --run-id {config.run_id}")
            return 130


def _gate(args: argparse.Namespace) -> int:
    from rich.console import Console

    from harness import gate, metrics, runner

    console = Console(stderr=True)
    try:
        policy = gate.load_policy(args.policy) if args.policy else gate.Policy()
        policy = gate.with_overrides(policy, min_recovery_lower=args.min_recovery, max_hangs=args.max_hangs,
                                     max_data_loss=args.max_data_loss, max_amplification=args.max_amplification)
    except gate.PolicyError as error:
        console.print(f"[red]streamchaos gate:[/red] {error}")
        return 2
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
    return 1 if failed else 0


def _compare(args: argparse.Namespace) -> int:
    from harness import compare

    return compare.command(args)


def _summarize(directory: Path, console, extra: dict) -> int:
    from harness import metrics, report, runner

    records = runner.only_latest(runner.load_records(directory))
    rows = metrics.summarize(records)
    meta = {"run_id": directory.name, "trials recorded": len([r for r in records if not r.get("skipped")]), **extra}
    from harness import versions_report  # issue 14: field matches and version columns

    added = versions_report.extend(directory, rows, records)
    paths = report.write_all(directory, rows, meta)
    versions_report.finish(paths, added)
    report.print_table(rows)
    versions_report.print_tables(added)
    console.print(f"results: {paths['json']}, {paths['csv']}, {paths['html']}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from rich.console import Console

    from harness import runner

    directory = args.directory or (runner.RESULTS / "latest")
    if not (directory / "trials.jsonl").exists():
        print(f"streamchaos report: {directory} has no trials.jsonl", file=sys.stderr)
        return 2
    return _summarize(directory.resolve(), Console(stderr=True), {})


def _clients(args: argparse.Namespace) -> int:
    from harness.clients import registry

    from harness.clients import versions

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
        kinds = ", ".join(sorted({rule.fault.kind for rule in item.faults.rules} | ({"toxics"} if item.toxics else set())))
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
    print(f"seed {item.seed}, {item.trials} trials, concurrency {item.concurrency}, time_scale {item.time_scale:g}, "
          f"transports {', '.join(item.transports)}, {'TLS' if item.tls else 'cleartext'}, deadline {item.deadline():.1f} s")
    print("fault plan (as the simulator runs it, scaled):")
    print(json.dumps(item.plan().to_data(), indent=2))
    print("client plan (STREAMCHAOS_PLAN):")
    plan = item.client_plan()
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
    simulator = Simulator(config, host=args.host, port=args.port, control_port=args.control_port, tls=args.tls, journal_path=args.journal)
    if plan is not None:
        simulator.state.faults.load(plan)

    async def run() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                endpoints = await nursery.start(simulator.run)
                print(json.dumps(endpoints.as_dict()), flush=True)
                async for _ in signals:
                    await simulator.stop()
                    break

    trio.run(run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
