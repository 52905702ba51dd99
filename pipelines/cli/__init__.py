"""The ``lake`` command line: one module per command group, assembled here.

| module | commands |
|---|---|
| :mod:`~pipelines.cli.build` | ``synth``, ``ingest`` (also ``pipeline ingest``) |
| :mod:`~pipelines.cli.inspect` | ``info``, ``show`` |
| :mod:`~pipelines.cli.sql` | ``sql`` |
| :mod:`~pipelines.cli.catalog` | ``search``, ``serve``, ``catalog build`` |
| :mod:`~pipelines.cli.train` | ``train`` |
| :mod:`~pipelines.cli.s3` | ``s3 serve`` |
| :mod:`~pipelines.cli.gateway` | ``gateway serve`` |
| :mod:`~pipelines.cli.pipeline` | ``pipeline stats``, ``export``, ``verify`` |
| :mod:`~pipelines.cli.timeseries` | ``pipeline timeseries`` |
| :mod:`~pipelines.cli.eval` | ``eval`` |

The command modules share :mod:`~pipelines.cli.common` (options, the spec builder, error
handling, output) and import nothing else of this package; this module is the only one that
imports them, so there is no import cycle.

Exit status: 0 success; 1 an error (the message says what and how to fix it); 2 bad usage;
3 ingest finished but quarantined some input (see the quarantine report).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Optional

import typer

from pipelines.cli import build, catalog, gateway, inspect, pipeline, s3, sql, train
from pipelines.cli import eval as eval_cmd
from pipelines.cli import timeseries as timeseries_cmd
from pipelines.cli.common import set_progress
from pipelines.cluster.spec import DISTRIBUTION

app = typer.Typer(
    help="The BigEarthNet lake: build, inspect and serve a Zarr/Parquet lake on disk or S3.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        try:
            typer.echo(f"lake {version(DISTRIBUTION)}")
        except PackageNotFoundError:  # pragma: no cover (run from a source tree, not installed)
            typer.echo("lake (not installed: no version)")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[
        Optional[bool],  # noqa: UP045 (typer needs Optional on 3.11)
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = None,
    progress: Annotated[
        Optional[bool],  # noqa: UP045
        typer.Option(
            "--progress/--no-progress",
            show_default=False,
            help="Progress bars on stderr (default: only when stderr is a terminal).",
        ),
    ] = None,
) -> None:
    """The BigEarthNet lake: build, inspect and serve a Zarr/Parquet lake on disk or S3."""
    set_progress(progress)


app.command("synth")(build.synth)
app.command("ingest")(build.ingest)
app.command("info")(inspect.info)
app.command("show")(inspect.show)
app.command("sql")(sql.sql)
app.command("train")(train.train)
app.command("eval")(eval_cmd.eval_command)
app.command("search")(catalog.search)
app.command("serve")(catalog.serve)
app.add_typer(s3.s3_app, name="s3")
app.add_typer(catalog.catalog_app, name="catalog")
app.add_typer(gateway.gateway_app, name="gateway")
pipeline.pipeline_app.command("ingest")(build.ingest)  # the very `lake ingest`
pipeline.pipeline_app.command("timeseries")(timeseries_cmd.timeseries)
app.add_typer(pipeline.pipeline_app, name="pipeline")


def main() -> None:
    """Entry point of the ``lake`` script."""
    app()


__all__ = ["app", "main"]
