"""Export a subset of a release, chosen by SQL or a STAC search, as a new lake or WebDataset.

* **lake**: the selected pairs (and their BigEarthNet.txt rows) become a release of a new lake.
  The release itself is read as a :class:`~pipelines.sources.lake.LakeSource` and fed to the
  ordinary ingest, so the new lake gets the same shards, tables, catalog and manifest, the same
  checks and the same resume.
* **webdataset**: ``shard-000000.tar`` ... of ``per_shard`` pairs each, one sample per pair
  (``<patch_id>.s2_10m.npy``, ``.s2_20m.npy``, ``.s2_60m.npy``, ``.s1.npy``,
  ``.reference_map.npy`` at native size and dtype, and ``<patch_id>.json`` with the pair's
  metadata), plus ``index.json`` (every shard with its size, sha256 and pairs). Written with
  webdataset's own ``TarWriter`` (``mtime=0``: a rerun writes the same bytes), so
  ``webdataset.WebDataset`` and any tar reader read them.

A lake export stages the selected pairs' BigEarthNet.txt rows in a private local folder
(``lake-export-*`` in ``TMPDIR``, removed at the end; one left by a killed export is removed by
the next export on the machine).

The target must be empty, or hold an earlier run of the same export (``export.json`` at its root
names the source, release, selection and format), which is then resumed: finished shards are
skipped. A finished export is not redone.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lake.bigearthnet import ARRAYS, TEXT_COLUMNS
from lake.config import StoreSpec
from lake.errors import ConfigError, QueryError
from lake.layout import check_release_name
from lake.lock import pid_alive
from lake.patchstore import array_of
from lake.reader import Lake, Release
from lake.storage import filesystem, read_json, sha256_bytes, write_bytes_atomic, write_json_atomic
from pipelines.cluster.runner import Runner
from pipelines.cluster.spec import ClusterSpec
from pipelines.sources.lake import LakeSource

Format = Literal["lake", "webdataset"]
FORMATS: tuple[Format, ...] = ("lake", "webdataset")
DEFAULT_CLUSTER = ClusterSpec()
MARKER = "export.json"
INDEX = "index.json"
WORK = "_export"
EXPORT_VERSION = 1
#: The local folders where a lake export stages the selected text rows (see staging_folder).
STAGING_PREFIX = "lake-export-"
STAGING_OWNER = "owner.json"
#: Metadata columns written into each WebDataset sample's ``.json``.
SAMPLE_COLUMNS = (
    "patch_id",
    "s1_name",
    "labels",
    "split",
    "country",
    "season",
    "tile",
    "s2_datetime",
    "s1_datetime",
    "contains_seasonal_snow",
    "contains_cloud_or_shadow",
    "epsg",
    "transform",
    "centre_lon",
    "centre_lat",
    "sample_index",
)


# ---------------------------------------------------------------- selection


def select_pairs(
    rel: Release, sql: str | None = None, search: Mapping[str, Any] | None = None
) -> list[str]:
    """The patch ids chosen by a SQL query or a STAC search, sorted.

    Args:
        rel: The release.
        sql: A read-only query over the lake's views returning a ``patch_id`` column.
        search: Arguments of :func:`catalog.search` (``bbox``, ``datetime``, ``filter``...).

    Raises:
        ConfigError: Neither or both of ``sql`` and ``search`` are given.
        QueryError: The query or search is invalid, not read-only, or selects nothing.
        ReadOnlyError: The query tries to write.
    """
    if (sql is None) == (search is None):
        raise ConfigError("choose the pairs to export with either --sql or a search, not both")
    if sql is not None:
        import duckdb

        from lake.sql.selection import selection

        what = f"the SQL query {sql!r}"
        try:
            ids = [str(i) for i in selection(rel.spec, sql, by="patch_id", release=rel.name)]
        except duckdb.Error as exc:
            raise QueryError(f"{what} was rejected: {exc}") from None
    else:
        from catalog.search import search as stac_search

        found: Any = stac_search(rel.spec, release=rel.name, as_arrow=True, **dict(search or {}))
        ids = [str(i) for i in found["id"].to_pylist()]
        what = f"the search {dict(search or {})}"
    if not ids:
        raise QueryError(
            f"{what} selects no pairs of release {rel.name!r} in {rel.spec.url}: nothing to export"
        )
    known = rel.sample_index
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise QueryError(f"{what} returns patch ids not in the release, e.g. {unknown[:3]}")
    return sorted(set(ids))


def stage_text(rel: Release, patch_ids: Sequence[str], folder: Path) -> str | None:
    """Write the pairs' annotation rows as a local BigEarthNet.txt parquet; None when none."""
    if not rel.manifest["counts"].get("annotations", {}).get("total"):
        return None
    table = rel.annotations(columns=list(TEXT_COLUMNS))
    keep = pc.is_in(table["patch_id"], value_set=pa.array(list(patch_ids), pa.string()))
    table = table.filter(keep).sort_by("ID")
    if table.num_rows == 0:
        return None
    path = folder / "BigEarthNet.txt.parquet"
    pq.write_table(table, path)
    return str(path)


@contextmanager
def staging_folder(parent: str | None = None) -> Iterator[Path]:
    """A private local folder for the export's staged text rows, removed when the block ends.

    It is ``lake-export-*`` in the temporary directory (``TMPDIR``) and holds an ``owner.json``
    (host, pid). An export killed with ``kill -9`` cannot remove its folder; the next export on
    this machine does (:func:`remove_stale_staging`), so copies of the annotations do not pile
    up in the temporary directory.

    Args:
        parent: Where to create it (the temporary directory when None).
    """
    parent = parent or tempfile.gettempdir()
    remove_stale_staging(parent)
    with tempfile.TemporaryDirectory(prefix=STAGING_PREFIX, dir=parent) as tmp:
        owner = {"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}
        (Path(tmp) / STAGING_OWNER).write_text(json.dumps(owner))
        yield Path(tmp)


def remove_stale_staging(parent: str, legacy_after: float = 86400.0) -> list[str]:
    """Remove the staging folders of exports that died (this host, their pid gone).

    Folders without an ``owner.json`` (written by older versions) are removed once they are
    ``legacy_after`` seconds old. Folders of other users or hosts are left alone.

    Returns:
        The folders removed.
    """
    removed = []
    for folder in sorted(Path(parent).glob(f"{STAGING_PREFIX}*")):
        try:
            if not folder.is_dir() or folder.stat().st_uid != os.getuid():
                continue
            try:
                owner = json.loads((folder / STAGING_OWNER).read_text())
            except FileNotFoundError:
                dead = time.time() - folder.stat().st_mtime > legacy_after
            else:
                pid = owner.get("pid")
                dead = (
                    owner.get("host") == socket.gethostname()
                    and isinstance(pid, int)
                    and not pid_alive(pid)
                )
            if dead:
                shutil.rmtree(folder)
                removed.append(str(folder))
        except (OSError, ValueError):
            continue  # removed meanwhile by another export, or unreadable: not ours to judge
    return removed


# ---------------------------------------------------------------- WebDataset shards


@dataclass(frozen=True)
class WdsShard:
    """One tar shard: its index and, per pair, the sample index and the ``.json`` metadata."""

    shard: int
    samples: tuple[tuple[int, str], ...]


def shard_name(shard: int) -> str:
    """The file name of a tar shard."""
    return f"shard-{shard:06d}.tar"


def write_wds_shard(
    job: WdsShard, spec: StoreSpec, release: str, target: StoreSpec
) -> dict[str, Any]:
    """Write one tar shard of the export (atomically) and its record; return the record."""
    import webdataset as wds  # type: ignore[import-untyped]

    group = Release(spec, release).group
    buf = io.BytesIO()
    with wds.TarWriter(buf, mtime=0.0) as sink:
        for index, meta in job.samples:
            info = json.loads(meta)
            sample: dict[str, Any] = {"__key__": info["patch_id"], "json": meta.encode()}
            for a in ARRAYS:
                sample[f"{a.name}.npy"] = np.asarray(array_of(group, a.name)[index])
            sink.write(sample)
    body = buf.getvalue()
    fs = filesystem(target)
    name = shard_name(job.shard)
    write_bytes_atomic(fs, target.path(name), body)
    record = {
        "shard": job.shard,
        "name": name,
        "size": len(body),
        "sha256": sha256_bytes(body),
        "samples": len(job.samples),
    }
    write_json_atomic(fs, target.path(WORK, f"{name}.json"), record)
    return record


def wds_jobs(rel: Release, patch_ids: Sequence[str], per_shard: int) -> list[WdsShard]:
    """The shards of a WebDataset export: pairs in the release's (shuffled) sample order."""
    t = rel.patches()
    keep = pc.is_in(t["patch_id"], value_set=pa.array(list(patch_ids), pa.string()))
    t = t.filter(keep).sort_by("sample_index")
    cols = [c for c in SAMPLE_COLUMNS if c in t.column_names]
    rows = t.select(cols).to_pylist()
    samples = [(int(r["sample_index"]), json.dumps(r, default=str, sort_keys=True)) for r in rows]
    return [
        WdsShard(k, tuple(samples[s : s + per_shard]))
        for k, s in enumerate(range(0, len(samples), per_shard))
    ]


# ---------------------------------------------------------------- the driver


@dataclass
class ExportReport:
    """What an export wrote.

    Attributes:
        format: ``lake`` or ``webdataset``.
        target: Where (URL).
        release: The source release.
        patches: Pairs exported.
        annotations: Text rows exported (lake format).
        shards: Shards written (tar shards, or the new lake's Zarr shards).
        bytes: Bytes written.
        resumed: Shards found done by an earlier run.
        already_done: The export was complete already: nothing was written.
        seconds: Wall time.
        dashboard: The Dask dashboard link, when there was one.
    """

    format: str
    target: str
    release: str
    patches: int = 0
    annotations: int = 0
    shards: int = 0
    bytes: int = 0
    resumed: int = 0
    already_done: bool = False
    seconds: float = 0.0
    dashboard: str | None = None
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def _check_target(target: StoreSpec, source: StoreSpec, marker: Mapping[str, Any]) -> bool:
    """Whether the target holds an earlier run of this export (else it must be empty).

    Raises:
        ConfigError: The target is the source lake or inside it, or holds anything else.
    """
    src, dst = source.url.rstrip("/") + "/", target.url.rstrip("/") + "/"
    if dst.startswith(src) or src.startswith(dst):
        raise ConfigError(
            f"export target {target.url} overlaps the source lake {source.url}: choose another"
        )
    fs = filesystem(target)
    root = target.path()
    if not fs.exists(root):
        return False
    if fs.exists(target.path(MARKER)) and read_json(fs, target.path(MARKER)) == dict(marker):
        return True
    found = sorted(fs.ls(root, detail=False))
    if found:
        shown = ", ".join(p.rsplit("/", 1)[-1] for p in found[:3])
        raise ConfigError(
            f"export target {target.url} is not empty (it holds {shown}"
            f"{', ...' if len(found) > 3 else ''}) and is no earlier run of this export: "
            "choose a new or empty folder or prefix"
        )
    return False


def export(
    spec: StoreSpec,
    target: StoreSpec,
    *,
    release: str | None = None,
    sql: str | None = None,
    search: Mapping[str, Any] | None = None,
    fmt: str = "lake",
    target_release: str | None = None,
    per_shard: int = 256,
    cluster: ClusterSpec = DEFAULT_CLUSTER,
    progress: bool = False,
    on_start: Callable[[Runner], None] | None = None,
) -> ExportReport:
    """Export the pairs chosen by ``sql`` or ``search`` to ``target``.

    Args:
        spec: The source lake.
        target: Where to write: a new (empty) folder or prefix.
        release: The source release (the current one when None).
        sql: A read-only query returning ``patch_id``.
        search: :func:`catalog.search` arguments (``bbox``, ``datetime``, ``filter``, ``ids``).
        fmt: ``lake`` (a new lake) or ``webdataset`` (tar shards).
        target_release: The new lake's release name (default: the source release's).
        per_shard: Pairs per shard (of the new lake, or per tar).
        cluster: Where the tasks run.
        progress: Show progress bars.
        on_start: Called with the runner once the cluster is up (WebDataset format).

    Raises:
        ConfigError: Unknown format, bad shard size, a target that is not empty or overlaps the
            source, neither or both of ``sql`` and ``search``.
        QueryError: The selection is invalid or selects nothing.
        ReleaseNotFound: No such release.
    """
    t0 = time.perf_counter()
    if fmt not in FORMATS:
        raise ConfigError(f"export format {fmt!r}: use one of {', '.join(FORMATS)}")
    if per_shard < 1:
        raise ConfigError(f"--per-shard must be at least 1, got {per_shard}")
    rel = Lake(spec).release(release)
    new_release = check_release_name(target_release or rel.name)
    ids = select_pairs(rel, sql, search)
    marker = {
        "export_version": EXPORT_VERSION,
        "format": fmt,
        "source": spec.url,
        "release": rel.name,
        "target_release": new_release,
        "per_shard": per_shard,
        "patches": len(ids),
        "selection_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
    }
    resuming = _check_target(target, spec, marker)
    fs = filesystem(target)
    if not resuming:
        write_json_atomic(fs, target.path(MARKER), marker)
    report = ExportReport(fmt, target.url, rel.name, len(ids))
    if fmt == "lake":
        _export_lake(rel, ids, target, new_release, per_shard, cluster, progress, report)
    else:
        _export_wds(rel, ids, target, per_shard, cluster, progress, report, on_start)
    report.seconds = time.perf_counter() - t0
    return report


def _export_lake(
    rel: Release,
    ids: list[str],
    target: StoreSpec,
    new_release: str,
    per_shard: int,
    cluster: ClusterSpec,
    progress: bool,
    report: ExportReport,
) -> None:
    from pipelines.jobs.ingest import IngestOptions, ingest

    with staging_folder() as tmp:
        source = LakeSource(rel.spec, rel.name, ids, stage_text(rel, ids, tmp))
        opts = IngestOptions(
            release=new_release,
            samples_per_shard=per_shard,
            scan_batch=per_shard,
            progress=progress,
        )
        rep = ingest(source, target, opts, cluster.with_store(rel.spec))
    report.annotations = rep.annotations
    report.bytes = rep.bytes
    report.shards = -(-rep.patches // per_shard)
    report.already_done = rep.already_published
    report.resumed = int(rep.resumed.get("shards", 0))
    report.files = ["lake.json", f"releases/{new_release}/manifest.json"]


def _export_wds(
    rel: Release,
    ids: list[str],
    target: StoreSpec,
    per_shard: int,
    cluster: ClusterSpec,
    progress: bool,
    report: ExportReport,
    on_start: Callable[[Runner], None] | None,
) -> None:
    fs = filesystem(target)
    jobs = wds_jobs(rel, ids, per_shard)
    report.shards = len(jobs)
    if fs.exists(target.path(INDEX)):
        index = read_json(fs, target.path(INDEX))
        report.already_done = True
        report.bytes = sum(s["size"] for s in index["shards"])
        report.files = [s["name"] for s in index["shards"]] + [INDEX]
        return
    records: dict[int, dict[str, Any]] = {}
    work = target.path(WORK)
    if fs.exists(work):
        for p in fs.find(work):
            r = read_json(fs, p)
            if fs.exists(target.path(r["name"])):
                records[int(r["shard"])] = r
    report.resumed = len(records)
    todo = [j for j in jobs if j.shard not in records]
    if todo:
        with Runner(cluster.with_store(rel.spec).with_store(target)) as runner:
            report.dashboard = runner.dashboard
            if on_start is not None:
                on_start(runner)
            for r in runner.map(
                write_wds_shard, todo, rel.spec, rel.name, target, desc="export", progress=progress
            ):
                records[int(r["shard"])] = r
    shards = [records[k] for k in sorted(records)]
    index = {
        "format": "webdataset",
        "source": rel.spec.url,
        "release": rel.name,
        "patches": len(ids),
        "members": [f"{a.name}.npy" for a in ARRAYS] + ["json"],
        "shards": shards,
    }
    write_json_atomic(fs, target.path(INDEX), index)
    fs.rm(work, recursive=True)
    report.bytes = sum(s["size"] for s in shards)
    report.files = [s["name"] for s in shards] + [INDEX]
