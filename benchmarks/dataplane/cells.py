"""One cell of the table: a server on a protocol, checked, warmed up, measured, its median kept."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from .common import log
from .load import Check, Run, curl_check, h2load
from .machine import wait_quiet
from .servers import Server


@dataclass
class Cell:
    server: str
    title: str
    protocol: str
    status: str  # "ok" | "invalid" | "n/a"
    reason: str = ""
    check: Check | None = None
    median: Run | None = None
    runs: list[Run] = field(default_factory=list)


def measure(server: Server, protocol: str, args: argparse.Namespace, workdir: Path, body_file: Path) -> Cell:
    cell = Cell(server.name, server.title, protocol, "n/a")
    why = server.unsupported(protocol)
    if why:
        cell.reason = why
        return cell
    try:
        running = server.start(protocol, workdir)
    except Exception as error:
        cell.reason = f"did not start: {error}"[:300]
        return cell
    try:
        url = running.urls[protocol]
        check = curl_check(url, protocol, body_file, workdir / server.name)
        cell.check = check
        if not check.ok:
            cell.reason = f"curl check failed: {check.reason}"
            if server.explain(protocol):
                cell.reason += f" ({server.explain(protocol)})"
            return cell
        log(f"  {server.name} {protocol}: {check.events} events, {check.body_bytes} B ({check.mean_event_bytes:.1f} B/event); warm-up {args.warmup}")
        h2load(
            url,
            protocol,
            body_file,
            args.warmup,
            args.clients,
            running.pid,
            check.events,
            check.body_bytes,
            workdir / server.name,
            f"{protocol}-warmup",
        )
        for index in range(args.repeats):
            for attempt in range(args.noise_retries + 1):
                busy = wait_quiet(args.quiet, args.quiet_wait)
                run = h2load(
                    url,
                    protocol,
                    body_file,
                    args.requests,
                    args.clients,
                    running.pid,
                    check.events,
                    check.body_bytes,
                    workdir / server.name,
                    f"{protocol}-{index + 1}",
                )
                run.busy_before = busy
                if run.core0_other <= args.max_noise or attempt == args.noise_retries:
                    break
                log(f"    run {index + 1}: {run.answers_per_s:8.1f} answers/s but other processes took {run.core0_other:.0%} of core 0: again")
            cell.runs.append(run)
            flag = "" if run.valid else f"  INVALID ({run.failed} failed, {run.errored} errored, {run.timeout} timeout) {run.note}"
            log(
                f"    run {index + 1}: {run.answers_per_s:8.1f} answers/s  p50 {run.p50_ms:6.1f} ms  p99 {run.p99_ms:6.1f} ms  "
                f"cpu {run.cpu_s_per_1000:5.2f} s/1000 ({run.answers_per_cpu_s:6.0f} answers/CPU-s)  core0-other {run.core0_other:4.0%}  "
                f"machine busy before {busy:4.0%}{flag}"
            )
        valid = [r for r in cell.runs if r.valid]
        if len(valid) < len(cell.runs):
            cell.status = "invalid"
            bad = next(r for r in cell.runs if not r.valid)
            cell.reason = (
                f"{len(cell.runs) - len(valid)}/{len(cell.runs)} runs had failed requests "
                f"({bad.failed} failed, {bad.errored} errored, {bad.timeout} timeout) {bad.note}"
            ).strip()
        else:
            cell.status = "ok"
            notes = {r.note for r in valid if r.note}
            cell.reason = "; ".join(sorted(notes))
        ordered = sorted(cell.runs, key=lambda r: r.answers_per_s)
        cell.median = ordered[len(ordered) // 2]
        if cell.median.core0_other > args.max_noise:
            noisy = f"noisy: other processes took {cell.median.core0_other:.0%} of core 0 during the median run"
            cell.reason = f"{cell.reason}; {noisy}" if cell.reason else noisy
        return cell
    finally:
        running.stop()
