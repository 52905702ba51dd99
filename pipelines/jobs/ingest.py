"""Ingest: a BigEarthNet source in, a published lake release out; resumable and idempotent.

Steps (each resumable from the state kept under ``_work/<release>/`` in the lake):

1. **scan**: check every pair of the metadata from its files' headers (no pixel is decoded) in
   batches, in parallel; record the valid pairs (with their georeference) and the rejected
   ones. Batches already scanned are skipped on a rerun.
2. **plan**: shuffle the valid pairs with the seed: position = ``sample_index``. The plan is a
   pure function of the scan results (and of the late rejections, below) and the seed, so a
   rerun derives the same one.
3. **write**: each task decodes its pairs (the only decode of each pair) and writes one whole
   shard of every array (no read-modify-write), hashing each object as it is encoded (nothing
   is read back). Shards already done are skipped. A pair whose pixels fail where its headers
   passed (values that are not finite, data that does not decode) is a *late rejection*: its
   shard is not written, and the plan is derived again without it (every shard is rewritten:
   rare, and the result is the one a scan that had caught it would give).
4. **tables**: the ``patches`` table and the ``annotations`` dataset (partitioned by split).
5. **catalog**: the STAC catalog (``stac/<release>/``) built from the tables and the shards.
6. **publish**: the quarantine report, the manifest of every object, then ``lake.json``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from catalog.build import build_catalog
from lake.codecs import DEFAULT_CODECS, CodecSet, check_codec_set
from lake.config import StoreSpec
from lake.errors import BadInput, LayoutError, PublishConflict, SourceError
from lake.layout import (
    LAYOUT_VERSION,
    check_release_name,
    ingest_lock_path,
    patches_path,
    quarantine_path,
    work_path,
)
from lake.lock import ObjectLock
from lake.patchstore import create_group, shard_object_keys, write_shard
from lake.release import (
    ObjectEntry,
    publish,
    read_json,
    read_manifest,
    read_root,
)
from lake.storage import filesystem, write_json_atomic
from lake.tables import write_patches_table
from pipelines.cluster.runner import Runner
from pipelines.cluster.spec import ClusterSpec
from pipelines.jobs.annotations import write_annotations
from pipelines.sources.base import Rejected, Source, read_batch, scan_batch

WORK_VERSION = 1
#: Pairs a write task fetches together (a source on object storage: 15 GETs in flight per pair).
READ_BATCH = 32


@dataclass(frozen=True)
class IngestOptions:
    """How to ingest.

    Attributes:
        release: Name of the release to build.
        seed: Seed of the shuffled write order.
        samples_per_shard: Pairs per shard.
        scan_batch: Pairs per scan task.
        make_current: Make the new release the lake's current one.
        restart: Discard the state of an unfinished ingest of this release first.
        progress: Show progress bars.
        codecs: ``pcodec`` (the default, the smallest) or ``portable`` (Zarr v3 core codecs
            only, for readers without the pcodec package: GDAL, tensorstore, zarrita.js).
    """

    release: str = "v1"
    seed: int = 0
    samples_per_shard: int = 256
    scan_batch: int = 256
    make_current: bool = True
    restart: bool = False
    progress: bool = True
    codecs: CodecSet = DEFAULT_CODECS

    def __post_init__(self) -> None:
        check_codec_set(self.codecs)

    def parameters(self) -> dict[str, Any]:
        """What must match for a rerun to resume (and for the result to be identical)."""
        return {
            "seed": self.seed,
            "samples_per_shard": self.samples_per_shard,
            "scan_batch": self.scan_batch,
        }


@dataclass
class IngestReport:
    """What an ingest built.

    Attributes:
        release: The release name.
        patches: Pairs in the release.
        annotations: Text rows in the release.
        quarantined: Rejected records by reason.
        bytes: Bytes of the release's objects.
        seconds: Wall time of this run.
        resumed: Steps that were found done and skipped.
        already_published: The release was already published: nothing was done.
    """

    release: str
    patches: int = 0
    annotations: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    bytes: int = 0
    seconds: float = 0.0
    resumed: dict[str, int] = field(default_factory=dict)
    already_published: bool = False

    @property
    def n_quarantined(self) -> int:
        """Total rejected records."""
        return sum(self.quarantined.values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (with throughput)."""
        d = asdict(self)
        d["patches_per_second"] = round(self.patches / self.seconds, 1) if self.seconds else None
        return d


# ---------------------------------------------------------------- tasks (run on workers)


def scan_task(batch: tuple[int, list[tuple[str, str]]], source: Source) -> dict[str, Any]:
    """Check a batch of pairs from their headers; return the valid ones and the rejections."""
    index, rows = batch
    ok: list[list[Any]] = []
    rejected: list[dict[str, Any]] = []
    for (patch_id, _), header in zip(rows, scan_batch(source, rows), strict=True):
        if isinstance(header, BadInput):
            rejected.append(asdict(Rejected.of(header, patch_id)))
            continue
        ok.append([patch_id, header.epsg, list(header.transform)])
    return {
        "batch": index,
        "first": rows[0][0],
        "last": rows[-1][0],
        "ok": ok,
        "rejected": rejected,
    }


@dataclass(frozen=True)
class ShardJob:
    """One shard to write: its index, first sample, and the pairs in sample order."""

    shard: int
    start: int
    rows: tuple[tuple[str, str], ...]


def write_shard_task(
    job: ShardJob, source: Source, spec: StoreSpec, release: str
) -> dict[str, Any]:
    """Decode the pairs of one shard, write every array's shard, return the objects' checksums.

    The checksums are those of the bytes handed to the store (:func:`lake.patchstore.
    write_shard`), so no object is read back. A pair that fails to decode is returned in
    ``rejected`` and the shard is not written (the driver plans again without it).

    Raises:
        LayoutError: The write needed a read (a partial shard) or missed an object.
    """
    stacks: dict[str, list[np.ndarray]] = {}
    rejected: list[dict[str, Any]] = []
    for start in range(0, len(job.rows), READ_BATCH):
        rows = job.rows[start : start + READ_BATCH]
        for (patch_id, _), pair in zip(rows, read_batch(source, rows), strict=True):
            if isinstance(pair, BadInput):
                rejected.append(asdict(Rejected.of(pair, patch_id)))
                continue
            for name, values in pair.stacked().items():
                stacks.setdefault(name, []).append(values)
    if rejected:
        return {"shard": job.shard, "objects": [], "rejected": rejected}
    arrays: dict[str, np.ndarray] = {k: np.stack(v) for k, v in stacks.items()}
    arrays["patch_id"] = np.array([r[0] for r in job.rows], dtype=object)
    arrays["s1_name"] = np.array([r[1] for r in job.rows], dtype=object)
    written, reads = write_shard(spec, release, job.start, arrays)
    keys = shard_object_keys(patches_path(release), job.shard)
    if reads or sorted(written) != sorted(keys):
        raise LayoutError(
            f"{spec.url}: writing shard {job.shard} of release {release!r} read {reads} time(s) "
            f"and wrote {sorted(written)} instead of {keys}; a shard must be written whole, "
            "once: rerun with --restart"
        )
    entries = [ObjectEntry(k, *written[k]) for k in keys]
    return {"shard": job.shard, "objects": [asdict(e) for e in entries], "rejected": []}


# ---------------------------------------------------------------- the driver


class _WorkState:
    """The resumable state of one release's ingest, kept in the lake under ``_work/``."""

    def __init__(self, spec: StoreSpec, release: str) -> None:
        self.spec = spec
        self.fs = filesystem(spec)
        self.base = spec.path(work_path(release))

    def path(self, *parts: str) -> str:
        return "/".join([self.base, *parts])

    def read(self, *parts: str) -> Any | None:
        p = self.path(*parts)
        return read_json(self.fs, p) if self.fs.exists(p) else None

    def write(self, obj: Any, *parts: str) -> None:
        write_json_atomic(self.fs, self.path(*parts), obj)

    def listing(self, *parts: str) -> dict[str, Any]:
        """Every JSON document in a folder of the state, by file name."""
        folder = self.path(*parts)
        if not self.fs.exists(folder):
            return {}
        return {
            p.rsplit("/", 1)[-1]: read_json(self.fs, p)
            for p in self.fs.find(folder)
            if p.endswith(".json")
        }

    def clear(self) -> None:
        if self.fs.exists(self.base):
            self.fs.rm(self.base, recursive=True)


def plan_order(valid: Sequence[str], seed: int) -> np.ndarray:
    """The shuffled write order: ``order[k]`` is the index (into ``valid``) of sample ``k``."""
    return np.random.default_rng(seed).permutation(len(valid))


def ingest(
    source: Source,
    spec: StoreSpec,
    options: IngestOptions | None = None,
    cluster: ClusterSpec | None = None,
) -> IngestReport:
    """Ingest a source into a new release of the lake at ``spec``.

    Rerunning after a crash resumes; rerunning after success does nothing.

    Two ingests of one release never run at once: the second stops at once with "another
    ingest of this release is running" (the lock ``_work/<release>.lock``, see
    :mod:`lake.lock`; a lock of a killed ingest on this machine is broken at once, one of
    another machine after :data:`lake.lock.STALE_SECONDS` without its heartbeat).

    Raises:
        PublishConflict: The release exists with other content, an unfinished ingest of it
            from another source or with other parameters is in the lake (use ``restart``), or
            another ingest of it is running.
        SourceError: The source cannot be read at all.
    """
    t0 = time.perf_counter()
    options = options or IngestOptions()
    cluster = cluster or ClusterSpec()
    release = check_release_name(options.release)
    report = IngestReport(release=release)
    fingerprint = {"kind": source.kind, "fingerprint": source.fingerprint()}
    if _already_published(spec, release, fingerprint, report):
        return report
    lock = _ingest_lock(spec, release)
    try:
        if _already_published(spec, release, fingerprint, report):  # one just finished
            return report
        return _ingest_locked(source, spec, options, cluster, report, fingerprint, t0)
    finally:
        lock.release()


def _ingest_lock(spec: StoreSpec, release: str) -> ObjectLock:
    """Take the release's ingest lock, or say that another ingest of it is running.

    Raises:
        PublishConflict: Another ingest of this release holds the lock.
    """
    lock = ObjectLock(
        spec, ingest_lock_path(release), what=f"it ingests release {release!r}", heartbeat=True
    )
    if not lock.try_acquire():
        raise PublishConflict(
            f"another ingest of release {release!r} is running in {spec.url} "
            f"({lock.describe_holder()}); wait for it to finish (a rerun then does nothing), or, "
            f"if it died on another machine, rerun after {lock.stale_after:.0f} s or delete "
            f"{spec.url}/{ingest_lock_path(release)}"
        )
    return lock


def _ingest_locked(
    source: Source,
    spec: StoreSpec,
    options: IngestOptions,
    cluster: ClusterSpec,
    report: IngestReport,
    fingerprint: Mapping[str, Any],
    t0: float,
) -> IngestReport:
    """The steps of :func:`ingest`, under the release's ingest lock."""
    release = report.release
    state = _WorkState(spec, release)
    if options.restart:
        state.clear()
    header = {
        "work_version": WORK_VERSION,
        "source": fingerprint,
        "parameters": options.parameters(),
    }
    previous = state.read("state.json")
    if previous is not None and previous != header:
        raise PublishConflict(
            f"an unfinished ingest of release {release!r} in {spec.url} used another source or "
            f"other parameters ({previous}); rerun with --restart to discard it"
        )
    state.write(header, "state.json")

    with Runner(cluster.with_store(spec)) as runner:
        # Staging (tar.zst) runs on the cluster too: one task per archive not staged yet.
        source.prepare(progress=options.progress, runner=runner)
        checked = source.checked_metadata()  # bad rows are quarantined, not fatal
        meta = checked.table
        ids, s1_names = meta.column("patch_id").to_pylist(), meta.column("s1_name").to_pylist()
        rows = list(zip(ids, s1_names, strict=True))
        scans = _scan(runner, source, rows, options, state, report)
        scanned_ids, georef, rejected = _collect(scans, rows)
        rejected[:0] = [asdict(r) for r in checked.rejected]
        rejected.extend(asdict(r) for r in source.orphans(*checked.names()))
        s1_of = dict(rows)
        late: list[dict[str, Any]] = state.read("late.json") or []
        while True:  # once, unless a pair's pixels fail where its headers passed (rare)
            dropped = {r["patch_id"] for r in late}
            valid_ids = [pid for pid in scanned_ids if pid not in dropped]
            if not valid_ids:
                raise SourceError(_nothing_valid(source, [*rejected, *late]))
            order = plan_order(valid_ids, options.seed)
            ordered = [valid_ids[i] for i in order]
            entries, found = _write_shards(
                runner, source, spec, ordered, s1_of, options, state, report
            )
            if not found:
                break
            late = sorted([*late, *found], key=lambda r: (str(r["patch_id"]), str(r["subject"])))
            state.write(late, "late.json")
        report.resumed["late_rejections"] = len(late)
        rejected.extend(late)
    sample_index = {pid: k for k, pid in enumerate(ordered)}
    write_patches_table(spec, release, meta, sample_index, georef, options.samples_per_shard)
    text_rejected, text_counts = write_annotations(source, spec, release, meta, sample_index)
    rejected.extend(_relabel_quarantined_rows(text_rejected, checked.rejected))
    _write_quarantine(spec, release, rejected, report)
    # The STAC catalog, from the tables just written; before the manifest so it is listed there.
    entries = {**entries, **build_catalog(spec, release, entries)}
    counts = {
        "patches": len(ordered),
        "annotations": text_counts,
        "quarantined": report.quarantined,
    }
    from lake.index import write_index  # one object readers open the release with (1 GET)
    from lake.release import build_manifest

    write_index(spec, release, counts)
    manifest = build_manifest(
        spec,
        release,
        entries,
        counts=counts,
        source=fingerprint,
        parameters={**options.parameters(), "layout": f"v{LAYOUT_VERSION}"},
    )
    publish(spec, release, manifest, make_current=options.make_current)
    state.clear()
    report.patches = len(ordered)
    report.annotations = int(text_counts.get("total", 0))
    report.bytes = int(manifest["total_bytes"])
    report.seconds = time.perf_counter() - t0
    return report


def _relabel_quarantined_rows(
    text_rejected: list[dict[str, Any]], meta_rejected: Sequence[Rejected]
) -> list[dict[str, Any]]:
    """Text rows of a pair whose metadata row was quarantined are ``patch_quarantined``."""
    bad_rows = {r.patch_id for r in meta_rejected if r.patch_id is not None}
    return [
        {**r, "reason": "patch_quarantined", "detail": "its metadata row was quarantined"}
        if r.get("reason") == "unknown_patch" and r.get("patch_id") in bad_rows
        else r
        for r in text_rejected
    ]


def _nothing_valid(source: Source, rejected: Sequence[Mapping[str, Any]]) -> str:
    """The message when every pair of a source was rejected (nothing is published)."""
    reasons: dict[str, int] = {}
    for r in rejected:
        reasons[str(r["reason"])] = reasons.get(str(r["reason"]), 0) + 1
    shown = "; ".join(f"{r['subject']}: {r['reason']} ({r['detail']})" for r in rejected[:3])
    summary = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items()))
    return (
        f"{getattr(source, 'root', source.kind)}: no pair can be ingested "
        f"({len(rejected)} records rejected: {summary}), so nothing was published; first: {shown}"
    )


def _already_published(
    spec: StoreSpec, release: str, fingerprint: Mapping[str, Any], report: IngestReport
) -> bool:
    if release not in read_root(spec)["releases"]:
        return False
    manifest = read_manifest(spec, release)
    if manifest.get("source") != dict(fingerprint):
        raise PublishConflict(
            f"release {release!r} is already published in {spec.url} from another source "
            f"({manifest.get('source')}); releases are immutable: choose another --release name"
        )
    counts = manifest.get("counts", {})
    report.already_published = True
    report.patches = int(counts.get("patches", 0))
    report.annotations = int(counts.get("annotations", {}).get("total", 0))
    report.quarantined = dict(counts.get("quarantined", {}))
    report.bytes = int(manifest.get("total_bytes", 0))
    return True


def _scan(
    runner: Runner,
    source: Source,
    rows: list[tuple[str, str]],
    options: IngestOptions,
    state: _WorkState,
    report: IngestReport,
) -> dict[int, dict[str, Any]]:
    size = options.scan_batch
    batches = [(i, rows[s : s + size]) for i, s in enumerate(range(0, len(rows), size))]
    done = {int(k.split(".")[0]): v for k, v in state.listing("scan").items()}
    # A stored result counts only if it covers the same rows (same metadata).
    done = {
        i: v
        for i, v in done.items()
        if i < len(batches)
        and v["first"] == batches[i][1][0][0]
        and v["last"] == batches[i][1][-1][0]
    }
    report.resumed["scan_batches"] = len(done)
    todo = [b for b in batches if b[0] not in done]
    for result in runner.map(scan_task, todo, source, desc="scan", progress=options.progress):
        state.write(result, "scan", f"{result['batch']:06d}.json")
        done[result["batch"]] = result
    return done


def _collect(
    scans: Mapping[int, Mapping[str, Any]], rows: list[tuple[str, str]]
) -> tuple[list[str], dict[str, tuple[int, list[float]]], list[dict[str, Any]]]:
    georef: dict[str, tuple[int, list[float]]] = {}
    rejected: list[dict[str, Any]] = []
    for i in sorted(scans):
        for patch_id, epsg, transform in scans[i]["ok"]:
            georef[patch_id] = (int(epsg), list(transform))
        rejected.extend(scans[i]["rejected"])
    valid = [pid for pid, _ in rows if pid in georef]
    return valid, georef, rejected


def _write_shards(
    runner: Runner,
    source: Source,
    spec: StoreSpec,
    ordered: list[str],
    s1_of: Mapping[str, str],
    options: IngestOptions,
    state: _WorkState,
    report: IngestReport,
) -> tuple[dict[str, ObjectEntry], list[dict[str, Any]]]:
    """Write every shard not written yet; return the objects and the late rejections."""
    per = options.samples_per_shard
    release = options.release
    layout = {
        "n_samples": len(ordered),
        "samples_per_shard": per,
        "first": ordered[:1],
        "last": ordered[-1:],
        "codecs": options.codecs,
    }
    if state.read("group.json") != layout:
        create_group(spec, release, len(ordered), per, portable=options.codecs == "portable")
        state.write(layout, "group.json")
        for name in state.listing("shards"):
            state.fs.rm_file(state.path("shards", name))
    done = {int(k.split(".")[0]): v for k, v in state.listing("shards").items()}
    report.resumed["shards"] = len(done)
    jobs = [
        ShardJob(k, s, tuple((pid, s1_of[pid]) for pid in ordered[s : s + per]))
        for k, s in enumerate(range(0, len(ordered), per))
        if k not in done
    ]
    late: list[dict[str, Any]] = []
    for result in runner.map(
        write_shard_task, jobs, source, spec, release, desc="write", progress=options.progress
    ):
        if result.get("rejected"):
            late.extend(result["rejected"])
            continue
        state.write(result, "shards", f"{result['shard']:06d}.json")
        done[result["shard"]] = result
    entries: dict[str, ObjectEntry] = {}
    for result in done.values():
        for o in result["objects"]:
            entries[o["path"]] = ObjectEntry(**o)
    return entries, late


def _write_quarantine(
    spec: StoreSpec, release: str, rejected: list[dict[str, Any]], report: IngestReport
) -> None:
    counts: dict[str, int] = {}
    for r in rejected:
        counts[r["reason"]] = counts.get(r["reason"], 0) + 1
    report.quarantined = dict(sorted(counts.items()))
    body = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rejected).encode()
    from lake.storage import write_bytes_atomic

    write_bytes_atomic(filesystem(spec), spec.path(quarantine_path(release)), body)


__all__ = ["IngestOptions", "IngestReport", "ingest", "pa"]
