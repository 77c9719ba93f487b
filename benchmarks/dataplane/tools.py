"""The reference servers' and load tools' installs: Debian tools, aimock from npm, MockServer from Maven."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .common import AIMOCK_VERSION, CACHE, MOCKSERVER_VERSION, log


def ensure_apt_tools() -> None:
    """h2load (nghttp2-client), curl and taskset (util-linux) come from Debian; install if missing."""
    wanted = {"h2load": "nghttp2-client", "curl": "curl", "taskset": "util-linux"}
    missing = sorted({package for tool, package in wanted.items() if shutil.which(tool) is None})
    if not missing:
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise SystemExit(f"missing tools {missing} and no root apt-get to install them")
    log(f"installing {' '.join(missing)} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], check=True, timeout=600, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", *missing], check=True, timeout=600, env=env, stdout=subprocess.DEVNULL)
    for tool in wanted:
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} still missing after apt-get install")


def ensure_aimock() -> tuple[Path | None, str]:
    """The aimock CLI from npm into benchmarks/.cache/aimock; (path, '') or (None, why not)."""
    directory = CACHE / "aimock"
    cli = directory / "node_modules" / "@copilotkit" / "aimock" / "dist" / "cli.js"
    if cli.exists():
        return cli, ""
    if shutil.which("npm") is None or shutil.which("node") is None:
        return None, "node/npm not installed"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "package.json").write_text('{"name": "streamchaos-bench-aimock", "private": true}\n')
    log(f"installing @copilotkit/aimock@{AIMOCK_VERSION} from npm")
    try:
        result = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", f"@copilotkit/aimock@{AIMOCK_VERSION}"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=600,
        )
    except subprocess.TimeoutExpired:
        return None, "npm install timed out"
    if result.returncode != 0 or not cli.exists():
        return None, f"npm install failed: {result.stderr.strip()[-300:]}"
    return cli, ""


def ensure_mockserver() -> tuple[Path | None, str]:
    """MockServer's jar-with-dependencies from Maven Central into benchmarks/.cache/mockserver."""
    directory = CACHE / "mockserver"
    jar = directory / f"mockserver-netty-{MOCKSERVER_VERSION}-jar-with-dependencies.jar"
    if jar.exists():
        return jar, ""
    if shutil.which("java") is None:
        return None, "java not installed"
    if shutil.which("mvn") is None:
        return None, "mvn not installed"
    directory.mkdir(parents=True, exist_ok=True)
    log(f"fetching org.mock-server:mockserver-netty:{MOCKSERVER_VERSION}:jar-with-dependencies with mvn")
    command = [
        "mvn",
        "-q",
        "-B",
        f"-Dmaven.repo.local={directory / 'm2'}",
        "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy",
        f"-Dartifact=org.mock-server:mockserver-netty:{MOCKSERVER_VERSION}:jar:jar-with-dependencies",
        f"-DoutputDirectory={directory}",
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        return None, "mvn dependency:copy timed out"
    if result.returncode != 0 or not jar.exists():
        return None, f"mvn dependency:copy failed: {(result.stdout + result.stderr).strip()[-300:]}"
    return jar, ""
