"""Where a source's files are: a local folder, or a prefix on object storage (any fsspec URL).

A source on object storage (``s3://bucket/prefix`` with the lake's S3 options) lets the workers of
a Dask Gateway ingest without a shared disk: each worker reads the files it needs itself. The
location is a picklable :class:`~lake.config.StoreSpec` (URL plus credentials, never an open
client); :mod:`lake.storage` builds the client inside each process. Reads of several files go out
together (fsspec's ``cat`` / ``cat_ranges`` run them concurrently on s3fs's event loop), so a
pair costs one round trip, not fifteen.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

import fsspec

from lake.config import StoreSpec, store_spec
from lake.errors import ConfigError, SourceError
from lake.storage import filesystem, storage_errors


def is_url(location: str | os.PathLike[str]) -> bool:
    """Whether a source location is a URL (``s3://...``) rather than a local path."""
    return "://" in os.fspath(location) and not os.fspath(location).startswith("file://")


@dataclass(frozen=True)
class SourceFiles:
    """The files below a source root on object storage.

    Attributes:
        spec: The root as a lake-style spec: ``s3://bucket/prefix`` (or ``memory://name``) with
            the S3 endpoint and credentials to read it.
    """

    spec: StoreSpec

    @classmethod
    def of(cls, url: str, like: StoreSpec | None = None) -> SourceFiles:
        """The files below ``url``, read with the S3 options of ``like`` (e.g. the lake's).

        Raises:
            SourceError: The URL is malformed or of a protocol the lake does not read.
        """
        try:
            if like is None or like.protocol != "s3":
                spec = store_spec(url, environ=os.environ)
            else:
                spec = store_spec(
                    url,
                    endpoint_url=like.endpoint_url,
                    key=like.key,
                    secret=like.secret,
                    region=like.region,
                )
        except ConfigError as exc:
            raise SourceError(f"source {url!r}: {exc}") from None
        return cls(spec)

    @property
    def url(self) -> str:
        """The root URL."""
        return self.spec.url

    def fs(self) -> fsspec.AbstractFileSystem:
        """This process's client."""
        return filesystem(self.spec, retries=3, timeout=60)

    def path(self, rel: str) -> str:
        """The fsspec path (no protocol) of a file below the root."""
        return self.spec.path(rel)

    def name(self, rel: str) -> str:
        """How errors name a file: its URL."""
        return f"{self.spec.url.rstrip('/')}/{rel.strip('/')}" if rel else self.spec.url

    def read(self, rel: str) -> bytes:
        """The bytes of one file.

        Raises:
            FileNotFoundError: It does not exist.
            SourceError: The storage cannot be reached or refuses access.
        """
        value = self.read_many([rel])[rel]
        if isinstance(value, Exception):
            raise value
        return value

    def read_many(self, rels: Sequence[str]) -> dict[str, bytes | Exception]:
        """The bytes of several files, fetched together; a missing one maps to its error.

        Raises:
            SourceError: The storage cannot be reached or refuses access.
        """
        paths = [self.path(r) for r in rels]
        got = self._call("cat", paths, on_error="return")
        out: dict[str, bytes | Exception] = {}
        for rel, p in zip(rels, paths, strict=True):
            value = got.get(p, FileNotFoundError(p)) if isinstance(got, dict) else got
            self._reraise_access(value, rel)
            out[rel] = value
        return out

    def read_heads(self, rels: Sequence[str], nbytes: int) -> dict[str, bytes | Exception]:
        """The first ``nbytes`` of several files, fetched together (ranged GETs).

        Raises:
            SourceError: The storage cannot be reached or refuses access.
        """
        paths = [self.path(r) for r in rels]
        got = self._call("cat_ranges", paths, [0] * len(paths), [nbytes] * len(paths))
        out: dict[str, bytes | Exception] = {}
        for rel, value in zip(rels, got, strict=True):
            self._reraise_access(value, rel)
            out[rel] = value
        return out

    def read_ranges(
        self, paths: Sequence[str], starts: Sequence[int], ends: Sequence[int]
    ) -> list[bytes | Exception]:
        """Byte ranges of several files (fsspec paths), fetched together.

        Raises:
            SourceError: The storage cannot be reached or refuses access.
        """
        got = self._call("cat_ranges", list(paths), list(starts), list(ends))
        for value in got:
            self._reraise_access(value, "")
        return list(got)

    def open(self, rel: str, block_size: int = 8 << 20) -> BinaryIO:
        """A forward-reading stream of one file (read ahead in blocks of ``block_size``)."""
        return self._call("open", self.path(rel), "rb", block_size=block_size)

    def info(self, rel: str) -> dict[str, Any] | None:
        """The file's listing entry (size, ETag...), or None when it does not exist."""
        try:
            return self._call("info", self.path(rel))
        except FileNotFoundError:
            return None

    def stamp(self, rel: str) -> str:
        """A change detector for one file: ``size:ETag`` (or ``size:mtime``), or ``missing``."""
        info = self.info(rel)
        if info is None:
            return "missing"
        tag = info.get("ETag") or info.get("mtime") or info.get("LastModified") or ""
        return f"{info.get('size')}:{str(tag).strip(chr(34))}"

    def isdir(self, rel: str) -> bool:
        """Whether ``rel`` is a folder (a common prefix on object storage)."""
        return bool(self._call("isdir", self.path(rel)))

    def isfile(self, rel: str) -> bool:
        """Whether ``rel`` is a file."""
        return bool(self._call("isfile", self.path(rel)))

    def subdirs(self, rel: str) -> list[tuple[str, str]]:
        """``(name, rel path)`` of the folders directly below ``rel`` (none when it is absent)."""
        try:
            entries = self._call("ls", self.path(rel), detail=True)
        except FileNotFoundError:
            return []
        base = self.spec.path().rstrip("/") + "/"
        out = []
        for e in entries:
            if e.get("type") == "directory":
                full = str(e["name"]).rstrip("/")
                out.append((full.rsplit("/", 1)[-1], full[len(base) :]))
        return sorted(out)

    def check_reachable(self) -> None:
        """Fail early, naming the URL, when the root does not exist or cannot be read.

        Raises:
            SourceError: No such bucket or prefix, or the storage refuses the credentials.
        """
        if not self._call("exists", self.spec.path()):
            raise SourceError(
                f"{self.url}: source does not exist (no object below this prefix); check the "
                "bucket and prefix, and that --endpoint-url points at the storage that holds it"
            )

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call the client, turning refusals and unreachable storage into a SourceError."""
        try:
            return getattr(self.fs(), method)(*args, **kwargs)
        except FileNotFoundError:
            raise
        except storage_errors() as exc:
            raise SourceError(self._access_message(exc)) from None

    def _reraise_access(self, value: object, rel: str) -> None:
        if (
            isinstance(value, Exception)
            and not isinstance(value, FileNotFoundError)
            and isinstance(value, storage_errors())
        ):
            raise SourceError(self._access_message(value, rel))

    def _access_message(self, exc: BaseException, rel: str = "") -> str:
        what = self.name(rel)
        return (
            f"{what}: cannot read the source ({type(exc).__name__}: {exc}); check the endpoint "
            "(--endpoint-url) and the credentials (--key/--secret or AWS_ACCESS_KEY_ID/"
            "AWS_SECRET_ACCESS_KEY), which are the lake's"
        )
