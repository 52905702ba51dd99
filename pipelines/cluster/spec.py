"""Where pipeline tasks run, as data: :class:`ClusterSpec` and the checks of a cluster's software.

A leaf of :mod:`pipelines.cluster`: ``--cluster`` parsed into a picklable spec (``local``,
``threads``, ``sync``, a scheduler address or a Dask Gateway, with worker cores, memory and
environment), memory strings, and the version check that workers run the same software as this
process. :mod:`pipelines.cluster.runner` runs tasks on such a cluster;
:mod:`pipelines.cluster.gateway` creates Gateway clusters.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar
from urllib.parse import urlparse

from lake.config import StoreSpec
from lake.errors import ConfigError, LakeError

T = TypeVar("T")
R = TypeVar("R")

CLUSTER_HELP = (
    "where tasks run: 'local' (a Dask LocalCluster of processes, the default), 'threads' "
    "(threads in this process), 'sync' (one by one, for debugging), a Dask Gateway "
    "(gateway://host:port as printed by `lake gateway serve`, or its http(s):// address), "
    "or a Dask scheduler address such as tcp://host:8786"
)
#: The distribution whose version workers must share with the client.
DISTRIBUTION = "bigearthnet-lake"
#: Packages whose versions must match between client, scheduler (``*``) and workers.
CHECKED_PACKAGES = ("python*", "dask*", "distributed*", "cloudpickle", DISTRIBUTION)
GATEWAY_SCHEMES = ("gateway", "http", "https")
SCHEDULER_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx", "inproc")
#: Workers a Gateway cluster is scaled to when ``--workers`` is not given.
DEFAULT_GATEWAY_WORKERS = 2
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)(b?)\s*$", re.IGNORECASE)


class ClusterError(LakeError, ConnectionError):
    """A cluster cannot be reached, refuses the credentials, or runs other software versions."""


def parse_memory(text: str | int) -> int:
    """Bytes of a memory size: ``4GiB``/``4Gi`` (binary), ``4GB``/``4G`` (decimal) or bytes.

    Raises:
        ConfigError: The text is not a positive size.
    """
    if isinstance(text, int):
        value = text
    else:
        m = _MEMORY.match(text)
        if m is None or (m.group(3) and not m.group(2)):
            raise ConfigError(
                f"--worker-memory {text!r} is not a memory size; use e.g. 4GiB, 512MiB or 8GB"
            )
        base = 1024 if m.group(3) else 1000
        value = int(float(m.group(1)) * base ** " kmgt".index(m.group(2).lower() or " "))
    if value <= 0:
        raise ConfigError(f"--worker-memory {text!r} must be more than 0 bytes")
    return value


def version_mismatches(versions: Mapping[str, Any]) -> list[str]:
    """What differs between the client, the scheduler and the workers, one line per package.

    Args:
        versions: What ``distributed.Client.get_versions(packages=[DISTRIBUTION])`` returns:
            ``{"client": {"packages": {...}}, "scheduler": {...}, "workers": {addr: {...}}}``.

    Returns:
        Lines such as ``dask: client 2026.8.0, worker tls://...:4321 2026.3.0``; empty when all
        agree. Python is compared by major.minor (what pickled functions depend on).
    """

    def version(info: Any, package: str) -> str:
        packages = info.get("packages", {}) if isinstance(info, Mapping) else {}
        value = packages.get(package)
        if value is None:
            return "missing"
        return ".".join(str(value).split(".")[:2]) if package == "python" else str(value)

    problems = []
    for name in CHECKED_PACKAGES:
        package = name.rstrip("*")
        mine = version(versions.get("client"), package)
        others = {f"worker {w}": version(v, package) for w, v in versions["workers"].items()}
        if name.endswith("*"):
            others["scheduler"] = version(versions.get("scheduler"), package)
        differ = {who: v for who, v in sorted(others.items()) if v != mine}
        if differ:
            listed = ", ".join(f"{who} {v}" for who, v in differ.items())
            problems.append(f"{package}: client {mine}, {listed}")
    return problems


def check_versions(versions: Mapping[str, Any], address: str) -> None:
    """Refuse a cluster whose software differs from the client's (see :func:`version_mismatches`).

    Raises:
        ClusterError: Naming each package that differs, where, and the fix.
    """
    problems = version_mismatches(versions)
    if problems:
        raise ClusterError(
            f"the cluster at {address} runs other software than this client: "
            + "; ".join(problems)
            + ". Use workers built from the same constraints.txt and package version "
            "(for Kubernetes: rebuild the worker image from infra/docker/Dockerfile)"
        )


@dataclass(frozen=True)
class ClusterSpec:
    """Which cluster to use, and what its workers get.

    Attributes:
        address: ``local``, ``threads``, ``sync``, a Dask Gateway (``gateway://host:port`` or
            ``http(s)://host[:port][/prefix]``) or a scheduler address (``tcp://host:8786``).
        workers: Workers of a local cluster or thread pool (None = one per core), or the
            number a Gateway cluster is scaled to (None = 2).
        worker_cores: Cores (= threads) per worker: local and Gateway clusters.
        worker_memory: Memory per worker in bytes, or a size such as ``4GiB``.
        password: Gateway password (None: dask-gateway's own configuration decides the auth,
            e.g. ``DASK_GATEWAY__AUTH__KWARGS__PASSWORD``); ignored by other clusters, never
            shown by ``repr``.
        environment: Extra environment of a Gateway cluster's scheduler and workers (name,
            value) pairs; never shown by ``repr``. See :meth:`with_store`.
        ready_timeout: Seconds to wait for a Gateway cluster's workers.
    """

    address: str = "local"
    workers: int | None = None
    worker_cores: int | None = None
    worker_memory: int | str | None = None
    password: str | None = field(default=None, repr=False)
    environment: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    ready_timeout: float = 120.0

    def __post_init__(self) -> None:
        _ = self.kind  # validates the address
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {self.workers}")
        if self.worker_cores is not None and self.worker_cores < 1:
            raise ConfigError(f"--worker-cores must be at least 1, got {self.worker_cores}")
        if self.worker_memory is not None:
            object.__setattr__(self, "worker_memory", parse_memory(self.worker_memory))

    @property
    def kind(self) -> str:
        """``local``, ``threads``, ``sync``, ``gateway`` or ``scheduler``."""
        if self.address in ("local", "threads", "sync"):
            return self.address
        scheme = urlparse(self.address).scheme if "://" in self.address else ""
        if scheme in GATEWAY_SCHEMES and urlparse(self.address).hostname:
            return "gateway"
        if scheme in SCHEDULER_SCHEMES:
            return "scheduler"
        raise ConfigError(f"--cluster {self.address!r}: {CLUSTER_HELP}")

    @property
    def n_workers(self) -> int:
        """The number of workers a cluster or thread pool gets."""
        if self.kind == "gateway":
            return self.workers or DEFAULT_GATEWAY_WORKERS
        return self.workers or os.cpu_count() or 1

    def with_store(self, spec: StoreSpec) -> ClusterSpec:
        """This spec, plus the S3 credentials of ``spec`` in the workers' environment.

        A Gateway cluster then starts with ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` set,
        and :meth:`Runner.map` sends store specs with these credentials without them (the
        workers' S3 clients find them in their environment). Other clusters share this process's
        memory or environment and are unchanged.
        """
        if self.kind != "gateway" or not spec.with_credentials():
            return self
        env = dict(self.environment)
        env.update({"AWS_ACCESS_KEY_ID": str(spec.key), "AWS_SECRET_ACCESS_KEY": str(spec.secret)})
        return replace(self, environment=tuple(sorted(env.items())))

    def gateway_addresses(self) -> tuple[str, str | None]:
        """The Gateway's HTTP API address and its scheduler proxy address (None: derived)."""
        parsed = urlparse(self.address)
        if parsed.scheme == "gateway":
            return f"http://{parsed.netloc}", f"gateway://{parsed.netloc}"
        return self.address.rstrip("/"), None
