"""A cluster of a Dask Gateway for :class:`pipelines.cluster.spec.Runner`: create, check, shut down.

:func:`open_gateway_cluster` asks the gateway for a cluster with the spec's worker cores, memory
and environment, scales it, waits for its workers, refuses other software versions, prints the
dashboard link, and registers the cluster's shutdown on the runner's exit stack. The shutdown
runs on success, on an error and on Ctrl-C, and SIGTERM/SIGHUP count as Ctrl-C while the
cluster lives.
"""

from __future__ import annotations

import contextlib
import getpass
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from lake.errors import ConfigError
from pipelines.cluster.spec import DISTRIBUTION, ClusterError, ClusterSpec, check_versions


@dataclass(frozen=True)
class OpenedCluster:
    """A running Gateway cluster, as the runner uses it.

    Attributes:
        client: The ``distributed.Client`` of the cluster.
        name: The cluster's name at the gateway.
        dashboard: Its dashboard link.
        env_credentials: The (key, secret) the workers have in their environment, if any.
    """

    client: Any
    name: str
    dashboard: str
    env_credentials: tuple[str, str] | None


def open_gateway_cluster(spec: ClusterSpec, stack: contextlib.ExitStack) -> OpenedCluster:
    """Create, scale and check a cluster of the Gateway at ``spec.address``.

    Everything opened is registered on ``stack``: closing it closes the client and shuts the
    cluster down.

    Raises:
        ClusterError: The gateway does not answer, refuses the password, cannot start the
            cluster or its workers, or the workers run other software versions.
        ConfigError: The gateway has no such option, or refuses the value.
    """
    from dask_gateway import BasicAuth, Gateway  # type: ignore[import-untyped]
    from dask_gateway.client import (  # type: ignore[import-untyped]
        GatewayClusterError,
        GatewayServerError,
    )

    from pipelines.local.processes import signals_interrupt

    # SIGTERM and SIGHUP end the job like Ctrl-C: through the shutdown below.
    stack.enter_context(signals_interrupt())
    http, proxy = spec.gateway_addresses()
    auth = None if spec.password is None else BasicAuth(getpass.getuser(), spec.password)
    gateway = Gateway(address=http, proxy_address=proxy, auth=auth)
    stack.callback(close_gateway, gateway)
    try:
        options = gateway.cluster_options()
    except ValueError as exc:  # 404: something answers, but it is no Dask Gateway
        raise ClusterError(f"{spec.address} is no Dask Gateway ({exc})") from None
    except (OSError, GatewayServerError, _aiohttp_error()) as exc:
        raise gateway_error(spec.address, exc) from None
    env_sent = set_options(options, spec)
    with sigint_deferred():  # the cluster must be known to the shutdown below
        try:
            cluster = gateway.new_cluster(options, shutdown_on_close=True)
        except (GatewayClusterError, GatewayServerError, ValueError) as exc:
            raise ClusterError(
                f"the Dask Gateway at {spec.address} could not start a cluster ({exc}); "
                "see the gateway's log"
            ) from None
        stack.callback(shutdown_cluster, gateway, cluster)
    cluster.scale(spec.n_workers)
    client = cluster.get_client(set_as_default=False)
    stack.callback(client.close)
    try:
        client.wait_for_workers(spec.n_workers, timeout=spec.ready_timeout)
    except TimeoutError:
        raise ClusterError(
            f"the Gateway cluster {cluster.name} at {spec.address} did not get "
            f"{spec.n_workers} workers in {spec.ready_timeout:.0f} s; check the gateway's "
            "log and its limits (cores, memory)"
        ) from None
    check_versions(client.get_versions(packages=[DISTRIBUTION]), spec.address)
    env = dict(spec.environment)
    creds = None
    if env_sent and "AWS_SECRET_ACCESS_KEY" in env:
        creds = (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"])
    dashboard = str(cluster.dashboard_link)
    print(
        f"Dask Gateway cluster {cluster.name}: {spec.n_workers} workers; dashboard {dashboard}",
        file=sys.stderr,
        flush=True,
    )
    return OpenedCluster(client, str(cluster.name), dashboard, creds)


def set_options(options: Any, spec: ClusterSpec) -> bool:
    """Put the spec's worker cores, memory and environment into the Gateway's options.

    Returns:
        Whether the environment went in (the gateway offers an ``environment`` option).

    Raises:
        ConfigError: The gateway offers no such option, or refuses the value.
    """
    wanted: dict[str, Any] = {}
    if spec.worker_cores is not None:
        wanted["worker_cores"] = spec.worker_cores
    if spec.worker_memory is not None:
        wanted["worker_memory"] = int(spec.worker_memory) / 2**30  # GiB, as the configs ask
    env_sent = bool(spec.environment) and "environment" in options
    if env_sent:
        wanted["environment"] = {**options["environment"], **dict(spec.environment)}
    for name, value in wanted.items():
        try:
            options[name] = value
        except KeyError:
            raise ConfigError(
                f"the Dask Gateway at {spec.address} offers no {name!r} cluster option "
                f"(it offers {', '.join(options) or 'none'})"
            ) from None
        except (TypeError, ValueError) as exc:
            flag = "--" + name.replace("_", "-")
            shown = {"environment": "(environment)", "worker_memory": f"{value:g}GiB"}.get(
                name, value
            )
            raise ConfigError(
                f"{flag} {shown}: the Dask Gateway at {spec.address} refuses it: {exc}"
            ) from None
    return env_sent


def gateway_error(address: str, exc: BaseException) -> ClusterError:
    """A failed Gateway request as one line naming the address, the cause and the fix."""
    status = getattr(exc, "status", None)
    if status in (401, 403):
        return ClusterError(
            f"the Dask Gateway at {address} refused the credentials (HTTP {status}): check the "
            "password (--gateway-password or LAKE_GATEWAY_PASSWORD)"
        )
    if isinstance(exc, OSError):
        return ClusterError(
            f"no Dask Gateway answers at {address} ({exc}); start one with `lake gateway serve` "
            "or check --cluster"
        )
    return ClusterError(f"the Dask Gateway at {address} failed: {type(exc).__name__}: {exc}")


def shutdown_cluster(gateway: Any, cluster: Any) -> None:
    """Stop a Gateway cluster; Ctrl-C cannot interrupt it, a failure falls back to the API."""
    with sigint_deferred():
        try:
            cluster.shutdown()
        except Exception:
            with contextlib.suppress(Exception):
                gateway.stop_cluster(cluster.name)
        finally:
            close_gateway(cluster.gateway)  # the cluster's own client of the gateway


@contextlib.contextmanager
def sigint_deferred() -> Iterator[None]:
    """Ignore Ctrl-C while the block runs (the cluster's shutdown must not be cut short)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def close_gateway(gateway: Any) -> None:
    """Close a ``dask_gateway.Gateway`` client once and for all (idempotent).

    dask-gateway 2026.3 closes it again when it is garbage-collected, which fails with
    "Accessing the loop property while the loop is not running" (distributed 2026.8): so the
    collector is told there is nothing left to close.
    """
    if "_loop_runner" not in gateway.__dict__:
        return
    try:
        gateway.close()
    finally:
        gateway.__dict__.pop("_loop_runner", None)


def _aiohttp_error() -> type[BaseException]:
    """aiohttp.ClientError: what the Gateway client raises for HTTP 401 and the like."""
    import aiohttp

    return aiohttp.ClientError
