"""Export a subset of a release, chosen by SQL or a STAC search, in a lake or a trainer's format.

* **lake**: the selected pairs (and their BigEarthNet.txt rows) become a release of a new lake.
  The release itself is read as a :class:`~pipelines.sources.lake.LakeSource` and fed to the
  ordinary ingest, so the new lake gets the same shards, tables, catalog and manifest, the same
  checks and the same resume.
* **webdataset**: ``shard-000000.tar`` ... of ``per_shard`` pairs each, one sample per pair
  (``<patch_id>.s2_10m.npy``, ``.s2_20m.npy``, ``.s2_60m.npy``, ``.s1.npy``,
  ``.reference_map.npy`` at native size and dtype, and ``<patch_id>.json`` with the pair's
  metadata and, under ``"rows"``, its BigEarthNet.txt rows of the chosen tasks as
  :class:`lake.vlm.rows.TextRow` dicts in conversation order, boxes and points in
  ``--box-format``, ``pixel`` meaning pixels of the native 120 x 120 grid), plus ``index.json``
  (every shard with its size, sha256 and pairs). Written with webdataset's own ``TarWriter``
  (``mtime=0``: a rerun writes the same bytes), so ``webdataset.WebDataset`` and any tar reader
  read them.
* **llava**: conversations in the LLaVA / ShareGPT shape and RGB images
  (:mod:`pipelines.jobs.export_llava`).
* **hf**: Parquet that Hugging Face ``datasets`` loads, with an ``Image`` column
  (:mod:`pipelines.jobs.export_hf`).

``split`` keeps the pairs of one split (``bench``: the pairs with bench rows) and, for the text
the exports carry, the rows of that split; the VLM options (:class:`~pipelines.jobs.export_vlm.
VlmOptions`: tasks, box format, image size and format, one conversation per pair or per row) say
how the llava, hf and webdataset exports render text and images.

A lake export stages the selected pairs' BigEarthNet.txt rows in a private local folder
(``lake-export-*`` in ``TMPDIR``, removed at the end; one left by a killed export is removed by
the next export on the machine).

The target must be empty, or hold an earlier run of the same export (``export.json`` at its root
names the source, release, selection, format and options), which is then resumed: finished shards
or parts are skipped. A finished export is not redone; a rerun with other options is refused.
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
from pipelines.jobs.export_vlm import (
    NATIVE_SIZE,
    WORK,
    VlmOptions,
    check_split,
    require_text,
    rows_by_pair,
    text_rows,
    vlm_parts,
)
from pipelines.sources.lake import LakeSource

Format = Literal["lake", "webdataset", "llava", "hf"]
FORMATS: tuple[Format, ...] = ("lake", "webdataset", "llava", "hf")
DEFAULT_CLUSTER = ClusterSpec()
MARKER = "export.json"
INDEX = "index.json"
#: 2: the VLM formats and options, the split, and text rows in the WebDataset samples.
EXPORT_VERSION = 2
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
    """The patch ids chosen by a SQL query or a STAC search (every pair without either), sorted.

    Args:
        rel: The release.
        sql: A read-only query over the lake's views returning a ``patch_id`` column.
        search: Arguments of :func:`catalog.search` (``bbox``, ``datetime``, ``filter``...).

    Raises:
        ConfigError: Both ``sql`` and ``search`` are given.
        QueryError: The query or search is invalid, not read-only, or selects nothing.
        ReadOnlyError: The query tries to write.
    """
    if sql is not None and search is not None:
        raise ConfigError("choose the pairs to export with either --sql or a search, not both")
    if sql is None and search is None:
        return sorted(rel.sample_index)
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


def restrict_to_split(rel: Release, patch_ids: Sequence[str], split: str | None) -> list[str]:
    """The pairs of ``patch_ids`` in ``split`` (``bench``: those with rows of the bench split).

    Raises:
        ConfigError: An unknown split.
        QueryError: None of the pairs is in the split.
    """
    if check_split(split) is None:
        return list(patch_ids)
    if split == "bench":
        table = rel.annotations(split="bench", columns=["patch_id"])
        inside = set(table["patch_id"].to_pylist()) if table.num_columns else set()
    else:
        t = rel.patches(columns=["patch_id", "split"], filter=pc.field("split") == split)
        inside = set(t["patch_id"].to_pylist())
    kept = [p for p in patch_ids if p in inside]
    if not kept:
        raise QueryError(
            f"none of the {len(patch_ids)} selected pairs is in split {split!r} of release "
            f"{rel.name!r}: nothing to export (choose another --split or selection)"
        )
    return kept


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


def wds_jobs(
    rel: Release,
    patch_ids: Sequence[str],
    per_shard: int,
    rows: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
) -> list[WdsShard]:
    """The shards of a WebDataset export: pairs in the release's (shuffled) sample order.

    Args:
        rel: The release.
        patch_ids: The pairs.
        per_shard: Pairs per tar.
        rows: ``patch_id ->`` its text rows, written under ``"rows"`` in its ``.json`` (every
            sample gets the key, empty for a pair without rows).
    """
    t = rel.patches()
    keep = pc.is_in(t["patch_id"], value_set=pa.array(list(patch_ids), pa.string()))
    t = t.filter(keep).sort_by("sample_index")
    cols = [c for c in SAMPLE_COLUMNS if c in t.column_names]
    metas = t.select(cols).to_pylist()
    if rows is not None:
        for m in metas:
            m["rows"] = list(rows.get(str(m["patch_id"]), []))
    samples = [(int(r["sample_index"]), json.dumps(r, default=str, sort_keys=True)) for r in metas]
    return [
        WdsShard(k, tuple(samples[s : s + per_shard]))
        for k, s in enumerate(range(0, len(samples), per_shard))
    ]


# ---------------------------------------------------------------- the driver


@dataclass
class ExportReport:
    """What an export wrote.

    Attributes:
        format: ``lake``, ``webdataset``, ``llava`` or ``hf``.
        target: Where (URL).
        release: The source release.
        patches: Pairs exported.
        annotations: Text rows exported.
        conversations: LLaVA conversations (llava) or table rows (hf) written.
        shards: Shards written (tar shards, the new lake's Zarr shards, or llava/hf parts).
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
    conversations: int = 0
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
    if fs.exists(target.path(MARKER)):
        earlier = read_json(fs, target.path(MARKER))
        if earlier == dict(marker):
            return True
        if isinstance(earlier, dict) and earlier.get("source") == marker["source"]:
            shown = "; ".join(
                f"{k}: {a!r} there, {b!r} now" for k, a, b in _differences(earlier, dict(marker))
            )
            raise ConfigError(
                f"export target {target.url} is not empty: it holds an earlier export of this "
                f"lake with other options or selection ({shown}): rerun that export with the same "
                "options to resume it, or choose a new or empty folder or prefix"
            )
    found = sorted(fs.ls(root, detail=False))
    if found:
        shown = ", ".join(p.rsplit("/", 1)[-1] for p in found[:3])
        raise ConfigError(
            f"export target {target.url} is not empty (it holds {shown}"
            f"{', ...' if len(found) > 3 else ''}) and is no earlier run of this export: "
            "choose a new or empty folder or prefix"
        )
    return False


def _differences(
    earlier: Mapping[str, Any], now: Mapping[str, Any], prefix: str = ""
) -> list[tuple[str, Any, Any]]:
    """``(key, earlier value, value now)`` of every differing key; nested dicts key by key."""
    out = []
    for k in sorted({*earlier, *now}):
        a, b = earlier.get(k), now.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append((f"{prefix}{k}", a, b))
    return out


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
    split: str | None = None,
    vlm: VlmOptions | None = None,
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
        fmt: ``lake`` (a new lake), ``webdataset`` (tar shards), ``llava`` (conversations and
            images) or ``hf`` (Parquet for Hugging Face ``datasets``).
        target_release: The new lake's release name (default: the source release's).
        per_shard: Pairs per shard (of the new lake, per tar, or per llava/hf part).
        split: Keep the pairs of this split (``bench``: those with bench rows) and, in the
            webdataset, llava and hf formats, the text rows of this split.
        vlm: How the webdataset, llava and hf formats render text and images (defaults when
            None). A lake export copies text unchanged and takes none; a webdataset export
            takes only ``tasks`` and ``box_format`` (``pixel`` = the native 120 px grid).
        cluster: Where the tasks run.
        progress: Show progress bars.
        on_start: Called with the runner once the cluster is up (WebDataset format).

    Raises:
        ConfigError: Unknown format, split or VLM option, bad shard size, options the format does
            not take, a target that is not empty, holds this export with other options or
            overlaps the source, neither or both of ``sql`` and ``search``.
        QueryError: The selection is invalid or selects nothing; a llava or hf export of pairs
            without text rows (of the tasks and split).
        ReleaseNotFound: No such release.
    """
    t0 = time.perf_counter()
    if fmt not in FORMATS:
        raise ConfigError(f"export format {fmt!r}: use one of {', '.join(FORMATS)}")
    if per_shard < 1:
        raise ConfigError(f"--per-shard must be at least 1, got {per_shard}")
    opts = _vlm_options(fmt, vlm)
    check_split(split)
    rel = Lake(spec).release(release)
    new_release = check_release_name(target_release or rel.name)
    ids = restrict_to_split(rel, select_pairs(rel, sql, search), split)
    rows = None
    if opts is not None:
        rows = text_rows(rel, ids, opts.tasks, split)
        if fmt in ("llava", "hf"):
            require_text(rows, rel, fmt, opts.tasks, split)
    marker = {
        "export_version": EXPORT_VERSION,
        "format": fmt,
        "source": spec.url,
        "release": rel.name,
        "target_release": new_release,
        "per_shard": per_shard,
        "patches": len(ids),
        "selection_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
        "split": split,
        "options": None if opts is None else opts.to_dict(),
    }
    resuming = _check_target(target, spec, marker)
    fs = filesystem(target)
    if not resuming:
        write_json_atomic(fs, target.path(MARKER), marker)
    report = ExportReport(fmt, target.url, rel.name, len(ids))
    if fmt == "lake":
        _export_lake(rel, ids, target, new_release, per_shard, cluster, progress, report)
    elif fmt == "webdataset":
        assert opts is not None and rows is not None
        by_pair = rows_by_pair(rows, opts.box_format, NATIVE_SIZE)
        report.annotations = rows.num_rows
        _export_wds(rel, ids, target, per_shard, cluster, progress, report, on_start, by_pair)
    else:
        assert opts is not None and rows is not None
        _export_vlm(rel, fmt, rows, target, opts, per_shard, cluster, progress, report, on_start)
    report.seconds = time.perf_counter() - t0
    return report


def _vlm_options(fmt: str, vlm: VlmOptions | None) -> VlmOptions | None:
    """The checked VLM options of a format (None for the lake format).

    Raises:
        ConfigError: A bad option, or one the format does not take (named).
    """
    if fmt == "lake":
        if vlm is not None and vlm != VlmOptions():
            raise ConfigError(
                "the lake format copies the pairs and their text rows unchanged: --tasks, "
                "--box-format, --per, --image-size, --image-format and --with-arrays apply to the "
                "webdataset, llava and hf formats only"
            )
        return None
    opts = (vlm or VlmOptions()).check()
    if fmt == "hf" and opts.with_arrays:
        raise ConfigError(
            "--with-arrays applies to the llava format only: the hf export holds the RGB images "
            "and the text (the webdataset export carries every array at native size)"
        )
    if fmt == "webdataset":
        base = VlmOptions()
        unused = [
            option
            for option, field_ in (
                ("--image-size", "image_size"),
                ("--image-format", "image_format"),
                ("--per", "per"),
                ("--with-arrays", "with_arrays"),
            )
            if getattr(opts, field_) != getattr(base, field_)
        ]
        if unused:
            raise ConfigError(
                f"{', '.join(unused)} do(es) not apply to the webdataset format (one sample per "
                "pair with its native arrays): use --format llava or hf for rendered images"
            )
    return opts


def _export_vlm(
    rel: Release,
    fmt: str,
    rows: pa.Table,
    target: StoreSpec,
    opts: VlmOptions,
    per_part: int,
    cluster: ClusterSpec,
    progress: bool,
    report: ExportReport,
    on_start: Callable[[Runner], None] | None,
) -> None:
    from pipelines.jobs.export_hf import export_hf
    from pipelines.jobs.export_llava import export_llava

    parts = vlm_parts(rel, rows, per_part)
    run = export_llava if fmt == "llava" else export_hf
    index = run(rel, parts, target, opts, cluster, progress, on_start)
    report.patches = int(index["pairs"])
    report.annotations = int(index["rows"])
    report.conversations = int(
        index["conversations"]
        if fmt == "llava"
        else index["rows"]
        if opts.per == "row"
        else index["pairs"]
    )
    report.shards = len(index["parts"])
    report.bytes = int(index["bytes"])
    report.already_done = bool(index.get("already_done"))
    report.resumed = int(index.get("resumed", 0))
    report.dashboard = index.get("dashboard")
    report.files = [*index["files"], INDEX]


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
    rows: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
) -> None:
    fs = filesystem(target)
    jobs = wds_jobs(rel, ids, per_shard, rows)
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
        "text": "the json member's 'rows': the pair's BigEarthNet.txt rows (TextRow dicts)",
        "shards": shards,
    }
    write_json_atomic(fs, target.path(INDEX), index)
    fs.rm(work, recursive=True)
    report.bytes = sum(s["size"] for s in shards)
    report.files = [s["name"] for s in shards] + [INDEX]
