"""The ``lake`` command line: synth, ingest, info, show, s3 serve.

Exit status: 0 success; 1 an error (the message says what and how to fix it); 2 bad usage;
3 ingest finished but quarantined some input (see the quarantine report).
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lake.config import StoreSpec, store_spec
from lake.errors import LakeError
from pipelines.cli_options import (
    ClusterOpt,
    EndpointOpt,
    GatewayPasswordOpt,
    JsonOpt,
    KeyOpt,
    LakeOpt,
    RegionOpt,
    ReleaseOpt,
    SecretOpt,
    StagingDirOpt,
    WorkerCoresOpt,
    WorkerMemoryOpt,
    WorkersOpt,
)

if TYPE_CHECKING:
    from pipelines.embedded_s3 import EmbeddedS3, S3Endpoint

app = typer.Typer(
    help="The BigEarthNet lake: build, inspect and serve a Zarr/Parquet lake on disk or S3.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
s3_app = typer.Typer(
    help="The embedded S3 endpoint (rclone serve s3 on loopback).", no_args_is_help=True
)
app.add_typer(s3_app, name="s3")

EXIT_QUARANTINED = 3


def _spec(
    lake: str | None, endpoint: str | None, key: str | None, secret: str | None, region: str | None
) -> StoreSpec:
    try:
        return store_spec(lake, endpoint_url=endpoint, key=key, secret=secret, region=region)
    except LakeError as exc:
        raise _fail(exc) from None


def _fail(exc: BaseException) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(1)


def _storage_errors() -> tuple[type[BaseException], ...]:
    """What storage raises when it cannot be reached or refuses access.

    s3fs raises OSError subclasses (PermissionError for a wrong secret); botocore raises its own
    errors when the endpoint does not answer.
    """
    try:
        from botocore.exceptions import BotoCoreError  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover (s3fs brings botocore)
        return (OSError,)
    return (OSError, BotoCoreError)


def _fail_storage(spec: StoreSpec, exc: BaseException) -> typer.Exit:
    """A storage failure as one line naming the lake, the cause and the fix (no traceback)."""
    where = spec.url + (f" at {spec.endpoint_url}" if spec.endpoint_url else "")
    cause = f"{type(exc).__name__}: {exc}"
    if spec.protocol == "s3" and isinstance(exc, PermissionError):
        hint = (
            "access was refused: check the key and secret "
            "(--key/--secret or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) and the bucket"
        )
    elif spec.protocol == "s3":
        hint = "check the endpoint (--endpoint-url or AWS_ENDPOINT_URL) and that it is running"
    else:
        hint = "check the lake URL and that you may read and write there"
    typer.echo(f"error: lake {where}: {cause}; {hint}", err=True)
    return typer.Exit(1)


def _report_location(spec: StoreSpec, path: str) -> str:
    """Where an object of the lake is, as a user would type it (a path for local lakes)."""
    child = spec.child(path)
    return child.root if spec.protocol == "file" else child.url


def _emit(obj: dict[str, Any], as_json: bool, text: str) -> None:
    typer.echo(json.dumps(obj, indent=1, default=str) if as_json else text)


@app.command()
def synth(
    out: Annotated[Path, typer.Option("--out", help="Folder to create (must be new or empty).")],
    patches: Annotated[
        int,
        typer.Option("--patches", min=1, help="Number of pairs to draw from the real metadata."),
    ] = 1000,
    fmt: Annotated[str, typer.Option("--format", help="folders | tar.zst | lmdb")] = "folders",
    seed: Annotated[
        int, typer.Option("--seed", help="Seed: the same seed gives the same files.")
    ] = 0,
    text: Annotated[
        bool, typer.Option("--text/--no-text", help="Also write BigEarthNet.txt.parquet.")
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Write a synthetic BigEarthNet source in the official layout and formats."""
    from pipelines.synth import synthesize

    try:
        rep = synthesize(patches, out, fmt=fmt, seed=seed, progress=not as_json, text=text)
    except (LakeError, ValueError, OSError) as exc:
        raise _fail(exc) from None
    d = {
        k: getattr(rep, k)
        for k in ("n_patches", "n_text_rows", "bytes_written", "seconds", "out", "fmt")
    }
    _emit(
        d,
        as_json,
        f"wrote {rep.n_patches} pairs and {rep.n_text_rows} text rows "
        f"({rep.bytes_written / 1e6:.1f} MB, {rep.fmt}) to {rep.out} in {rep.seconds:.1f} s",
    )


@app.command()
def ingest(
    source: Annotated[
        Path, typer.Argument(help="Source folder: extracted folders, .tar.zst archives or an LMDB.")
    ],
    lake: LakeOpt = None,
    release: Annotated[str, typer.Option("--release", help="Name of the release to build.")] = "v1",
    kind: Annotated[
        str | None, typer.Option("--kind", help="folders | tar.zst | lmdb (default: detected)")
    ] = None,
    metadata: Annotated[
        Path | None,
        typer.Option("--metadata", help="The metadata parquet (default: SOURCE/metadata.parquet)."),
    ] = None,
    staging_dir: StagingDirOpt = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the shuffled write order.")] = 0,
    samples_per_shard: Annotated[
        int, typer.Option("--samples-per-shard", min=1, help="Pairs per shard.")
    ] = 256,
    scan_batch: Annotated[
        int, typer.Option("--scan-batch", min=1, help="Pairs per scan task (resume granularity).")
    ] = 256,
    cluster: ClusterOpt = "local",
    workers: WorkersOpt = None,
    worker_cores: WorkerCoresOpt = None,
    worker_memory: WorkerMemoryOpt = None,
    gateway_password: GatewayPasswordOpt = None,
    restart: Annotated[
        bool, typer.Option("--restart", help="Discard an unfinished ingest of this release.")
    ] = False,
    endpoint_url: EndpointOpt = None,
    key: KeyOpt = None,
    secret: SecretOpt = None,
    region: RegionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ingest a source into a new release of the lake (resumable; exit 3 if input was quarantined).

    SOURCE is a folder with the official extracted folders, the official .tar.zst archives, or the
    reference encoder's LMDB, next to metadata.parquet (and optionally BigEarthNet.txt.parquet).
    """
    from lake.layout import quarantine_path
    from pipelines.cli_options import cluster_spec
    from pipelines.ingest import IngestOptions
    from pipelines.ingest import ingest as run_ingest
    from pipelines.sources.open import open_source

    spec = _spec(lake, endpoint_url, key, secret, region)
    try:
        on = cluster_spec(cluster, workers, worker_cores, worker_memory, gateway_password)
        src = open_source(source, kind=kind, metadata_path=metadata, staging_dir=staging_dir)
        opts = IngestOptions(
            release=release,
            seed=seed,
            samples_per_shard=samples_per_shard,
            scan_batch=scan_batch,
            restart=restart,
            progress=not as_json,
        )
        rep = run_ingest(src, spec, opts, on)
    except LakeError as exc:
        raise _fail(exc) from None
    except _storage_errors() as exc:
        raise _fail_storage(spec, exc) from None
    report = _report_location(spec, quarantine_path(rep.release)) if rep.n_quarantined else None
    d = {
        **rep.to_dict(),
        "lake": spec.url,
        "source": str(source),
        "kind": src.kind,
        "quarantine_report": report,
    }
    state = "already published" if rep.already_published else f"in {rep.seconds:.1f} s"
    text = (
        f"release {rep.release} of {spec.url}: {rep.patches} pairs, "
        f"{rep.annotations} annotation rows, {rep.bytes / 1e6:.1f} MB, {state}"
        + (f" ({rep.patches / rep.seconds:.1f} pairs/s)" if rep.seconds else "")
    )
    if report:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(rep.quarantined.items()))
        text += f"\nquarantined {rep.n_quarantined} records ({reasons}); see {report}"
    _emit(d, as_json, text)
    if rep.n_quarantined:
        raise typer.Exit(EXIT_QUARANTINED)


@app.command()
def info(
    lake: LakeOpt = None,
    endpoint_url: EndpointOpt = None,
    key: KeyOpt = None,
    secret: SecretOpt = None,
    region: RegionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the lake's releases and what each holds."""
    from lake.reader import open_lake

    spec = _spec(lake, endpoint_url, key, secret, region)
    try:
        lk = open_lake(spec)
        rels = {}
        for name in lk.releases:
            m = lk.release(name).manifest
            rels[name] = {
                "counts": m["counts"],
                "bytes": m["total_bytes"],
                "objects": len(m["objects"]),
                "source": m["source"],
            }
        doc = {"lake": lk.spec.url, "current": lk.root.get("current"), "releases": rels}
    except LakeError as exc:
        raise _fail(exc) from None
    except _storage_errors() as exc:
        raise _fail_storage(spec, exc) from None
    lines = [f"lake {doc['lake']} (current release: {doc['current']})"]
    for name, r in rels.items():
        c = r["counts"]
        lines.append(
            f"  {name}: {c['patches']} pairs, {c['annotations'].get('total', 0)} annotation "
            f"rows, {r['objects']} objects, {r['bytes'] / 1e6:.1f} MB; "
            f"quarantined {c.get('quarantined') or 0}"
        )
    _emit(doc, as_json, "\n".join(lines))


@app.command()
def show(
    patch_id: Annotated[str, typer.Argument(help="The S2 patch id of the pair.")],
    out: Annotated[Path, typer.Option("--out", help="PNG to write.")] = Path("patch.png"),
    lake: LakeOpt = None,
    release: ReleaseOpt = None,
    endpoint_url: EndpointOpt = None,
    key: KeyOpt = None,
    secret: SecretOpt = None,
    region: RegionOpt = None,
) -> None:
    """Render a pair: true colour, SAR composite and reference map side by side."""
    from lake.reader import open_lake
    from lake.render import render_patch

    spec = _spec(lake, endpoint_url, key, secret, region)
    try:
        patch = open_lake(spec).release(release).patch(patch_id)
    except LakeError as exc:
        raise _fail(exc) from None
    except _storage_errors() as exc:
        raise _fail_storage(spec, exc) from None
    try:
        path = render_patch(patch, out)
    except OSError as exc:
        raise _fail(exc) from None
    typer.echo(path)


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
    from pipelines.embedded_s3 import EmbeddedS3, signals_interrupt

    server = EmbeddedS3(directory, port=port, buckets=bucket)
    with signals_interrupt():  # SIGTERM/SIGHUP stop rclone too instead of orphaning it
        try:
            endpoint = server.start()
            _announce(server, endpoint, bucket, as_json)
            while server.running:
                time.sleep(0.5)
        except LakeError as exc:
            raise _fail(exc) from None
        except KeyboardInterrupt:
            return
        finally:
            server.stop()
    raise _fail(S3ServerError(f"rclone serve s3 stopped on its own; see {server.log}"))


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


from pipelines.cli_sql import sql as _sql_command  # noqa: E402 (registered after the others)

app.command("sql")(_sql_command)


@app.command()
def train(
    lake: LakeOpt = None,
    task: Annotated[str, typer.Option("--task", help="labels (multi-label classification)")] = (
        "labels"
    ),
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Epochs over train.")] = 1,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Batch size.")] = 64,
    workers: Annotated[int, typer.Option("--workers", min=0, help="DataLoader workers.")] = 2,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda[:N]")] = "auto",
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate.")] = 3e-3,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the model and the order.")] = 0,
    release: ReleaseOpt = None,
    endpoint_url: EndpointOpt = None,
    key: KeyOpt = None,
    secret: SecretOpt = None,
    region: RegionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train a small multi-label CNN on the lake's stream; report validation mAP vs baseline."""
    from pipelines.train import train as run_train

    spec = _spec(lake, endpoint_url, key, secret, region)
    try:
        rep = run_train(
            spec,
            task=task,
            epochs=epochs,
            batch_size=batch_size,
            workers=workers,
            device=device,
            lr=lr,
            seed=seed,
            release=release,
            progress=not as_json,
            log=(lambda _: None) if as_json else typer.echo,
        )
    except LakeError as exc:
        raise _fail(exc) from None
    except _storage_errors() as exc:
        raise _fail_storage(spec, exc) from None
    if as_json:
        _emit(rep.to_dict(), True, "")


# The STAC catalog commands (pipelines/cli_catalog.py).
from pipelines.cli_catalog import catalog_build, search, serve  # noqa: E402

catalog_app = typer.Typer(help="The STAC catalog of a release.", no_args_is_help=True)
catalog_app.command("build")(catalog_build)
app.add_typer(catalog_app, name="catalog")
app.command("search")(search)
app.command("serve")(serve)

from pipelines.cli_gateway import gateway_app  # noqa: E402

app.add_typer(gateway_app, name="gateway")

from pipelines.cli_pipeline import pipeline_app  # noqa: E402

app.add_typer(pipeline_app, name="pipeline")


def main() -> None:
    """Entry point of the ``lake`` script."""
    app()


if __name__ == "__main__":
    main()
