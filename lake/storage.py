"""The one module that builds storage clients from a :class:`~lake.config.StoreSpec`.

Everything else passes specs around; each process calls these functions itself, so no client
crosses a fork (s3fs/aiobotocore clients are not fork-safe). Within a process, fsspec's instance
cache gives one client per set of options, and drops its cache in a forked child. The clients
are Python's (fsspec filesystems, zarr stores, options for tools that take a URL); DuckDB
reaches the storage by itself, and its connections are opened by :mod:`lake.duck`.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import weakref
from typing import Any, Literal

import fsspec
import zarr.storage
from zarr.abc.store import Store

from lake.config import StoreSpec

#: botocore's default checksums break ranged GETs on non-AWS endpoints (rclone, MinIO).
_BOTOCORE_CONFIG = {
    "request_checksum_calculation": "when_required",
    "response_checksum_validation": "when_required",
}


def s3_options(
    spec: StoreSpec,
    *,
    asynchronous: bool = False,
    max_connections: int | None = None,
    retries: int | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``s3fs.S3FileSystem`` of this spec.

    Args:
        spec: The lake.
        asynchronous: For use inside a coroutine (zarr's ``FsspecStore``).
        max_connections: HTTP connection pool size (botocore's default is 10).
        retries: botocore's own retries (None: its default; 0: none, the caller retries).
        timeout: Connect and read timeout in seconds (None: botocore's 60 s).
    """
    client_kwargs: dict[str, Any] = {}
    if spec.endpoint_url:
        client_kwargs["endpoint_url"] = spec.endpoint_url
    if spec.region:
        client_kwargs["region_name"] = spec.region
    config: dict[str, Any] = dict(_BOTOCORE_CONFIG)
    if max_connections is not None:
        config["max_pool_connections"] = max_connections
    if retries is not None:
        config["retries"] = {"total_max_attempts": retries + 1, "mode": "standard"}
    if timeout is not None:
        config["connect_timeout"] = config["read_timeout"] = timeout
    opts: dict[str, Any] = {
        "client_kwargs": client_kwargs,
        "config_kwargs": config,
        "asynchronous": asynchronous,
    }
    if spec.with_credentials():
        opts["key"] = spec.key
        opts["secret"] = spec.secret
    return opts


def filesystem(spec: StoreSpec, **s3: Any) -> fsspec.AbstractFileSystem:
    """A synchronous fsspec filesystem for the spec's protocol.

    Args:
        spec: The lake.
        **s3: For S3 only: ``max_connections``, ``retries``, ``timeout`` (see :func:`s3_options`).
    """
    if spec.protocol == "s3":
        fs = fsspec.filesystem("s3", session=_shared_session("sync"), **s3_options(spec, **s3))
        _SYNC_S3.add(fs)
        return fs
    if spec.protocol == "memory":
        return fsspec.filesystem("memory")
    return fsspec.filesystem("file", auto_mkdir=True)


#: The aiobotocore sessions of this process's S3 clients, by kind (see ``_shared_session``).
_SESSIONS: dict[str, Any] = {}


def _shared_session(kind: Literal["sync", "async"]) -> Any:
    """One aiobotocore session for every S3 client of a kind, in the process and its forks.

    s3fs makes a session per filesystem unless given one, and a new session loads and parses
    botocore's endpoint and S3 service models again: 0.15 s per client here, against 0.03 s for
    a client of a session that has loaded them (0.05 s in a forked child). The loader builds a
    client to open a release and another to read shards, and each DataLoader worker builds its
    own, so a shared session takes most of that off the first batch. A session holds no
    connections (its clients do, and they are never shared across a fork: see the fork hook
    below), so a forked child keeps using it. A session is not made for threads, so there is
    one per thread that makes clients: synchronous s3fs clients are all created on fsspec's
    I/O thread, the asynchronous ones handed to zarr on zarr's.

    Its clients never send ``Expect: 100-continue`` (see :func:`_no_expect_continue`).
    """
    session = _SESSIONS.get(kind)
    if session is None:
        import aiobotocore.session  # type: ignore[import-untyped]

        session = _SESSIONS[kind] = aiobotocore.session.AioSession()
        session.get_component("event_emitter").register_last("before-call.s3", _no_expect_continue)
    return session


def _no_expect_continue(params: dict[str, Any], **_: Any) -> None:
    """Drop the ``Expect: 100-continue`` header botocore puts on every upload.

    With it, the client sends a PUT's headers and waits for ``100 Continue`` before the body.
    A server that refuses the PUT before reading the body must then answer at once; ``rclone
    serve s3`` (gofakes3) instead closes the body first, which waits for the body the client
    is holding back, so both wait forever: the time-series writes hung one run in five on
    concurrent PUTs into new folders, and a PUT below an existing object hangs every time
    (``tests/lake/test_storage.py``). Without the header the refusal comes back as an error
    that s3fs retries or raises, and a small PUT saves the round trip it waited for the 100.
    """
    params.get("headers", {}).pop("Expect", None)


def zarr_store(spec: StoreSpec, path: str, *, read_only: bool = False) -> Store:
    """A Zarr store for ``path`` below the lake root.

    Local folders use zarr's ``LocalStore``; S3 uses ``FsspecStore`` over an async s3fs.
    """
    full = spec.path(path)
    if spec.protocol == "file":
        return zarr.storage.LocalStore(full, read_only=read_only)
    if spec.protocol == "memory":
        from fsspec.implementations.asyn_wrapper import AsyncFileSystemWrapper

        fs = AsyncFileSystemWrapper(fsspec.filesystem("memory"), asynchronous=True)
    else:
        fs = fsspec.filesystem(
            "s3", session=_shared_session("async"), **s3_options(spec, asynchronous=True)
        )
        _ASYNC_S3.add(fs)
    return zarr.storage.FsspecStore(fs, path=full, read_only=read_only)


#: Async s3fs instances handed to zarr: their aiohttp sessions live on zarr's event loop and
#: s3fs does not close them at exit (it does for synchronous instances), so we do.
_ASYNC_S3: weakref.WeakSet[Any] = weakref.WeakSet()


def _forget_parent_clients() -> None:
    """In a forked child: never close the S3 clients inherited from the parent.

    s3fs closes a client when its instance is garbage-collected (a ``weakref.finalize``). In a
    child that would run on the child's event loop against the parent's connections: it removes
    the parent's sockets from the epoll set, which parent and child share after ``fork``. The
    parent's next request on such a connection then hears nothing until its read timeout (a
    15 s stall after every epoch of DataLoader workers). The child's own clients are new ones
    (fsspec drops its instance cache in a child); the inherited ones are left alone.
    """
    s3fs = __import__("sys").modules.get("s3fs.core")
    if s3fs is None:
        return
    # Kept alive to the end of the child: aiohttp's connector closes its connections when it is
    # collected (``__del__``), which would do the same harm as the finalizer.
    _INHERITED.extend([*s3fs.S3FileSystem._cache.values(), *_SYNC_S3, *_ASYNC_S3])
    close = s3fs.S3FileSystem.close_session
    for fin in list(weakref.finalize._registry):  # type: ignore[attr-defined]
        info = fin.peek()
        if info is not None and info[1] is close:
            fin.detach()
    _ASYNC_S3.clear()
    _SYNC_S3.clear()


#: S3 clients this process made with :func:`filesystem` (for the fork hook).
_SYNC_S3: weakref.WeakSet[Any] = weakref.WeakSet()
#: Clients inherited from the parent, never used or closed here (see the fork hook).
_INHERITED: list[Any] = []


os.register_at_fork(after_in_child=_forget_parent_clients)


@atexit.register
def _close_async_sessions() -> None:
    from zarr.core.sync import sync

    for fs in list(_ASYNC_S3):
        client = getattr(fs, "_s3", None)
        if client is not None:
            with contextlib.suppress(Exception):
                sync(client.close())


def storage_options(spec: StoreSpec) -> dict[str, Any]:
    """Fsspec ``storage_options`` for tools that take a URL (xarray, pandas, pyarrow)."""
    if spec.protocol != "s3":
        return {}
    opts = s3_options(spec)
    opts.pop("asynchronous")
    return opts


def storage_errors() -> tuple[type[BaseException], ...]:
    """What the clients built here raise when storage cannot be reached or refuses access.

    s3fs raises OSError subclasses (PermissionError for a wrong secret); botocore raises its own
    errors when the endpoint does not answer.
    """
    try:
        from botocore.exceptions import BotoCoreError  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover (s3fs brings botocore)
        return (OSError,)
    return (OSError, BotoCoreError)


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of some bytes."""
    return hashlib.sha256(data).hexdigest()


def one_get(fs: fsspec.AbstractFileSystem) -> dict[str, Any]:
    """Keyword arguments of ``cat_file`` that read a whole object with one request.

    s3fs sends a HEAD before a whole-object GET, to split objects above its block size into
    concurrent ranges, unless ``max_concurrency=1``; every other filesystem needs nothing.
    """
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return {"max_concurrency": 1} if protocol in ("s3", "s3a") else {}


def read_json(fs: fsspec.AbstractFileSystem, path: str) -> Any:
    """Read a JSON object (one GET on S3: no HEAD first)."""
    return json.loads(fs.cat_file(path, **one_get(fs)))


#: The name prefix of the temporary file of an atomic write (never an object of the lake).
TEMP_PREFIX = ".tmp-"


def new_file(directory: str, prefix: str = TEMP_PREFIX) -> tuple[int, str]:
    """Create a new, empty file with a unique name in ``directory``, open for writing.

    Unlike :func:`tempfile.mkstemp` (always 0600), the file's mode follows the process umask
    like any other file the lake writes (0644 under the usual 022), so a lake or cache folder
    shared with other users or service accounts stays readable by them once the file is
    renamed into place.

    Returns:
        The open file descriptor and the file's path.
    """
    import uuid

    while True:
        path = os.path.join(directory, f"{prefix}{uuid.uuid4().hex}")
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), path
        except FileExistsError:  # pragma: no cover (128 random bits)
            continue


def write_bytes_atomic(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Write an object so that readers see the old or the new bytes, never a partial file.

    Local files are written to a temporary name and renamed (their mode follows the umask, see
    :func:`new_file`); an S3 PUT is atomic by itself.
    """
    if fs.protocol in ("file", "local") or "file" in getattr(fs, "protocol", ()):
        directory = os.path.dirname(path)
        os.makedirs(directory, exist_ok=True)
        fd, tmp = new_file(directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return
    fs.pipe_file(path, data)


def write_json_atomic(fs: fsspec.AbstractFileSystem, path: str, obj: Any) -> bytes:
    """Write a JSON object atomically; returns the bytes written."""
    data = (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode()
    write_bytes_atomic(fs, path, data)
    return data
