"""A STAC API on loopback over a file of Items: ``rustac serve`` (stac-utils' Rust server).

The time-series job searches scenes with pystac-client; :class:`StacServer` gives it a real STAC
API without the network, over the Items of :mod:`pipelines.synth.scenes` (or any
FeatureCollection / ndjson / stac-geoparquet file that ``rustac serve`` loads), in memory. The
``rustac`` binary comes with the ``rustac`` wheel of this venv. The tests, the time-series
benchmark and ``notebooks/07-timeseries`` start it through this class::

    with StacServer(scenes.catalogue) as api:
        Client.open(api.url).search(collections=["sentinel-2-l2a"], datetime="2019-06")
"""

from __future__ import annotations

import os
import subprocess
import urllib.request
from pathlib import Path

from lake.errors import LakeError
from pipelines.local.processes import ServerProcess, environment_binary, free_port


class StacServerError(LakeError, RuntimeError):
    """The local ``rustac serve`` could not be started."""


def rustac_binary() -> str:
    """Path of the ``rustac`` binary (next to this Python, else on ``PATH``).

    Raises:
        StacServerError: It is not installed.
    """
    return environment_binary(
        "rustac",
        lambda: StacServerError(
            "rustac was not found: install the project (`make venv`), which brings PyPI rustac"
        ),
    )


class StacServer(ServerProcess):
    """``rustac serve`` of a file of Items on 127.0.0.1 (in-memory backend) until stopped.

    The collections the Items name are created (``--create-collections``). The process dies with
    its parent (:class:`~pipelines.local.processes.ServerProcess`).

    Args:
        items_file: The Items (a FeatureCollection JSON file, as
            :func:`pipelines.synth.scenes.write_catalogue` writes).
        port: TCP port on 127.0.0.1 (a free one when 0).

    Attributes:
        url: The API's landing page (``http://127.0.0.1:PORT``).
    """

    def __init__(self, items_file: str | os.PathLike[str], *, port: int = 0) -> None:
        self.items_file = Path(items_file)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/collections", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def start(self, timeout: float = 30.0) -> StacServer:
        """Start it and wait until it lists the collections.

        Raises:
            StacServerError: The Items file is missing, or rustac exited or did not answer
                within ``timeout`` seconds.
        """
        if not self.items_file.is_file():
            raise StacServerError(f"no Items file at {self.items_file} for rustac serve")
        self._spawn(
            [
                rustac_binary(),
                "serve",
                "--addr",
                f"127.0.0.1:{self.port}",
                "--create-collections",
                str(self.items_file),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait(
            self._answers,
            timeout,
            lambda code: StacServerError(
                f"rustac serve of {self.items_file} exited with status {code} (port {self.port})"
            ),
            lambda: StacServerError(
                f"rustac serve did not answer at {self.url} within {timeout:g} s"
            ),
        )
        return self
