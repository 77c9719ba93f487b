"""Clients at any published version, installed on first use into a user cache.

``--clients claude-code@2.1.104 python-sdk@0.49.0 ts-sdk-node@0.40.0 go-sdk@v1.2.0
claude-code-bun@2.1.104``: each ``NAME@VERSION`` is looked up in its registry (``pip index
versions``, ``npm view``, ``go list -m -versions``), installed once into
``<cache>/clients/<client>/<version>`` and reused afterwards without asking the registry again:

* Python SDK: a venv per version (``pip install anthropic==V h2``), running the same
  ``programs/python_sdk_client.py`` (copied beside it with the stdlib-only ``script.py``);
* TypeScript SDK and Claude Code: an npm prefix per version (``npm install PKG@V``); the JS client
  program is copied into the prefix so it resolves that version; Bun comes from npm (``bun``);
* Go SDK: a copy of ``harness/clients/go`` built against the module version.

``<cache>`` is ``$STREAMCHAOS_CACHE_DIR``, else ``$XDG_CACHE_HOME/streamchaos``, else
``~/.cache/streamchaos``. A bare name keeps meaning the pinned default: the checkout's copy from
``make setup`` when there is one, else the pinned version installed here on first use (so a
``pip install`` of streamchaos alone runs every client; toxiproxy likewise, with ``go install``).

``claude-code@V`` runs the release as it ships: ``cli.js`` (up to 2.1.112) on Node, the native
executable (2.1.113 and later) directly. ``claude-code-bun@V`` runs a JavaScript release's
``cli.js`` on Bun from npm, as the field's Bun-compiled builds did; native releases are refused.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from harness.clients.adapter import NODE_BIN, ContractClient
from harness.clients.adapters.claude_code import CLAUDE_POLICY, ClaudeCodeClient
from harness.clients.adapters.go_sdk import GO_POLICY
from harness.clients.adapters.python_sdk import PROGRAM as PYTHON_SDK_PROGRAM
from harness.clients.adapters.python_sdk import SDK_POLICY
from harness.clients.adapters.ts_sdk import BUN_BIN
from harness.user_cache import InstallError, cache_root, last_lines, locked, run_tool, say

MARKER = ".streamchaos-installed.json"
HERE = Path(__file__).resolve().parent
QUERY_TIMEOUT_S = 120.0
VersionError = InstallError  # a client version that cannot be had: unknown, unreachable, or its install failed
CLAUDE_CODE_LAST_CLI_JS = "2.1.112"  # 2.1.113 and later ship a native executable (npm `bin`)


# -- the families ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    name: str  # the client name on the command line
    registry: str  # "npm" | "pypi" | "go"
    package: str
    cache_name: str  # clients/<cache_name>/<version>: shared by clients that run the same install
    runtime: str = ""  # "node" | "bun" | "" (its own)
    http2: bool = False
    bun_h2: bool = False

    def pinned(self) -> str:
        return pinned_version(self)


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("python-sdk", "pypi", "anthropic", "python-sdk"),
        Family("python-sdk-h2", "pypi", "anthropic", "python-sdk", http2=True),
        Family("ts-sdk-node", "npm", "@anthropic-ai/sdk", "ts-sdk", runtime="node"),
        Family("ts-sdk-bun", "npm", "@anthropic-ai/sdk", "ts-sdk", runtime="bun"),
        Family("ts-sdk-bun-h2", "npm", "@anthropic-ai/sdk", "ts-sdk", runtime="bun", bun_h2=True),
        Family("go-sdk", "go", "github.com/anthropics/anthropic-sdk-go", "go-sdk"),
        Family("claude-code", "npm", "@anthropic-ai/claude-code", "claude-code", runtime="node"),
        Family("claude-code-bun", "npm", "@anthropic-ai/claude-code", "claude-code", runtime="bun"),
    )
}
BUN = Family("bun", "npm", "bun", "bun")


def pinned_version(family: Family) -> str:
    """The version ``make setup`` installs (from the package files shipped with streamchaos)."""
    if family.name == "bun":
        return json.loads((HERE / "js" / "package.json").read_text())["dependencies"]["bun"]
    if family.name == "claude-code-bun":
        return CLAUDE_CODE_LAST_CLI_JS
    if family.package == "@anthropic-ai/claude-code":
        return json.loads((HERE / "claude_code" / "package.json").read_text())["dependencies"][family.package]
    if family.package == "@anthropic-ai/sdk":
        return json.loads((HERE / "js" / "package.json").read_text())["dependencies"][family.package]
    if family.registry == "go":
        found = re.search(r"^require " + re.escape(family.package) + r" (\S+)", (HERE / "go" / "go.mod").read_text(), re.M)
        return found.group(1) if found else "latest"
    try:  # python: the anthropic this interpreter has, else the newest on PyPI
        from importlib.metadata import version

        return version("anthropic")
    except Exception:
        return published(family)[-1]


def split_spec(spec: str) -> tuple[str, str | None]:
    name, at, version = spec.partition("@")
    if at and not version:
        raise VersionError(f"{spec!r}: give a version after '@' (e.g. {name}@{_example(name)})")
    return name, (version or None)


def _example(name: str) -> str:
    return {"go-sdk": "v1.2.0", "python-sdk": "0.49.0", "python-sdk-h2": "0.49.0"}.get(name, "2.1.104" if "claude" in name else "0.40.0")


def normalize(family: Family, version: str) -> str:
    if family.registry == "go" and not version.startswith("v"):
        return "v" + version
    return version


# -- registries -----------------------------------------------------------------------------------


def version_key(version: str) -> tuple:
    """Semantic-version order (numbers numerically; a pre-release before its release)."""
    core, _, pre = version.lstrip("v").partition("-")
    numbers = tuple(int(x) if x.isdigit() else 0 for x in re.split(r"[.+]", core)[:3])
    return numbers + ((1,) if not pre else (0, pre))


def is_release(version: str) -> bool:
    return "-" not in version.lstrip("v") and not re.search(r"[a-z]", version.lstrip("v"))


_PUBLISHED: dict[tuple[str, str], list[str]] = {}


def published(family: Family) -> list[str]:
    """Every version the registry serves, oldest first. Raises VersionError when it cannot be
    reached (offline), naming the registry and the command that failed."""
    key = (family.registry, family.package)
    if key in _PUBLISHED:
        return _PUBLISHED[key]
    if family.registry == "npm":
        argv = [_need("npm", family), "view", family.package, "versions", "--json"]
    elif family.registry == "pypi":
        argv = [sys.executable, "-m", "pip", "index", "versions", family.package, "--disable-pip-version-check"]
    else:
        argv = [_need("go", family), "list", "-m", "-versions", family.package]
    with tempfile.TemporaryDirectory(prefix="streamchaos-query-") as scratch:
        env = {**os.environ, "GOFLAGS": "-mod=mod", "GO111MODULE": "on"}
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=QUERY_TIMEOUT_S, cwd=scratch, env=env, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise VersionError(
                f"cannot reach the {family.registry} registry ({' '.join(argv[:4])} took over {QUERY_TIMEOUT_S:.0f} s): "
                f"are you offline? Install ahead of time with `streamchaos setup --clients ...`"
            ) from None
    if out.returncode != 0:
        detail = last_lines(out.stderr or out.stdout)
        raise VersionError(
            f"cannot list the versions of {family.package} from the {family.registry} registry "
            f"(`{' '.join(argv[:5])}` failed: {detail}); offline? Installed versions still run: see `streamchaos clients`"
        )
    if family.registry == "npm":
        value = json.loads(out.stdout)
        versions = [value] if isinstance(value, str) else list(value)
    elif family.registry == "pypi":
        found = re.search(r"Available versions:\s*(.*)", out.stdout)
        versions = [v.strip() for v in found.group(1).split(",")] if found else []
    else:
        versions = out.stdout.split()[1:]
    versions = sorted(set(versions), key=version_key)
    _PUBLISHED[key] = versions
    return versions


def _need(tool: str, family: Family) -> str:
    found = shutil.which(tool)
    if not found:
        hint = {"npm": "Node.js >= 20 with npm (https://nodejs.org)", "go": "Go >= 1.23 (https://go.dev/doc/install)"}[tool]
        raise VersionError(f"{family.name} installs from the {family.registry} registry with `{tool}`, which is not on PATH: install {hint}")
    return found


def check_published(family: Family, version: str) -> None:
    versions = published(family)
    if version in versions:
        return
    try:
        key = version_key(version)
        below = [v for v in versions if version_key(v) < key][-2:]
        above = [v for v in versions if version_key(v) > key][:2]
    except (TypeError, ValueError):
        below, above = [], []
    raise VersionError(
        f"{family.name}@{version}: the {family.registry} registry has no version {version} of {family.package} "
        f"(nearest: {', '.join(below + above) or 'none'}; newest: {versions[-1] if versions else 'none'})"
    )


# -- the cache ------------------------------------------------------------------------------------


def install_dir(family: Family, version: str) -> Path:
    return cache_root() / "clients" / family.cache_name / version


def is_installed(family: Family, version: str) -> bool:
    return (install_dir(family, version) / MARKER).exists()


def ensure(family: Family, version: str, check_registry: bool = True) -> Path:
    """The install directory of ``family`` at ``version``, installing it first if needed (once,
    under a lock, into a scratch directory renamed into place when complete)."""
    target = install_dir(family, version)
    if (target / MARKER).exists():
        return target
    with locked(target.parent / f".lock-{version}"):
        if (target / MARKER).exists():
            return target
        if check_registry:
            check_published(family, version)
        scratch = target.parent / f".tmp-{version}-{os.getpid()}"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        say(f"installing {family.cache_name} {version} from {family.registry} into {target} (first use) ...")
        started = time.monotonic()
        try:
            INSTALLERS[family.registry](family, version, scratch)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        seconds = time.monotonic() - started
        (scratch / MARKER).write_text(
            json.dumps(
                {
                    "client": family.cache_name,
                    "package": family.package,
                    "version": version,
                    "registry": family.registry,
                    "installed_s": round(seconds, 1),
                    "at": time.time(),
                }
            )
        )
        shutil.rmtree(target, ignore_errors=True)
        scratch.rename(target)
        say(f"installed {family.cache_name} {version} in {seconds:.1f} s")
        return target


def _install_npm(family: Family, version: str, scratch: Path) -> None:
    npm = _need("npm", family)
    omit = []
    if family.package == "@anthropic-ai/claude-code" and version_key(version) <= version_key(CLAUDE_CODE_LAST_CLI_JS):
        omit = ["--omit=optional"]  # cli.js releases: the optional dependencies are image codecs only
    (scratch / "package.json").write_text(json.dumps({"name": f"streamchaos-{family.cache_name}", "private": True, "type": "module"}))
    run_tool(
        [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", *omit, f"{family.package}@{version}"],
        scratch,
        f"installing {family.package}@{version} with npm",
    )
    if family.package == "@anthropic-ai/sdk":
        _js_program(scratch)


JS_PROGRAM = ("client.mjs", "script.mjs")  # the TS SDK contract client, run beside that version's node_modules


def _js_program(directory: Path) -> Path:
    """The checkout's contract client placed beside a cached SDK version (ESM resolves the SDK from
    the program's own directory); refreshed when the checkout's copy changed, so a cache made by an
    older streamchaos never runs an older program."""
    for name in JS_PROGRAM:
        source, target = HERE / "js" / name, directory / name
        if directory.is_dir() and (not target.exists() or target.read_bytes() != source.read_bytes()):
            shutil.copy2(source, target)
    return directory / "client.mjs"


def _install_pypi(family: Family, version: str, scratch: Path) -> None:
    run_tool([sys.executable, "-m", "venv", str(scratch / "venv")], scratch, "making a venv")
    run_tool(
        [str(scratch / "venv" / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", f"{family.package}=={version}", "h2"],
        scratch,
        f"installing {family.package}=={version} with pip",
    )


def _install_go(family: Family, version: str, scratch: Path) -> None:
    go = _need("go", family)
    source = scratch / "src"
    source.mkdir()
    for item in (HERE / "go").iterdir():
        if item.suffix in (".go", ".mod", ".sum"):
            shutil.copy2(item, source / item.name)
    env = {"GOFLAGS": "-mod=mod"}
    run_tool([go, "mod", "edit", f"-require={family.package}@{version}"], source, "go mod edit", env)
    run_tool([go, "mod", "tidy"], source, f"resolving {family.package}@{version}", env)
    try:
        run_tool(
            [go, "build", "-o", str(scratch / "streamchaos-go-client"), "."],
            source,
            f"building the Go client against {family.package}@{version}",
            env,
        )
    except VersionError as error:
        raise VersionError(
            f"go-sdk@{version}: the streamchaos Go client (harness/clients/go/main.go) does not compile against "
            f"{family.package} {version}; supported: v1.2.0 (the first v1 release) and later ({error})"
        ) from None


INSTALLERS: dict[str, Callable[[Family, str, Path], None]] = {"npm": _install_npm, "pypi": _install_pypi, "go": _install_go}


# -- adapters -------------------------------------------------------------------------------------


def family_of(name: str) -> Family:
    if name not in FAMILIES:
        raise VersionError(f"{name!r} has no versions to choose from; NAME@VERSION works for {', '.join(FAMILIES)}")
    return FAMILIES[name]


def resolve(spec: str, install: bool = True):
    """The adapter for ``NAME`` or ``NAME@VERSION`` (installing on first use when ``install``)."""
    from harness.clients import registry

    name, version = split_spec(spec)
    if version is None:
        builtin = registry.BUILT_IN.get(name)
        if builtin is not None and (_builtin_works(builtin) or name not in FAMILIES):
            return builtin
        if name not in FAMILIES:
            return registry.get(name)  # the KeyError naming the built-in clients
        family = FAMILIES[name]
        if not install:  # no registry query: the pinned version if cached, else the built-in saying how to get it
            version = _pinned_if_known(family)
            if version is not None and is_installed(family, version):
                return adapter(family, version, name=name)
            how = f"run `make setup` in a checkout, or `streamchaos setup --clients {name}` (installs into {cache_root() / 'clients'})"
            if builtin is None:  # no built-in to fall back on (claude-code-bun): say how to install it
                raise VersionError(f"{name}: {family.package} {version or ''} is not installed; {how}")
            return replace(builtin, requires=(*builtin.requires, f"{family.package} {version or ''}".strip()), missing_hint=how)
        version = family.pinned()
        if install:
            ensure(family, version)
        return adapter(family, version, name=name)
    family = family_of(name)
    version = normalize(family, version)
    if family.name == "claude-code-bun" and version_key(version) > version_key(CLAUDE_CODE_LAST_CLI_JS):
        raise VersionError(
            f"claude-code-bun@{version}: Claude Code {version} ships a native executable, not cli.js; claude-code-bun runs "
            f"the JavaScript releases (up to {CLAUDE_CODE_LAST_CLI_JS}) on Bun. Use claude-code@{version} instead"
        )
    if install:
        ensure(family, version)
    return adapter(family, version)


def _pinned_if_known(family: Family) -> str | None:
    """The pinned version without asking a registry; for the Python SDK without ``anthropic`` in
    this interpreter, the newest cached one."""
    if family.registry != "pypi":
        return family.pinned()
    try:
        from importlib.metadata import version

        return version("anthropic")
    except Exception:
        have = [i["version"] for i in cached() if i["client"] == family.cache_name]
        return have[-1] if have else None


def _builtin_works(builtin) -> bool:
    """Installed by ``make setup`` (or, for the Python SDK, importable in this interpreter)."""
    if builtin.name.startswith("python-sdk"):
        import importlib.util

        return importlib.util.find_spec("anthropic") is not None
    return builtin.installed()[0]


def adapter(family: Family, version: str, name: str | None = None):
    """A registry adapter running ``family`` at ``version`` from the cache (installed or not:
    ``installed()`` says which)."""
    directory = install_dir(family, version)
    label = name or f"{family.name}@{version}"
    requires = (directory / MARKER,)
    if family.registry == "pypi":
        python = directory / "venv" / "bin" / "python"
        env = {"PYTHONPATH": str(_python_shim(directory))}
        if family.http2:
            env["STREAMCHAOS_HTTP2"] = "1"
        return ContractClient(
            label,
            f"anthropic {version} (PyPI, own venv){', h2' if family.http2 else ', HTTP/1.1'}",
            ("h2",) if family.http2 else ("http/1.1",),
            SDK_POLICY,
            requires=requires,
            argv=(str(python), "-m", PYTHON_SDK_PROGRAM),
            env=env,
        )
    if family.registry == "go":
        return ContractClient(
            label, f"anthropic-sdk-go {version}, h2 over TLS", ("h2",), GO_POLICY, requires=requires, argv=(str(directory / "streamchaos-go-client"),)
        )
    if family.package == "@anthropic-ai/sdk":
        runtime = _bun_launcher() if family.runtime == "bun" else (NODE_BIN,)
        env = {"BUN_FEATURE_FLAG_EXPERIMENTAL_HTTP2_CLIENT": "1"} if family.bun_h2 else {}
        return ContractClient(
            label,
            f"@anthropic-ai/sdk {version} on {family.runtime.title()}",
            ("h2",) if family.bun_h2 else ("http/1.1",),
            SDK_POLICY,
            requires=requires,
            argv=(*runtime, str(_js_program(directory))),
            env=env,
        )
    package = directory / "node_modules" / "@anthropic-ai" / "claude-code"
    cli_js = package / "cli.js"
    if family.runtime == "bun":
        launcher = (*_bun_launcher(), str(cli_js))
        how = "cli.js on Bun (npm)"
    elif version_key(version) <= version_key(CLAUDE_CODE_LAST_CLI_JS):
        launcher = (NODE_BIN, str(cli_js))
        how = "cli.js on Node"
    else:
        launcher = (str(directory / "node_modules" / ".bin" / "claude"),)
        how = "native executable (Bun inside)"
    return VersionedClaudeCode(
        label,
        f"Claude Code {version} (npm), {how}, HTTP/1.1",
        ("http/1.1",),
        CLAUDE_POLICY,
        requires=requires,
        parallel=False,
        final_answer_only=True,
        launcher=launcher,
    )


def _bun_launcher() -> tuple[str, ...]:
    if Path(BUN_BIN).exists():
        return (str(BUN_BIN),)
    directory = ensure(BUN, BUN.pinned())
    return (str(directory / "node_modules" / ".bin" / "bun"),)


def _python_shim(directory: Path) -> Path:
    """``harness/clients/programs/python_sdk_client.py`` and ``harness/clients/script.py`` (stdlib
    and anthropic only) beside the venv, refreshed when streamchaos changes them, so the venv's
    anthropic is the one imported."""
    shim = directory / "shim"
    package = shim / "harness" / "clients"
    (package / "programs").mkdir(parents=True, exist_ok=True)
    for init in (shim / "harness" / "__init__.py", package / "__init__.py", package / "programs" / "__init__.py"):
        if not init.exists():
            init.write_text("")
    for name in ("programs/python_sdk_client.py", "script.py"):
        source = (HERE / name).read_bytes()
        target = package / name
        if not target.exists() or target.read_bytes() != source:
            target.write_bytes(source)
    return shim


@dataclass(frozen=True)
class VersionedClaudeCode(ClaudeCodeClient):
    """Claude Code at a cached version: the built-in adapter's command with its program replaced
    by ``launcher`` (the native executable, or a runtime and ``cli.js``)."""

    launcher: tuple[str, ...] = ()

    def invocation(self, launch):
        invocation = super().invocation(launch)
        return replace(invocation, argv=(*self.launcher, *invocation.argv[1:]))


# -- listing --------------------------------------------------------------------------------------


def cached() -> list[dict]:
    """What the cache holds: one entry per installed client version."""
    out = []
    for marker in sorted((cache_root() / "clients").glob(f"*/*/{MARKER}")):
        try:
            info = json.loads(marker.read_text())
        except ValueError:
            continue
        info["path"] = str(marker.parent)
        out.append(info)
    out.sort(key=lambda i: (i["client"], version_key(i["version"])))
    return out


def names_for(cache_name: str, version: str | None = None) -> list[str]:
    """The clients that run an install (claude-code-bun only the cli.js releases)."""
    names = [f.name for f in FAMILIES.values() if f.cache_name == cache_name]
    if version is not None and cache_name == "claude-code" and version_key(version) > version_key(CLAUDE_CODE_LAST_CLI_JS):
        names.remove("claude-code-bun")
    return names
