"""``streamchaos setup`` and ``streamchaos bisect``, and the cache listing of ``streamchaos clients``
(issue 14: clients at any version, installed on first use)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_commands(commands, add_run_options) -> None:
    setup = commands.add_parser("setup", help="install clients (and toxiproxy) into the user cache ahead of time")
    setup.add_argument(
        "--clients",
        nargs="*",
        default=None,
        help="NAME or NAME@VERSION (default: the pinned version of every client the checkout has not installed, and toxiproxy)",
    )
    setup.add_argument("--no-toxiproxy", action="store_true", help="do not install toxiproxy")
    setup.set_defaults(handler=_setup)

    bisect = commands.add_parser("bisect", help="find the first published client version whose recovery differs from the bad end's")
    bisect.add_argument("--client", required=True, help="a client with versions (claude-code, claude-code-bun, python-sdk, ts-sdk-node, go-sdk, ...)")
    bisect.add_argument("--scenario", required=True, help="a name from the library or a file")
    bisect.add_argument("--good", required=True, help="a version that behaves well")
    bisect.add_argument("--bad", required=True, help="a version that behaves badly")
    bisect.add_argument("--trials", type=int, default=3, help="trials per version at first (default 3)")
    bisect.add_argument("--max-trials", type=int, default=None, help="most trials per version when an interval cannot decide (default 4 x --trials)")
    bisect.add_argument("--time-scale", type=float, default=None)
    bisect.add_argument("--workers", type=int, default=1)
    bisect.add_argument("--results", type=Path, default=None, help="results directory (default: results/)")
    bisect.add_argument("--run-id", default=None, help="resume (or name) this bisect's results directory")
    bisect.set_defaults(handler=_bisect)


def _setup(args: argparse.Namespace) -> int:
    from harness.clients import registry, versions

    specs = args.clients
    if specs is None:
        specs = [name for name in versions.FAMILIES if name not in registry.BUILT_IN or not versions._builtin_works(registry.BUILT_IN[name])]
    failed = 0
    for spec in specs:
        try:
            client = versions.resolve(spec)
        except (versions.VersionError, KeyError) as error:
            print(f"streamchaos setup: {error}", file=sys.stderr)
            failed += 1
            continue
        print(f"ready: {client.name:<28} {client.description}")
    if not args.no_toxiproxy and args.clients is None:
        from harness.network import toxiproxy

        try:
            print(f"ready: toxiproxy-server {toxiproxy.find_binary()}")
        except (toxiproxy.ToxiproxyUnavailable, versions.VersionError) as error:
            print(f"streamchaos setup: {error}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def print_cached() -> None:
    from harness import user_cache
    from harness.clients import versions

    items = versions.cached()
    print(f"\ncached versions ({user_cache.cache_root() / 'clients'}; NAME@VERSION installs another on first use):")
    if not items:
        print("  none yet")
    for info in items:
        names = ", ".join(f"{name}@{info['version']}" for name in versions.names_for(info["client"], info["version"]))
        print(f"  {info['client']:<12} {info['version']:<10} {names}")


def _bisect(args: argparse.Namespace) -> int:
    from harness.present import bisect

    return bisect.command(args)
