"""What an operator deploys from infra/: every file parses and says what the project needs.

* Helm values: only keys of the dask-gateway chart; their extraConfig defines the same cluster
  options as the one-machine config, with config names the Kubernetes backend has.
* Compose: the services, the variables of example.env, files that exist; its gateway config
  really starts dask-gateway-server (on loopback here).
* Dockerfile: instructions, the project's Python, the pins, sources that exist and pass the
  .dockerignore.
* AWS: valid IAM policy documents; read-only is a subset of read-write, both scoped to one prefix.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from traitlets.config import Config

from pipelines.local.s3 import free_port

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"

#: Every value key of the dask-gateway Helm chart (dask/dask-gateway,
#: resources/helm/dask-gateway/values.yaml; the same keys from 0.9 to the 2024/2025 charts).
#: A key ending in ``*`` is a free-form map: anything below it is the user's.
CHART_KEYS = {
    "gateway.replicas",
    "gateway.annotations*",
    "gateway.resources*",
    "gateway.prefix",
    "gateway.loglevel",
    "gateway.image.name",
    "gateway.image.tag",
    "gateway.image.pullPolicy",
    "gateway.imagePullSecrets",
    "gateway.service.annotations*",
    "gateway.auth.type",
    "gateway.auth.simple.password",
    "gateway.auth.kerberos.keytab",
    "gateway.auth.jupyterhub.apiToken",
    "gateway.auth.jupyterhub.apiUrl",
    "gateway.auth.custom.class",
    "gateway.auth.custom.config*",
    "gateway.livenessProbe.enabled",
    "gateway.livenessProbe.initialDelaySeconds",
    "gateway.livenessProbe.timeoutSeconds",
    "gateway.livenessProbe.periodSeconds",
    "gateway.livenessProbe.failureThreshold",
    "gateway.readinessProbe.enabled",
    "gateway.readinessProbe.initialDelaySeconds",
    "gateway.readinessProbe.timeoutSeconds",
    "gateway.readinessProbe.periodSeconds",
    "gateway.readinessProbe.failureThreshold",
    "gateway.backend.image.name",
    "gateway.backend.image.tag",
    "gateway.backend.image.pullPolicy",
    "gateway.backend.namespace",
    "gateway.backend.environment*",
    "gateway.backend.scheduler.extraPodConfig*",
    "gateway.backend.scheduler.extraContainerConfig*",
    "gateway.backend.scheduler.cores.request",
    "gateway.backend.scheduler.cores.limit",
    "gateway.backend.scheduler.memory.request",
    "gateway.backend.scheduler.memory.limit",
    "gateway.backend.worker.extraPodConfig*",
    "gateway.backend.worker.extraContainerConfig*",
    "gateway.backend.worker.cores.request",
    "gateway.backend.worker.cores.limit",
    "gateway.backend.worker.memory.request",
    "gateway.backend.worker.memory.limit",
    "gateway.backend.worker.threads",
    "gateway.nodeSelector*",
    "gateway.affinity*",
    "gateway.tolerations",
    "gateway.extraConfig*",
    "controller.enabled",
    "controller.annotations*",
    "controller.resources*",
    "controller.imagePullSecrets",
    "controller.loglevel",
    "controller.completedClusterMaxAge",
    "controller.completedClusterCleanupPeriod",
    "controller.backoffBaseDelay",
    "controller.backoffMaxDelay",
    "controller.k8sApiRateLimit",
    "controller.k8sApiRateLimitBurst",
    "controller.image.name",
    "controller.image.tag",
    "controller.image.pullPolicy",
    "controller.nodeSelector*",
    "controller.affinity*",
    "controller.tolerations",
    "traefik.replicas",
    "traefik.annotations*",
    "traefik.resources*",
    "traefik.image.name",
    "traefik.image.tag",
    "traefik.image.pullPolicy",
    "traefik.additionalArguments",
    "traefik.loglevel",
    "traefik.dashboard",
    "traefik.service.type",
    "traefik.service.annotations*",
    "traefik.service.spec*",
    "traefik.service.ports.web.port",
    "traefik.service.ports.web.nodePort",
    "traefik.service.ports.tcp.port",
    "traefik.service.ports.tcp.nodePort",
    "traefik.nodeSelector*",
    "traefik.affinity*",
    "traefik.tolerations",
    "rbac.enabled",
    "rbac.controller.serviceAccountName",
    "rbac.gateway.serviceAccountName",
    "rbac.traefik.serviceAccountName",
    "global*",
}


def leaf_keys(doc: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths of the values, stopping at the chart's free-form maps."""
    out = []
    for key, value in doc.items():
        path = f"{prefix}{key}"
        if f"{path}*" in CHART_KEYS:
            out.append(f"{path}*")
        elif isinstance(value, dict) and value:
            out.extend(leaf_keys(value, path + "."))
        else:
            out.append(path)
    return out


def helm_values() -> dict[str, Any]:
    return yaml.safe_load((INFRA / "helm" / "dask-gateway-values.yaml").read_text())


def test_helm_values_use_only_the_charts_keys():
    values = helm_values()
    keys = leaf_keys(values)
    assert sorted(set(keys) - CHART_KEYS) == []
    assert values["gateway"]["auth"]["type"] == "simple"
    assert values["gateway"]["auth"]["simple"]["password"] is None  # set at install, not here
    backend = values["gateway"]["backend"]
    assert not any("SECRET" in k or "KEY" in k for k in backend["environment"])
    pyproject = (ROOT / "pyproject.toml").read_text()
    version = re.search(r'^version = "(.+)"', pyproject, re.M).group(1)  # type: ignore[union-attr]
    assert backend["image"]["tag"] == version


def kube_config_traits() -> set[str]:
    """Config names of dask-gateway-server's KubeClusterConfig and its base ClusterConfig."""
    spec = importlib.util.find_spec("dask_gateway_server")
    assert spec and spec.origin
    base = Path(spec.origin).parent / "backends"
    names: set[str] = set()
    for path, cls in (
        (base / "base.py", "ClusterConfig"),
        (base / "kubernetes" / "backend.py", "KubeClusterConfig"),
    ):
        tree = ast.parse(path.read_text())
        node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)
        names |= {
            t.id
            for s in node.body
            if isinstance(s, ast.Assign)
            for t in s.targets
            if isinstance(t, ast.Name)
        }
    return names


def test_helm_extra_config_defines_the_lakes_cluster_options():
    code = helm_values()["gateway"]["extraConfig"]["lake-options"]
    c = Config()
    namespace: dict[str, Any] = {"c": c}
    exec(compile(code, "extraConfig", "exec"), namespace)
    options = c.Backend.cluster_options
    assert {f.field for f in options.fields} == {
        "worker_cores",
        "worker_memory",
        "idle_timeout",
        "environment",
    }
    requested = options.parse_options(
        {"worker_cores": 2, "worker_memory": 3, "environment": {"A": "b"}}
    )
    overrides = options.get_configuration(requested, None)
    assert overrides["worker_memory"] == 3 * 2**30 and overrides["environment"] == {"A": "b"}
    traits = kube_config_traits()
    assert set(overrides) <= traits
    assert set(c.KubeClusterConfig) <= traits


def compose() -> dict[str, Any]:
    return yaml.safe_load((INFRA / "compose" / "compose.yaml").read_text())


def test_compose_services_and_variables():
    doc = compose()
    assert set(doc["services"]) == {"minio", "bucket", "gateway", "stac"}
    text = (INFRA / "compose" / "compose.yaml").read_text()
    used = set(re.findall(r"\$\{(\w+)", text))
    example = dict(
        line.split("=", 1)
        for line in (INFRA / "compose" / "example.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert used <= set(example)
    build = doc["services"]["gateway"]["build"]
    context = (INFRA / "compose" / build["context"]).resolve()
    assert context == ROOT and (context / build["dockerfile"]).is_file()
    config = doc["services"]["gateway"]["command"][-1]
    assert config.startswith("/opt/lake/") and (ROOT / config.removeprefix("/opt/lake/")).is_file()
    assert doc["services"]["stac"]["command"][:2] == ["lake", "serve"]
    assert "8000:8000" in doc["services"]["gateway"]["ports"]
    assert "8080:8080" in doc["services"]["stac"]["ports"]


def assert_gateway_answers(cmd: list[str], env: dict[str, str], port: int, cwd: Path) -> None:
    """Run a dask-gateway-server command until its health route answers on ``port``."""
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, "dask-gateway-server exited"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1) as r:
                    assert json.load(r)["status"] == "pass"
                    return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"{cmd} did not answer")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_compose_gateway_config_starts(tmp_path):
    """The compose file's gateway config runs dask-gateway-server (bound to loopback here)."""
    port = free_port()
    env = {
        "LAKE_GATEWAY_PASSWORD": "compose-test",
        "LAKE_GATEWAY_PUBLIC_ADDRESS": f"127.0.0.1:{port}",
    }
    config = INFRA / "compose" / "dask_gateway_config.py"
    assert_gateway_answers(
        [sys.executable, "-m", "dask_gateway_server", "-f", str(config)], env, port, tmp_path
    )


def test_gateway_config_runs_by_hand():
    """docs/operations.md: the venv's dask-gateway-server with the config, from the repo root."""
    port = free_port()
    env = {"LAKE_GATEWAY_PASSWORD": "choose-one", "LAKE_GATEWAY_ADDRESS": f"127.0.0.1:{port}"}
    cmd = [
        str(Path(sys.executable).parent / "dask-gateway-server"),
        "-f",
        "infra/gateway/dask_gateway_config.py",
    ]
    assert_gateway_answers(cmd, env, port, ROOT)


def test_gateway_config_refuses_no_password_and_other_addresses(tmp_path):
    config = str(INFRA / "gateway" / "dask_gateway_config.py")
    base = {k: v for k, v in os.environ.items() if not k.startswith("LAKE_GATEWAY")}
    for env, message in [
        ({}, "LAKE_GATEWAY_PASSWORD is not set"),
        ({"LAKE_GATEWAY_PASSWORD": "x", "LAKE_GATEWAY_ADDRESS": "0.0.0.0:8000"}, "loopback only"),
    ]:
        result = subprocess.run(
            [sys.executable, "-m", "dask_gateway_server", "-f", config],
            cwd=tmp_path,
            env={**base, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode != 0 and message in result.stdout + result.stderr


DOCKERFILE_INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
    "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
}  # fmt: skip


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) of infra/docker/Dockerfile, continuation lines joined."""
    text = (INFRA / "docker" / "Dockerfile").read_text()
    joined = re.sub(r"\\\n\s*", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word, rest.strip()))
    return out


def test_dockerfile_installs_the_package_with_the_pins():
    steps = dockerfile_instructions()
    assert {w for w, _ in steps} <= DOCKERFILE_INSTRUCTIONS
    assert steps[0][0] == "FROM" and steps[0][1].startswith("python:3.11")
    assert f"{sys.version_info.major}.{sys.version_info.minor}" == "3.11"  # same as the clients
    runs = " ".join(a for w, a in steps if w == "RUN")
    assert "pip install -c constraints.txt" in runs and "[gateway]" in runs
    ignore = (INFRA / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
    kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for word, args in steps:
        if word == "COPY":
            *sources, _dest = args.split()
            for src in sources:
                assert (ROOT / src).exists(), src
                assert src.rstrip("/") in kept, f"{src} is excluded by the .dockerignore"
    assert any(w == "USER" and a != "root" for w, a in steps)


@pytest.mark.parametrize("name", ["policy-trainer-read-only.json", "policy-ingest-read-write.json"])
def test_iam_policies_are_valid_and_scoped(name):
    doc = json.loads((INFRA / "aws" / name).read_text())
    assert doc["Version"] == "2012-10-17"
    for st in doc["Statement"]:
        assert st["Effect"] == "Allow"
        assert all(a.startswith("s3:") and "*" not in a for a in st["Action"])
        assert st["Resource"] in (
            "arn:aws:s3:::my-lake-bucket",
            "arn:aws:s3:::my-lake-bucket/bigearthnet/*",
        )


def test_read_only_policy_cannot_write():
    def actions(name: str) -> set[str]:
        doc = json.loads((INFRA / "aws" / name).read_text())
        return {a for st in doc["Statement"] for a in st["Action"]}

    ro, rw = actions("policy-trainer-read-only.json"), actions("policy-ingest-read-write.json")
    assert not any(a.startswith(("s3:Put", "s3:Delete", "s3:Abort")) for a in ro)
    assert ro <= rw and {"s3:PutObject", "s3:DeleteObject"} <= rw
