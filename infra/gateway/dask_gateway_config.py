"""dask-gateway-server configuration for one machine: `lake gateway serve` starts it.

Processes on this machine (no Kubernetes, no containers), loopback only, one shared password.
Everything that varies comes from the environment that
``pipelines.local.gateway.LocalGateway`` sets:

    LAKE_GATEWAY_ADDRESS       where the proxy listens, HTTP API and scheduler traffic
                               (127.0.0.1:8000)
    LAKE_GATEWAY_PASSWORD      the password every user must give (required; removed from the
                               environment once read, so no child process inherits it)
    LAKE_GATEWAY_IDLE_TIMEOUT  seconds after which an idle cluster shuts itself down (600)
    LAKE_GATEWAY_CLUSTERS_DIR  working folders of the clusters (a temporary folder each if unset)

Run by hand (same as `lake gateway serve`)::

    export LAKE_GATEWAY_PASSWORD=secret
    .venv/bin/dask-gateway-server -f infra/gateway/dask_gateway_config.py
"""

# ruff: noqa: D102, D103
from __future__ import annotations

import ctypes
import os
import signal
import sys
from pathlib import Path

from dask_gateway_server.auth import SimpleAuthenticator
from dask_gateway_server.backends.local import UnsafeLocalBackend
from dask_gateway_server.options import Float, Integer, Mapping, Options

c = get_config()  # type: ignore[name-defined]  # noqa: F821 (injected by traitlets)


def _die_with_parent() -> None:
    """Linux: SIGTERM this scheduler or worker when the gateway process dies (even kill -9)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class LakeLocalBackend(UnsafeLocalBackend):
    """Schedulers and workers as processes of the user who runs the gateway, bound to loopback.

    ``UnsafeLocalBackend`` runs them as the gateway's own user (``LocalBackend`` would switch to
    the authenticated user's account, which needs root and an OS account per user). On top of
    it, each process dies with the gateway, so a killed gateway leaves no cluster behind.
    """

    def make_preexec_fn(self, cluster):  # type: ignore[no-untyped-def]
        inner = super().make_preexec_fn(cluster)

        def preexec() -> None:
            inner()
            if sys.platform == "linux":
                _die_with_parent()

        return preexec


password = os.environ.pop("LAKE_GATEWAY_PASSWORD", "")
if not password:
    raise SystemExit("LAKE_GATEWAY_PASSWORD is not set: the gateway refuses to run without one")
address = os.environ.get("LAKE_GATEWAY_ADDRESS", "127.0.0.1:8000")
if not address.startswith(("127.", "localhost:", "[::1]:")):
    raise SystemExit(f"LAKE_GATEWAY_ADDRESS={address!r}: this config serves loopback only")

c.DaskGateway.address = "127.0.0.1:0"  # the private API; users go through the proxy
c.Proxy.address = address
c.Proxy.tcp_address = address  # scheduler traffic (TLS, SNI-routed) on the same port

c.DaskGateway.authenticator_class = SimpleAuthenticator
c.SimpleAuthenticator.password = password

c.DaskGateway.backend_class = LakeLocalBackend
if os.environ.get("LAKE_GATEWAY_CLUSTERS_DIR"):
    c.LakeLocalBackend.clusters_directory = os.environ["LAKE_GATEWAY_CLUSTERS_DIR"]
# The in-memory database (the default) makes the gateway stop every cluster when it stops.
c.LakeLocalBackend.stop_clusters_on_shutdown = True
c.LakeLocalBackend.sigint_timeout = 2  # then SIGTERM: a dask worker does not linger
c.LakeLocalBackend.sigterm_timeout = 3

BIN = Path(sys.executable).parent  # this venv: the workers run the same code as the client
c.ClusterConfig.scheduler_cmd = [str(BIN / "dask"), "scheduler"]
c.ClusterConfig.worker_cmd = [str(BIN / "dask"), "worker"]
IDLE_TIMEOUT = float(os.environ.get("LAKE_GATEWAY_IDLE_TIMEOUT", "600"))
c.ClusterConfig.idle_timeout = IDLE_TIMEOUT
CORES = os.cpu_count() or 1
MEMORY_GIB = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
c.ClusterConfig.cluster_max_cores = 4 * CORES  # oversubscription guard
c.ClusterConfig.scheduler_memory = "1 G"


def options_handler(options):  # type: ignore[no-untyped-def]
    return {
        "worker_cores": options.worker_cores,
        "worker_threads": options.worker_cores,
        "worker_memory": int(options.worker_memory * 2**30),
        "idle_timeout": options.idle_timeout,
        "environment": dict(options.environment),
    }


c.Backend.cluster_options = Options(
    Integer("worker_cores", default=1, min=1, max=CORES, label="Worker cores"),
    Float(
        "worker_memory", default=2, min=0.25, max=max(0.25, MEMORY_GIB), label="Worker memory (GiB)"
    ),
    Float("idle_timeout", default=IDLE_TIMEOUT, min=1, max=7 * 86400, label="Idle timeout (s)"),
    Mapping("environment", default={}, label="Environment of scheduler and workers"),
    handler=options_handler,
)
