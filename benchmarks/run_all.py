"""Every benchmark of the project, in one run (``make bench``).

    .venv/bin/python benchmarks/run_all.py [--quick] [any bench_dataplane.py option]

Today there is one: the data plane (bench_dataplane.py), streamchaos against hypercorn, aimock
and MockServer on h2c, HTTP/1.1 and h2+TLS.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_dataplane  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return bench_dataplane.main(argv)


if __name__ == "__main__":
    sys.exit(main())
