"""The engines shards run on: the GitHub Actions workflow (checked by actionlint), the Kubernetes
Indexed Job and the Dockerfile of the image it runs (no docker engine here: the names must agree)."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import yaml

from harness.drive import shards

from .support import require

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "resilience.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
JOB = ROOT / "deploy" / "k8s" / "indexed-job.yaml"
MERGE_JOB = ROOT / "deploy" / "k8s" / "merge-job.yaml"


def actionlint() -> str:
    return require(ROOT / "tools" / "bin" / "actionlint", "actionlint (make setup: go install github.com/rhysd/actionlint/cmd/actionlint)")


def test_the_workflow_passes_actionlint():
    done = subprocess.run([actionlint(), "-no-color", str(WORKFLOW)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_really_checks_it(tmp_path):
    """A broken copy (an undefined matrix key, a job needing a job that does not exist) is rejected."""
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    text = WORKFLOW.read_text().replace("${{ matrix.shard }}/", "${{ matrix.shards }}/").replace("needs: shard", "needs: shards")
    broken.write_text(text)
    done = subprocess.run([actionlint(), "-no-color", str(broken)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 1
    assert "shards" in done.stdout and "matrix" in done.stdout


def test_the_workflow_shards_then_merges_and_gates():
    flow = yaml.safe_load(WORKFLOW.read_text())
    shard, gate = flow["jobs"]["shard"], flow["jobs"]["merge-and-gate"]
    matrix = shard["strategy"]["matrix"]["shard"]
    assert matrix == list(range(1, len(matrix) + 1)) and shard["strategy"]["fail-fast"] is False
    assert shard["env"]["STREAMCHAOS_SHARD"] == "${{ matrix.shard }}/${{ strategy.job-total }}"
    runs = " ".join(step.get("run", "") for step in shard["steps"])
    assert "streamchaos run --shard-from-env" in runs and '--run-id "$RUN_ID"' in runs
    assert gate["needs"] == "shard" and "cancelled()" in gate["if"]
    runs = [step.get("run", "") for step in gate["steps"]]
    assert any("streamchaos merge shards/shard-*" in r for r in runs) and any("streamchaos gate --from" in r for r in runs)
    assert any(step.get("uses", "").startswith("mikepenz/action-junit-report") for step in gate["steps"])
    policy = re.search(r"--policy (\S+)", " ".join(runs)).group(1)
    assert (ROOT / policy).exists()


def dockerfile_image() -> tuple[str, str]:
    text = DOCKERFILE.read_text()
    name = re.search(r'org\.opencontainers\.image\.ref\.name="([^"]+)"', text).group(1)
    version = re.search(r'org\.opencontainers\.image\.version="([^"]+)"', text).group(1)
    return name, version


def test_the_indexed_job_parses_and_runs_the_image_the_dockerfile_builds():
    documents = list(yaml.safe_load_all(JOB.read_text()))
    (job,) = [d for d in documents if d["kind"] == "Job"]
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"]
    (container,) = spec["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["JOB_COMPLETION_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    assert int(env["STREAMCHAOS_SHARD_COUNT"]["value"]) == spec["completions"]
    assert container["args"][:2] == ["run", "--shard-from-env"]
    # each index becomes a distinct shard 1..N as `streamchaos run --shard-from-env` reads it
    count = {"STREAMCHAOS_SHARD_COUNT": env["STREAMCHAOS_SHARD_COUNT"]["value"]}
    assert [shards.from_env({**count, "JOB_COMPLETION_INDEX": str(i)}) for i in range(spec["completions"])] == [
        shards.Shard(i, spec["completions"]) for i in range(1, spec["completions"] + 1)
    ]
    (claim,) = [d for d in documents if d["kind"] == "PersistentVolumeClaim"]
    assert spec["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]

    name, version = dockerfile_image()
    assert container["image"] == name
    (merge,) = yaml.safe_load_all(MERGE_JOB.read_text())
    assert merge["spec"]["template"]["spec"]["containers"][0]["image"] == name
    assert "streamchaos merge" in merge["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert name.endswith(":" + version)
    assert version == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^IMAGE \?= (\S+)$", makefile, re.M).group(1) == name
    assert "docker build -f deploy/Dockerfile -t $(IMAGE) ." in makefile
    text = DOCKERFILE.read_text()
    assert 'ENTRYPOINT ["streamchaos"]' in text and "make setup" in text


def test_the_dockerfile_is_consistent_with_the_repository():
    """Stages copied from are defined; the build installs with the Makefile's own target; what
    `make setup` builds is never copied in from the host (no engine here to build it)."""
    text = DOCKERFILE.read_text()
    stages = set(re.findall(r"^FROM \S+ AS (\S+)$", text, re.M))
    assert set(re.findall(r"COPY --from=(\S+)", text)) <= stages
    assert re.search(r"^COPY \. \.$", text, re.M) and "RUN make setup" in text
    assert re.search(r"^setup: ", (ROOT / "Makefile").read_text(), re.M)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "tools", "**/node_modules"} <= set(ignored)
