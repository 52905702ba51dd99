"""The ``lake gateway`` commands: a Dask Gateway on this machine (``serve``).

``pipelines.cli`` registers the group; this module does not import it.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from lake.errors import LakeError
from pipelines.cli.common import JsonOpt

gateway_app = typer.Typer(
    help="A Dask Gateway on this machine (dask-gateway-server on loopback, processes of this "
    "venv) for `--cluster gateway://...` jobs.",
    no_args_is_help=True,
)


@gateway_app.command("serve")
def serve(
    port: Annotated[
        int, typer.Option("--port", min=0, help="Port on 127.0.0.1 (0 = a free one).")
    ] = 8000,
    password: Annotated[
        Optional[str],  # noqa: UP045 (typer needs Optional on 3.11)
        typer.Option(
            "--password",
            envvar="LAKE_GATEWAY_PASSWORD",
            show_default=False,
            help="The password users must give (env LAKE_GATEWAY_PASSWORD; generated and "
            "printed when unset).",
        ),
    ] = None,
    directory: Annotated[
        Path,
        typer.Option("--dir", help="Folder for the gateway's log and the clusters' folders."),
    ] = Path(".lake-gateway"),
    idle_timeout: Annotated[
        float,
        typer.Option(
            "--idle-timeout", min=1, help="Seconds after which an idle cluster shuts down."
        ),
    ] = 600.0,
    as_json: JsonOpt = False,
) -> None:
    """Serve a Dask Gateway on 127.0.0.1 until Ctrl-C or SIGTERM; prints what to export.

    Jobs then run on it with --cluster gateway://127.0.0.1:PORT and the password in
    LAKE_GATEWAY_PASSWORD. Stopping the gateway stops every cluster it started.
    """
    from pipelines.local.gateway import GatewayServerError, LocalGateway
    from pipelines.local.processes import signals_interrupt

    try:
        gateway = LocalGateway(
            directory, port=port, password=password or None, idle_timeout=idle_timeout
        )
    except LakeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    with signals_interrupt():  # SIGTERM/SIGHUP stop the gateway and its clusters too
        try:
            gateway.workdir.mkdir(parents=True, exist_ok=True)
            endpoint = gateway.start()
            env = endpoint.environment()
            if as_json:
                doc = {"address": endpoint.address, "log": str(gateway.log), "environment": env}
                typer.echo(json.dumps(doc))
            else:
                typer.echo("\n".join(f"export {k}={shlex.quote(v)}" for k, v in env.items()))
                typer.echo(
                    f"# Dask Gateway at {endpoint.address} (log {gateway.log}); Ctrl-C stops",
                    err=True,
                )
            sys.stdout.flush()
            while gateway.running:
                time.sleep(0.5)
        except (LakeError, OSError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            return
        finally:
            gateway.stop()
    error = GatewayServerError(f"dask-gateway-server stopped on its own; see {gateway.log}")
    typer.echo(f"error: {error}", err=True)
    raise typer.Exit(1)
