"""A Dask Gateway for this machine: dask-gateway-server with the config in ``infra/gateway/``.

Schedulers and workers run as local processes of this venv, on loopback, behind one shared
password. ``lake gateway serve`` and the tests start it through :class:`LocalGateway`; jobs then
reach it with ``--cluster gateway://127.0.0.1:PORT`` (see :mod:`pipelines.cluster.spec`).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from lake.errors import ConfigError, LakeError
from pipelines.local.processes import ServerProcess, free_port, port_free

#: The gateway config of this repository (also the one the docs tell operators to copy).
CONFIG = Path(__file__).resolve().parents[2] / "infra" / "gateway" / "dask_gateway_config.py"
#: The environment variable holding the gateway password, for the server and for clients.
PASSWORD_ENV = "LAKE_GATEWAY_PASSWORD"


class GatewayServerError(LakeError, RuntimeError):
    """The local dask-gateway-server could not be started."""


@dataclass(frozen=True)
class GatewayEndpoint:
    """What a client needs to reach a running gateway.

    Attributes:
        host: The loopback address the proxy listens on.
        port: Its port (HTTP API and scheduler traffic share it).
        password: The shared password (never shown by ``repr``).
    """

    host: str
    port: int
    password: str = field(repr=False)

    @property
    def address(self) -> str:
        """The ``--cluster`` value of this gateway."""
        return f"gateway://{self.host}:{self.port}"

    @property
    def http_address(self) -> str:
        """The gateway's HTTP API (what ``dask_gateway.Gateway(address=...)`` takes)."""
        return f"http://{self.host}:{self.port}"

    def environment(self) -> dict[str, str]:
        """Environment variables that point ``lake`` (and plain dask-gateway clients) at it."""
        return {
            "LAKE_CLUSTER": self.address,
            PASSWORD_ENV: self.password,
            "DASK_GATEWAY__ADDRESS": self.http_address,
            "DASK_GATEWAY__PROXY_ADDRESS": self.address,
            "DASK_GATEWAY__AUTH__TYPE": "basic",
            "DASK_GATEWAY__AUTH__KWARGS__PASSWORD": self.password,
        }


class LocalGateway(ServerProcess):
    """Runs dask-gateway-server on loopback until stopped; a context manager.

    The server dies with this process (Linux parent-death signal) and stops every cluster when
    it stops; its schedulers and workers die with it too (see the config).

    Args:
        workdir: Folder for the server's log and the clusters' working folders.
        port: TCP port of the proxy (a free one when 0).
        password: The shared password (generated when None).
        idle_timeout: Seconds after which an idle cluster shuts itself down.
        config: The dask-gateway-server config file.
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        *,
        port: int = 0,
        password: str | None = None,
        idle_timeout: float = 600.0,
        config: str | os.PathLike[str] = CONFIG,
    ) -> None:
        if password is not None and not password:
            raise ConfigError("the gateway password is empty; give one or let it be generated")
        self.workdir = Path(workdir).resolve()
        self.config = Path(config)
        self.idle_timeout = idle_timeout
        host = "127.0.0.1"
        self.endpoint = GatewayEndpoint(
            host, port or free_port(host), password or secrets.token_urlsafe(18)
        )
        self.stop_timeout = 30.0  # the server stops its clusters first

    @property
    def log(self) -> Path:
        """The server's log file."""
        return self.workdir / f"gateway-{self.endpoint.port}.log"

    @property
    def clusters_directory(self) -> Path:
        """Where each cluster's working folder (and its processes' logs) lives while it runs."""
        return self.workdir / "clusters"

    def start(self, timeout: float = 60.0) -> GatewayEndpoint:
        """Start the server and wait until its API answers.

        Raises:
            GatewayServerError: The server exited or did not answer within ``timeout`` seconds.
        """
        if not self.config.is_file():
            raise GatewayServerError(f"gateway config {self.config} not found")
        if not port_free(self.endpoint.host, self.endpoint.port):
            raise GatewayServerError(
                f"port {self.endpoint.port} on {self.endpoint.host} is in use; pick another "
                "with --port (0 = a free one)"
            )
        self.clusters_directory.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            PASSWORD_ENV: self.endpoint.password,  # environment, not argv: not in `ps`
            "LAKE_GATEWAY_ADDRESS": f"{self.endpoint.host}:{self.endpoint.port}",
            "LAKE_GATEWAY_IDLE_TIMEOUT": str(self.idle_timeout),
            "LAKE_GATEWAY_CLUSTERS_DIR": str(self.clusters_directory),
        }
        cmd = [sys.executable, "-m", "dask_gateway_server", "-f", str(self.config)]
        with open(self.log, "ab") as log:
            self._spawn(cmd, cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
        self._wait(
            self._answers,
            timeout,
            lambda code: GatewayServerError(
                f"dask-gateway-server exited with status {code} "
                f"(port {self.endpoint.port}); see {self.log}"
            ),
            lambda: GatewayServerError(
                f"dask-gateway-server did not answer on port {self.endpoint.port} in "
                f"{timeout}s; see {self.log}"
            ),
            poll=0.1,
        )
        return self.endpoint

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.endpoint.http_address + "/api/health", timeout=1):
                return True
        except urllib.error.HTTPError:
            return False  # the proxy is up but has no route to the gateway yet
        except OSError:
            return False
