"""Where a lake is and how to reach it: the only module that reads environment variables.

A lake is a URL: a local folder (default ``./lake-data``) or ``s3://bucket/prefix``. S3 settings
come from explicit arguments first, then from the standard AWS environment variables
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlparse

from lake.errors import ConfigError

DEFAULT_LAKE_URL = "./lake-data"
SUPPORTED_PROTOCOLS = ("file", "s3", "memory")


@dataclass(frozen=True)
class StoreSpec:
    """How to open a lake: a picklable URL plus options, never an open client.

    Each process (Dask worker, DataLoader worker) builds its own clients from it with
    :mod:`lake.storage`, which keeps them fork-safe.

    Attributes:
        url: Normalised URL: ``file:///abs/path``, ``s3://bucket/prefix`` or ``memory://name``.
        endpoint_url: S3 endpoint (None means AWS).
        key: S3 access key id.
        secret: S3 secret key (never shown by ``repr``).
        region: S3 region.
    """

    url: str
    endpoint_url: str | None = None
    key: str | None = None
    secret: str | None = field(default=None, repr=False)
    region: str | None = None

    @property
    def protocol(self) -> str:
        """``file``, ``s3`` or ``memory``."""
        return self.url.split("://", 1)[0]

    @property
    def root(self) -> str:
        """The lake's root as an fsspec path (no protocol for local folders)."""
        if self.protocol == "file":
            return self.url[len("file://") :]
        if self.protocol == "memory":
            return "/" + self.url[len("memory://") :].strip("/")
        return self.url[len("s3://") :].rstrip("/")

    def child(self, *parts: str) -> StoreSpec:
        """The spec of a path inside this lake (same credentials)."""
        suffix = "/".join(p.strip("/") for p in parts if p)
        return replace(self, url=f"{self.url.rstrip('/')}/{suffix}")

    def path(self, *parts: str) -> str:
        """An fsspec path (no protocol) below the lake's root."""
        suffix = "/".join(p.strip("/") for p in parts if p)
        return f"{self.root.rstrip('/')}/{suffix}" if suffix else self.root

    def with_credentials(self) -> bool:
        """Whether explicit keys are set."""
        return bool(self.key and self.secret)


def normalise_url(url: str) -> str:
    """Turn a lake location into a canonical URL.

    Raises:
        ConfigError: The protocol is not supported or an S3 URL has no bucket.
    """
    if "://" not in url:
        return "file://" + str(Path(url).expanduser().resolve())
    parsed = urlparse(url)
    if parsed.scheme not in SUPPORTED_PROTOCOLS:
        raise ConfigError(
            f"lake URL {url!r}: protocol {parsed.scheme!r} is not supported; "
            f"use a local folder, s3://bucket/prefix or memory://name"
        )
    if parsed.scheme == "file":
        return "file://" + str(Path(parsed.path).resolve())
    if parsed.scheme == "s3" and not parsed.netloc:
        raise ConfigError(f"lake URL {url!r} has no bucket; use s3://bucket/prefix")
    return url.rstrip("/")


def store_spec(
    url: str | None = None,
    *,
    endpoint_url: str | None = None,
    key: str | None = None,
    secret: str | None = None,
    region: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> StoreSpec:
    """Build a :class:`StoreSpec` from arguments, falling back to the environment.

    Args:
        url: The lake URL; ``LAKE_URL`` or ``./lake-data`` when None.
        endpoint_url: S3 endpoint; ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` when None.
        key: Access key id; ``AWS_ACCESS_KEY_ID`` when None.
        secret: Secret key; ``AWS_SECRET_ACCESS_KEY`` when None.
        region: Region; ``AWS_REGION`` or ``AWS_DEFAULT_REGION`` when None.
        environ: The environment to read (``os.environ`` by default; tests inject their own).

    Raises:
        ConfigError: The URL is malformed, or only one of key and secret is given.
    """
    env = os.environ if environ is None else environ
    raw = url or env.get("LAKE_URL") or DEFAULT_LAKE_URL
    norm = normalise_url(raw)
    if not norm.startswith("s3://"):
        return StoreSpec(norm)
    endpoint = endpoint_url or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    key = key or env.get("AWS_ACCESS_KEY_ID")
    secret = secret or env.get("AWS_SECRET_ACCESS_KEY")
    region = region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if bool(key) != bool(secret):
        raise ConfigError(
            "S3 credentials are incomplete: set both the access key id and the secret key "
            "(--key/--secret or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
        )
    if endpoint and not urlparse(endpoint).scheme.startswith("http"):
        raise ConfigError(f"S3 endpoint {endpoint!r} must be an http:// or https:// URL")
    return StoreSpec(norm, endpoint_url=endpoint, key=key, secret=secret, region=region)


def as_spec(
    lake: str | os.PathLike[str] | StoreSpec | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    **s3: str | None,
) -> StoreSpec:
    """The one place a lake given as a URL, a path or a spec becomes a :class:`StoreSpec`.

    Every public entry point that takes a lake (``open_lake``, ``lake.connect``,
    ``LakeDataset``, ``open_catalog``, the CLI) calls this, so they all accept the same things
    and read the environment the same way.

    Args:
        lake: A folder, ``s3://bucket/prefix``, ``memory://name`` or a spec; ``LAKE_URL`` or
            ``./lake-data`` when None.
        environ: The environment to read (``os.environ`` by default).
        **s3: ``endpoint_url``, ``key``, ``secret``, ``region`` (None: from the environment).

    Raises:
        ConfigError: A malformed URL, incomplete credentials, an unknown S3 option, or S3
            options given together with a spec (which already holds them).
    """
    unknown = sorted(set(s3) - {"endpoint_url", "key", "secret", "region"})
    if unknown:
        raise ConfigError(
            f"unknown S3 option(s) {', '.join(unknown)}: use endpoint_url, key, secret, region"
        )
    if isinstance(lake, StoreSpec):
        given = sorted(k for k, v in s3.items() if v is not None)
        if given:
            raise ConfigError(
                f"S3 option(s) {', '.join(given)} given with a StoreSpec, which holds its own: "
                "pass the URL instead, or build the spec with them"
            )
        return lake
    return store_spec(None if lake is None else os.fspath(lake), environ=environ, **s3)


def env_flag(name: str, default: bool = False, environ: Mapping[str, str] | None = None) -> bool:
    """Read a boolean environment variable (``1``, ``true``, ``yes`` are true)."""
    env = os.environ if environ is None else environ
    value = env.get(name)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")
