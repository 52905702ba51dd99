"""Run the STAC API with uvicorn: in the foreground (``lake serve``) or in a background thread.

The default bind is 127.0.0.1: the API serves whatever the lake's credentials can read, so it
is exposed beyond the machine only when asked for (``--host 0.0.0.0``). The HTTP layer buffers
at most :data:`~catalog.limits.MAX_HEAD_BYTES` of request line and headers, so an over-long
query string reaches the app, which refuses it with a 414 that names its limit.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from catalog.limits import MAX_HEAD_BYTES
from lake.errors import LakeError

if TYPE_CHECKING:
    from fastapi import FastAPI

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


class ServerError(LakeError, RuntimeError):
    """The API server did not start."""


def serve(app: FastAPI, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve ``app`` until interrupted (Ctrl-C or SIGTERM).

    Raises:
        ServerError: The address cannot be bound (in use, or not an interface of this host).
    """
    import socket

    import uvicorn

    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise ServerError(
            f"cannot listen on {host}:{port} ({exc}); choose another --port"
        ) from None
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
    )


@contextlib.contextmanager
def running(app: FastAPI, host: str = DEFAULT_HOST, port: int = 0) -> Iterator[str]:
    """Serve ``app`` in a background thread; yields its base URL (``http://host:port``).

    Args:
        app: The app.
        host: Interface to bind.
        port: Port (0 picks a free one).

    Raises:
        ServerError: It did not start within 20 seconds.
    """
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="off",
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="stac-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise ServerError(f"the STAC API did not start on {host}:{port}")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
