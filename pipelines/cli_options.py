"""The command-line options shared by every ``lake`` command (one definition each)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

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
