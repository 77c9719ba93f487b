"""The ``streamchaos`` command."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

import trio


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

    args = parser.parse_args(argv)
    return args.handler(args)


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
    simulator = Simulator(config, host=args.host, port=args.port, control_port=args.control_port, tls=args.tls, journal_path=args.journal)

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
