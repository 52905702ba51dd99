"""``lake s3 serve``: the embedded S3 endpoint (rclone serve s3 on loopback)."""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lake.errors import LakeError
from pipelines.cli.common import JsonOpt, fail

if TYPE_CHECKING:
    from pipelines.local.s3 import EmbeddedS3, S3Endpoint

s3_app = typer.Typer(
    help="The embedded S3 endpoint (rclone serve s3 on loopback).", no_args_is_help=True
)


@s3_app.command("serve")
def s3_serve(
    directory: Annotated[
        Path, typer.Option("--dir", help="Folder to serve; its subfolders are buckets.")
    ] = Path("s3-data"),
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1 (0 = a free one).")] = 9000,
    bucket: Annotated[list[str], typer.Option("--bucket", help="Bucket(s) to create.")] = ["lake"],  # noqa: B006
    as_json: JsonOpt = False,
) -> None:
    """Serve a folder as S3 on 127.0.0.1 until Ctrl-C or SIGTERM; prints what to export."""
    from lake.errors import S3ServerError
    from pipelines.local.processes import signals_interrupt
    from pipelines.local.s3 import EmbeddedS3

    server = EmbeddedS3(directory, port=port, buckets=bucket)
    with signals_interrupt():  # SIGTERM/SIGHUP stop rclone too instead of orphaning it
        try:
            endpoint = server.start()
            _announce(server, endpoint, bucket, as_json)
            while server.running:
                time.sleep(0.5)
        except LakeError as exc:
            raise fail(exc) from None
        except KeyboardInterrupt:
            return
        finally:
            server.stop()
    raise fail(S3ServerError(f"rclone serve s3 stopped on its own; see {server.log}"))


def _announce(server: EmbeddedS3, endpoint: S3Endpoint, buckets: list[str], as_json: bool) -> None:
    """Print how to reach a started endpoint: JSON, or ``export`` lines a shell can eval."""
    env = endpoint.environment()
    if as_json:
        doc = {"endpoint_url": endpoint.endpoint_url, "buckets": buckets, "environment": env}
        typer.echo(json.dumps(doc))
    else:
        typer.echo("\n".join(f"export {k}={shlex.quote(v)}" for k, v in env.items()))
        typer.echo(
            f"# serving {server.directory} at {endpoint.endpoint_url}; Ctrl-C stops", err=True
        )
    sys.stdout.flush()
