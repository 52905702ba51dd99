"""What every ``lake`` command shares: its options, the spec builder, error handling and output.

A leaf of :mod:`pipelines.cli`: the command modules import it, it imports none of them.

* The options (``LakeOpt``, ``ClusterOpt``, ...): one definition each, so ``--help`` reads the
  same everywhere.
* :func:`spec_of`: the lake's :class:`~lake.config.StoreSpec` from ``--lake`` and the S3 options.
* :func:`errors`: the one way a command turns an error into ``error: ...`` on stderr and exit 1
  (a storage failure names the lake, the cause and the fix; no traceback).
* :func:`emit`: a JSON document (``--json``) or a line of text.

Exit status of every command: 0 success; 1 an error (the message says what and how to fix it);
2 bad usage; 3 ingest finished but quarantined some input (see the quarantine report).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Optional

import typer

from lake.config import StoreSpec, as_spec
from lake.errors import LakeError
from lake.storage import storage_errors
from pipelines.cluster.spec import CLUSTER_HELP, ClusterSpec

#: Exit status of an ingest that finished but quarantined some input.
EXIT_QUARANTINED = 3
#: The installed distribution (``lake --version``).


#: ``--progress/--no-progress`` of this invocation (None: decide by the terminal).
_progress: bool | None = None


def set_progress(choice: bool | None) -> None:
    """Record ``lake --progress/--no-progress`` (None: bars only when stderr is a terminal)."""
    global _progress
    _progress = choice


def show_progress(as_json: bool = False) -> bool:
    """Whether a command draws progress bars on stderr.

    Never with ``--json`` (a script reads the output); else as ``--progress/--no-progress``
    says; else only when stderr is a terminal (no carriage-return frames in logs and CI).
    """
    if as_json:
        return False
    if _progress is not None:
        return _progress
    return sys.stderr.isatty()


LakeOpt = Annotated[
    Optional[str],  # noqa: UP045 (typer needs Optional on 3.11)
    typer.Option(
        "--lake",
        help="Lake URL: a folder or s3://bucket/prefix (env LAKE_URL; default ./lake-data)",
    ),
]
EndpointOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--endpoint-url", help="S3 endpoint URL (env AWS_ENDPOINT_URL)"),
]
KeyOpt = Annotated[
    str | None, typer.Option("--key", help="S3 access key id (env AWS_ACCESS_KEY_ID)")
]
SecretOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--secret", help="S3 secret key (env AWS_SECRET_ACCESS_KEY)"),
]
RegionOpt = Annotated[Optional[str], typer.Option("--region", help="S3 region (env AWS_REGION)")]  # noqa: UP045
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON document instead of text.")]
ReleaseOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--release", help="Release (default: the current one)."),
]

StagingDirOpt = Annotated[
    Optional[str],  # noqa: UP045  (a str: an s3:// URL must survive, a Path would eat a slash)
    typer.Option(
        "--staging-dir",
        help="For .tar.zst sources: where to stage the archives (default SOURCE/.lake-staging; "
        "needed when SOURCE is read-only). A local folder holds an uncompressed stage (about "
        "313 KB per pair, 172 GB for the whole set); an s3:// URL compressed packs (about 233 KB "
        "per pair) that Gateway workers read. A finished stage there is reused.",
    ),
]

# Where pipeline jobs run (pipelines/cluster/); `lake pipeline ...` and `lake ingest` use them.
ClusterOpt = Annotated[
    str,
    typer.Option("--cluster", envvar="LAKE_CLUSTER", help=CLUSTER_HELP + " (env LAKE_CLUSTER)"),
]
WorkersOpt = Annotated[
    Optional[int],  # noqa: UP045
    typer.Option(
        "--workers",
        min=1,
        help="Workers: of a local cluster or thread pool (default one per core), or the number "
        "a Gateway cluster is scaled to (default 2).",
    ),
]
WorkerCoresOpt = Annotated[
    Optional[int],  # noqa: UP045
    typer.Option(
        "--worker-cores", min=1, help="Cores (threads) per worker: local and Gateway clusters."
    ),
]
WorkerMemoryOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--worker-memory",
        help="Memory per worker: local and Gateway clusters, e.g. 4GiB, 512MiB or 8GB.",
    ),
]
GatewayPasswordOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--gateway-password",
        envvar="LAKE_GATEWAY_PASSWORD",
        show_default=False,
        help="Password of the Dask Gateway (env LAKE_GATEWAY_PASSWORD; unset: dask-gateway's own "
        "config, e.g. DASK_GATEWAY__AUTH__KWARGS__PASSWORD).",
    ),
]


def cluster_spec(
    address: str,
    workers: int | None,
    cores: int | None,
    memory: str | None,
    password: str | None,
) -> ClusterSpec:
    """The :class:`~pipelines.cluster.spec.ClusterSpec` of the shared cluster options.

    Raises:
        ConfigError: A bad address, size or memory string (the message names the option).
    """
    return ClusterSpec(
        address, workers, worker_cores=cores, worker_memory=memory, password=password
    )


def fail(exc: BaseException) -> typer.Exit:
    """Print ``error: <exc>`` to stderr; the exit (status 1) to raise."""
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(1)


def spec_of(
    lake: str | None, endpoint: str | None, key: str | None, secret: str | None, region: str | None
) -> StoreSpec:
    """The lake's spec from ``--lake`` and the S3 options (else the environment).

    Raises:
        typer.Exit: A bad URL or option (the message says which).
    """
    try:
        return as_spec(lake, endpoint_url=endpoint, key=key, secret=secret, region=region)
    except LakeError as exc:
        raise fail(exc) from None


def fail_storage(spec: StoreSpec, exc: BaseException) -> typer.Exit:
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


@contextmanager
def errors(spec: StoreSpec | None = None, *also: type[BaseException]) -> Iterator[None]:
    """Turn the errors of a command's work into one line on stderr and exit status 1.

    Args:
        spec: The lake the work reads or writes: a storage failure then names it and says
            what to check (None: the error's own message only).
        *also: More exception types to report as plain errors (e.g. ``ValueError``).

    Example:
        >>> with errors(spec):  # doctest: +SKIP
        ...     report = run_job(spec)
    """
    plain: tuple[type[BaseException], ...] = (LakeError, *also)
    try:
        yield
    except typer.Exit:
        raise
    except plain as exc:
        raise fail(exc) from None
    except storage_errors() as exc:
        if spec is None:
            raise fail(exc) from None
        raise fail_storage(spec, exc) from None


def report_location(spec: StoreSpec, path: str) -> str:
    """Where an object of the lake is, as a user would type it (a path for local lakes)."""
    child = spec.child(path)
    return child.root if spec.protocol == "file" else child.url


def emit(obj: dict[str, Any], as_json: bool, text: str) -> None:
    """Print ``obj`` as JSON (``--json``), else ``text``."""
    typer.echo(json.dumps(obj, indent=1, default=str) if as_json else text)
