"""The notebooks' small lake: start or reuse an embedded S3 endpoint, build or reuse a lake on it.

Every notebook of ``notebooks/`` begins with :func:`start` and ends with :meth:`Tour.close`::

    from pipelines.showcase import tour

    t = tour.start("tour-data")      # endpoint up (or reused), lake built (or reused)
    release = lake.open_lake(t.spec).current
    ...
    t.close()                        # stops the endpoint if this call started it

The tour folder holds ``tour.json`` (what it is, and the endpoint serving it while one runs),
``s3/`` (the folder the endpoint serves: bucket ``lake``, lake ``s3://lake/tour``). The first
notebook builds the lake (a synthetic source of a few hundred real pairs, ingested on S3 in a few
seconds); the next ones find it and reuse it. A notebook that finds a live endpoint recorded in
``tour.json`` (another notebook's kernel, or a test session) reuses it and leaves it running;
the notebook that started an endpoint stops it. rclone also dies with the process that started it,
so a kernel that is killed leaves nothing running.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from catalog.server import ServerError
from lake.config import StoreSpec, store_spec
from lake.errors import ConfigError, LakeError, LayoutError
from lake.layout import ROOT_DOCUMENT, work_path
from pipelines.local.processes import die_with_parent as _die_with_parent
from pipelines.local.processes import environment_binary, free_port
from pipelines.local.s3 import EmbeddedS3, S3Endpoint

#: The marker and state file of a tour folder.
STATE_FILE: Final = "tour.json"
#: What ``tour.json`` says it is.
KIND: Final = "bigearthnet-lake-tour"
#: Pairs of a tour lake unless told otherwise (builds in about 5 s on 2 cores).
DEFAULT_PATCHES: Final = 200
#: Samples per shard of a tour lake: small, so that even a tiny lake has several shards.
SAMPLES_PER_SHARD: Final = 32
_SERVED: Final = "s3"
_SOURCE: Final = "source"


@dataclass
class Tour:
    """A small lake on an embedded S3 endpoint, ready for the notebooks.

    Attributes:
        folder: The tour folder.
        endpoint: How to reach the S3 endpoint.
        url: The lake's URL (``s3://lake/tour``).
        started_endpoint: Whether this tour started the endpoint (and so stops it on close).
        built: Whether this tour built the lake (False: an existing one was reused).
        seconds: Time spent starting and building.
    """

    folder: Path
    endpoint: S3Endpoint
    url: str
    started_endpoint: bool
    built: bool
    seconds: float
    _server: EmbeddedS3 | None = field(default=None, repr=False)

    @property
    def spec(self) -> StoreSpec:
        """How to open the lake (URL and credentials): pass it to every reader."""
        e = self.endpoint
        return store_spec(
            self.url,
            endpoint_url=e.endpoint_url,
            key=e.key,
            secret=e.secret,
            region=e.region,
            environ={},
        )

    @property
    def lake_folder(self) -> Path:
        """The folder on this disk that the endpoint serves as the lake's URL."""
        bucket, _, prefix = self.url[len("s3://") :].partition("/")
        return self.folder / _SERVED / bucket / prefix

    def cli_options(self) -> list[str]:
        """The ``lake`` command-line options that reach this lake (secret included)."""
        e = self.endpoint
        return [
            "--lake",
            self.url,
            "--endpoint-url",
            e.endpoint_url,
            "--key",
            e.key,
            "--secret",
            e.secret,
            "--region",
            e.region,
        ]

    @contextlib.contextmanager
    def stac_api(self, timeout: float = 60.0) -> Iterator[str]:
        """Run ``lake serve`` (the STAC API) over this lake on 127.0.0.1 while the block runs.

        Yields:
            The API's base URL, for ``pystac_client.Client.open``.

        Raises:
            ServerError: ``lake serve`` exited or did not answer within ``timeout`` seconds.
        """
        port = free_port()
        cmd = [_lake_command(), "serve", *self.cli_options(), "--port", str(port)]
        log = self.folder / f"lake-serve-{port}.log"
        with log.open("wb") as err:
            proc = subprocess.Popen(  # ends with this process even if it is killed
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_for(url + "/", proc, timeout, log)
            yield url
        finally:
            _stop(proc)
            log.unlink(missing_ok=True)

    def close(self) -> None:
        """Stop the endpoint if this tour started it (idempotent); the lake stays on disk."""
        if self._server is not None:
            self._server.stop()
            self._server.log.unlink(missing_ok=True)
            self._server = None
            _write_state(self.folder, None)

    def __enter__(self) -> Tour:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def start(
    folder: str | os.PathLike[str] = "tour-data",
    *,
    patches: int = DEFAULT_PATCHES,
    bucket: str = "lake",
    prefix: str = "tour",
    seed: int = 0,
    metadata: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> Tour:
    """Start or reuse the embedded S3 endpoint of ``folder``, and build or reuse its lake.

    Args:
        folder: The tour folder (created when missing; an existing one must be a tour folder).
        patches: Pairs of the synthetic source when the lake is built (ignored when reused).
        bucket: The bucket of the lake.
        prefix: The lake's prefix in the bucket (the lake is ``s3://<bucket>/<prefix>``).
        seed: Seed of the synthetic source and of the write order.
        metadata: The metadata parquet to draw pairs from (default: the official one).
        progress: Show progress bars while building.

    Returns:
        The :class:`Tour`; close it (or use it as a context manager) when done.

    Raises:
        ConfigError: ``patches`` below 1, a bad bucket or prefix, or ``folder`` is a file or a
            folder that is not a tour folder.
        LayoutError: The lake's folder exists but holds no lake (and no ingest to resume).
        S3ServerError: The endpoint could not be started.
    """
    started = time.perf_counter()
    if patches < 1:
        raise ConfigError(f"patches={patches}: a tour lake needs at least 1 pair")
    for name, value in (("bucket", bucket), ("prefix", prefix)):
        if not value or "/" in value or value.startswith("."):
            raise ConfigError(f"{name}={value!r}: use a plain name such as 'lake' or 'tour'")
    root = _tour_folder(Path(folder))
    url = f"s3://{bucket}/{prefix}"
    lake_dir = root / _SERVED / bucket / prefix
    needs_build = _check_lake_folder(lake_dir, url)
    (root / _SERVED / bucket).mkdir(parents=True, exist_ok=True)
    server: EmbeddedS3 | None = None
    endpoint = _live_endpoint(root, bucket)
    if endpoint is None:
        server = EmbeddedS3(root / _SERVED, buckets=[bucket])
        endpoint = server.start()
        _write_state(root, endpoint)
    tour = Tour(root, endpoint, url, server is not None, needs_build, 0.0, server)
    try:
        if needs_build:
            _build(tour, patches, seed, metadata, progress)
    except BaseException:
        tour.close()
        raise
    tour.seconds = time.perf_counter() - started
    return tour


def _tour_folder(folder: Path) -> Path:
    """The tour folder, created or checked; refuses a file or someone else's folder."""
    folder = folder.expanduser().resolve()
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"tour folder {folder} is a file; give a folder (it is created)")
    if folder.is_dir() and any(folder.iterdir()):
        state = _read_state(folder)
        if state is None:
            raise ConfigError(
                f"tour folder {folder} holds files but no {STATE_FILE}: it is not a tour folder; "
                "choose a new or empty folder"
            )
    folder.mkdir(parents=True, exist_ok=True)
    if _read_state(folder) is None:
        _write_state(folder, None)
    return folder


def _check_lake_folder(lake_dir: Path, url: str) -> bool:
    """Whether the lake must be built; refuses a folder that holds something else."""
    if not lake_dir.exists():
        return True
    if not lake_dir.is_dir():
        raise LayoutError(f"{lake_dir} (served as {url}) is a file, not a lake; remove it")
    if (lake_dir / ROOT_DOCUMENT).is_file():
        try:
            doc = json.loads((lake_dir / ROOT_DOCUMENT).read_text())
        except (OSError, ValueError) as exc:
            raise LayoutError(f"{lake_dir / ROOT_DOCUMENT} is not valid JSON ({exc})") from None
        if isinstance(doc, dict) and doc.get("current"):
            return False
    if (lake_dir / "_work").is_dir() or not any(lake_dir.iterdir()):
        return True  # an interrupted build resumes; an empty folder is built
    raise LayoutError(
        f"{lake_dir} (served as {url}) exists but is not a lake (no published release in "
        f"{ROOT_DOCUMENT}, no ingest to resume); remove it or give another folder or prefix"
    )


def _read_state(folder: Path) -> dict[str, Any] | None:
    path = folder / STATE_FILE
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("kind") == KIND else None


def _write_state(folder: Path, endpoint: S3Endpoint | None) -> None:
    """Record the endpoint serving the folder (None: none), readable by its owner only."""
    doc: dict[str, Any] = {"kind": KIND, "endpoint": None}
    if endpoint is not None:
        doc["endpoint"] = {
            "endpoint_url": endpoint.endpoint_url,
            "key": endpoint.key,
            "secret": endpoint.secret,
            "region": endpoint.region,
        }
    tmp = folder / (STATE_FILE + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f)
    tmp.replace(folder / STATE_FILE)


def _live_endpoint(folder: Path, bucket: str) -> S3Endpoint | None:
    """The endpoint recorded in the folder's state, if it answers with its credentials."""
    state = _read_state(folder) or {}
    rec = state.get("endpoint")
    if not isinstance(rec, dict):
        return None
    try:
        endpoint = S3Endpoint(
            endpoint_url=str(rec["endpoint_url"]),
            key=str(rec["key"]),
            secret=str(rec["secret"]),
            region=str(rec.get("region") or "us-east-1"),
        )
    except KeyError:
        return None
    if not _answers(endpoint.endpoint_url):
        return None
    from lake.storage import filesystem

    spec = store_spec(
        f"s3://{bucket}",
        endpoint_url=endpoint.endpoint_url,
        key=endpoint.key,
        secret=endpoint.secret,
        region=endpoint.region,
        environ={},
    )
    try:
        filesystem(spec).ls(bucket, refresh=True)
    except (OSError, ValueError):
        return None  # another server on that port now, or other keys
    return endpoint


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url + "/", timeout=2)
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


def _build(
    tour: Tour, patches: int, seed: int, metadata: str | os.PathLike[str] | None, progress: bool
) -> None:
    """Synthesize a source of ``patches`` real pairs and ingest it into the tour's lake."""
    with warnings.catch_warnings():  # tqdm.auto in a kernel without ipywidgets: no bars anyway
        warnings.filterwarnings("ignore", message="IProgress not found")
        from pipelines.cluster.spec import ClusterSpec
        from pipelines.jobs.ingest import IngestOptions, ingest
    from pipelines.sources.open import open_source
    from pipelines.synth import synthesize

    source = tour.folder / _SOURCE
    shutil.rmtree(source, ignore_errors=True)  # a half-written source of an interrupted build
    kwargs: dict[str, Any] = {"metadata_path": metadata} if metadata is not None else {}
    synthesize(patches, source, fmt="folders", seed=seed, progress=progress, **kwargs)
    options = IngestOptions(
        release="v1",
        seed=seed,
        samples_per_shard=SAMPLES_PER_SHARD,
        progress=progress,
        # an interrupted build's state belongs to a source written again since: start over
        restart=(tour.lake_folder / work_path("v1")).exists(),
    )
    ingest(open_source(source), tour.spec, options, ClusterSpec("threads"))
    shutil.rmtree(source, ignore_errors=True)


def _lake_command() -> str:
    """The ``lake`` script of this Python's environment."""
    return environment_binary(
        "lake",
        lambda: LakeError("the `lake` command was not found: install the project (`make venv`)"),
    )


def _wait_for(url: str, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    """Wait until ``lake serve`` answers at ``url``.

    Raises:
        ServerError: It exited (its last words are in the message) or did not answer in time.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            said = log.read_text(errors="replace").strip()[-500:]
            raise ServerError(f"lake serve exited with status {proc.returncode}: {said}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    _stop(proc)
    raise ServerError(f"lake serve did not answer at {url} within {timeout:.0f} s; see {log}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
