"""The command-line options shared by every ``lake`` command (one definition each)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from pipelines.cluster import CLUSTER_HELP, ClusterSpec

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
    Optional[Path],  # noqa: UP045
    typer.Option(
        "--staging-dir",
        help="For .tar.zst sources: a writable local folder to stage the archives in (default "
        "SOURCE/.lake-staging; needed when SOURCE is read-only). It needs about 313 KB per "
        "pair, about 172 GB for the whole set; a finished stage there is reused.",
    ),
]

# Where pipeline jobs run (pipelines/cluster.py); `lake pipeline ...` and `lake ingest` use them.
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
    """The :class:`~pipelines.cluster.ClusterSpec` of the shared cluster options.

    Raises:
        ConfigError: A bad address, size or memory string (the message names the option).
    """
    return ClusterSpec(
        address, workers, worker_cores=cores, worker_memory=memory, password=password
    )
