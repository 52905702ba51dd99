"""dask-gateway-server config of the compose file: the one-machine config, reachable by the team.

It loads ``infra/gateway/dask_gateway_config.py`` (process backend, password auth, the cluster
options workers/cores/memory/environment/idle timeout) and only moves the proxy from loopback to
``LAKE_GATEWAY_PUBLIC_ADDRESS`` (``0.0.0.0:8000``). Schedulers and workers stay processes of the
gateway's container, bound to its loopback; clients reach them through the proxy.
"""

import os
from pathlib import Path

c = get_config()  # type: ignore[name-defined]  # noqa: F821 (injected by traitlets)
BASE = Path(__file__).resolve().parents[1] / "gateway" / "dask_gateway_config.py"
load_subconfig(str(BASE))  # type: ignore[name-defined]  # noqa: F821 (injected by traitlets)

public = os.environ.get("LAKE_GATEWAY_PUBLIC_ADDRESS", "0.0.0.0:8000")
c.Proxy.address = public
c.Proxy.tcp_address = public
