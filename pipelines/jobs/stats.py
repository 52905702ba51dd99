"""Per-band statistics of a release: mean, std, min, max and a histogram, overall and per group.

One task per shard of the patch group reads that shard of every raster array and reduces it to
partial sums per (group, band), in float64: the count, the mean and the sum of squared deviations
from it (``M2``), the minimum, the maximum and a histogram with fixed bin edges. Each task writes
its partial to the release's work area (``_work/<release>/stats/shard-<k>.npz``) before it
reports, so a rerun after a crash, or a worker killed mid-job, redoes only the shards without a
partial. The driver combines the partials in shard order with Chan et al.'s parallel formula
(exact to float64 rounding, independent of which worker did what), writes
``stats/<release>/band_stats.parquet``, puts the overall statistics into the STAC collection's
``summaries`` and amends the release manifest (ADR 0006).

Groups: ``all``, and each value of ``split``, ``season`` and ``country``. The standard deviation
is the population one (``ddof=0``) over every pixel of the band, as the reference loaders' stats.

Histogram bins (fixed, so that partials of any shard and any release add up; ``NBINS`` = 200):

* S2 bands (uint16 reflectance x 10,000): ``[0, 20000]`` DN in steps of 100 DN;
* S1 VV/VH (float32 backscatter in dB, about -35 .. +10): ``[-50, 30]`` dB in steps of 0.4 dB.

The first and the last bin are open-ended: they also count the values below and above the
range, so every histogram sums to the band's ``count``. Non-finite S1 values (NaN, +-inf) are
left out of every statistic and counted in ``nonfinite``.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from catalog.build import collection_path, render_catalog
from lake.bigearthnet import ARRAYS_BY_NAME, S1_BANDS
from lake.config import StoreSpec
from lake.errors import LayoutError
from lake.layout import band_stats_path, stats_work_path
from lake.patchstore import array_of, open_group
from lake.reader import Lake, Release
from lake.release import ObjectEntry, amend
from lake.storage import filesystem, read_json, sha256_bytes, write_bytes_atomic, write_json_atomic
from lake.tables import BAND_STATS_SCHEMA, parquet_bytes, read_parquet
from pipelines.cluster.runner import Runner
from pipelines.cluster.spec import ClusterSpec

STATS_VERSION = 1
#: The raster arrays whose bands get statistics (the reference map holds class codes).
RASTERS: tuple[str, ...] = ("s2_10m", "s2_20m", "s2_60m", "s1")
#: Every band, in the order of the rows of the table.
BANDS: tuple[str, ...] = tuple(b for a in RASTERS for b in ARRAYS_BY_NAME[a].bands)
#: The columns that group the pairs (besides ``all``).
GROUP_COLUMNS: tuple[str, ...] = ("split", "season", "country")
NBINS = 200
#: Histogram range of S2 bands (DN) and of S1 bands (dB); see the module docstring.
S2_RANGE = (0.0, 20000.0)
S1_RANGE = (-50.0, 30.0)
DERIVED_NAME = "band_stats"
DEFAULT_CLUSTER = ClusterSpec()

Group = tuple[str, str]


def bin_edges(band: str) -> np.ndarray:
    """The ``NBINS + 1`` fixed histogram edges of a band (float64)."""
    lo, hi = S1_RANGE if band in S1_BANDS else S2_RANGE
    return np.linspace(lo, hi, NBINS + 1)


def parameters() -> dict[str, Any]:
    """What must match for stored partials and a stored table to be reused."""
    return {
        "version": STATS_VERSION,
        "bands": list(BANDS),
        "groups": ["all", *GROUP_COLUMNS],
        "nbins": NBINS,
        "s2_range": list(S2_RANGE),
        "s1_range": list(S1_RANGE),
        "ddof": 0,
    }


# ---------------------------------------------------------------- partial sums


@dataclass
class Partial:
    """Partial statistics of some pairs, arrays indexed ``[group, band]`` (``hist`` by bin too).

    Attributes:
        groups: The ``(group_by, group)`` key of each row.
        count: Finite values.
        mean: Their mean.
        m2: Their sum of squared deviations from the mean.
        min: Their minimum (+inf when none).
        max: Their maximum (-inf when none).
        nonfinite: Values left out (NaN, +-inf).
        hist: Histogram counts over :func:`bin_edges`.
    """

    groups: list[Group]
    count: np.ndarray
    mean: np.ndarray
    m2: np.ndarray
    min: np.ndarray
    max: np.ndarray
    nonfinite: np.ndarray
    hist: np.ndarray

    @classmethod
    def empty(cls, groups: list[Group]) -> Partial:
        """No values yet for these groups."""
        g, b = len(groups), len(BANDS)
        return cls(
            list(groups),
            np.zeros((g, b), np.int64),
            np.zeros((g, b)),
            np.zeros((g, b)),
            np.full((g, b), np.inf),
            np.full((g, b), -np.inf),
            np.zeros((g, b), np.int64),
            np.zeros((g, b, NBINS), np.int64),
        )

    def to_bytes(self) -> bytes:
        """As compressed ``.npz`` bytes (no pickles; histograms are mostly zeros)."""
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            groups=np.array([f"{k}\t{v}" for k, v in self.groups], dtype=str),
            count=self.count,
            mean=self.mean,
            m2=self.m2,
            min=self.min,
            max=self.max,
            nonfinite=self.nonfinite,
            hist=self.hist,
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Partial:
        """Read what :meth:`to_bytes` wrote."""
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            groups = [tuple(str(s).split("\t", 1)) for s in z["groups"]]
            return cls(
                [(g[0], g[1]) for g in groups],
                *(z[k] for k in ("count", "mean", "m2", "min", "max", "nonfinite", "hist")),
            )


def combine(a: Partial, b: Partial) -> Partial:
    """Chan et al.'s parallel combination of two partials (groups united, in a's order first)."""
    groups = list(dict.fromkeys([*a.groups, *b.groups]))
    out = Partial.empty(groups)
    for part in (a, b):
        rows = np.array([groups.index(g) for g in part.groups], dtype=np.int64)
        if not len(rows):
            continue
        na = out.count[rows].astype(np.float64)
        nb = part.count.astype(np.float64)
        n = na + nb
        safe = np.where(n > 0, n, 1.0)
        delta = part.mean - out.mean[rows]
        out.mean[rows] = np.where(n > 0, out.mean[rows] + delta * nb / safe, 0.0)
        out.m2[rows] = out.m2[rows] + part.m2 + delta**2 * na * nb / safe
        out.count[rows] += part.count
        out.min[rows] = np.minimum(out.min[rows], part.min)
        out.max[rows] = np.maximum(out.max[rows], part.max)
        out.nonfinite[rows] += part.nonfinite
        out.hist[rows] += part.hist
    return out


def _bins(values: np.ndarray, band: str) -> np.ndarray:
    """Bin index of every value (same as ``np.histogram`` with the edges, ends open)."""
    if values.dtype == np.uint16:
        lo, hi = S2_RANGE
        width = int((hi - lo) / NBINS)
        return np.minimum(values // width, NBINS - 1).astype(np.int64)
    edges = bin_edges(band)
    idx = np.searchsorted(edges, values, side="right") - 1
    return np.clip(idx, 0, NBINS - 1)


def _band_partial(
    values: np.ndarray, band: str, masks: Mapping[Group, np.ndarray], out: Partial, column: int
) -> None:
    """Reduce one band of a block of samples ``(n, H, W)`` into ``out[:, column]``."""
    n = values.shape[0]
    v = values.reshape(n, -1)
    offsets = (np.arange(n, dtype=np.int64) * NBINS)[:, None]
    if v.dtype.kind == "f" and not np.isfinite(v).all():
        finite = np.isfinite(v)
        cnt = finite.sum(axis=1)
        x = np.where(finite, v, 0).astype(np.float64)
        mean = x.sum(axis=1) / np.maximum(cnt, 1)
        m2 = (np.where(finite, x - mean[:, None], 0.0) ** 2).sum(axis=1)
        lo = np.where(finite, x, np.inf).min(axis=1)
        hi = np.where(finite, x, -np.inf).max(axis=1)
        bins = (_bins(v, band) + offsets)[finite]
    else:  # every value counts (always for the uint16 S2 bands): no masks
        cnt = np.full(n, v.shape[1], dtype=np.int64)
        x = v.astype(np.float64)
        mean = x.sum(axis=1) / v.shape[1]
        x -= mean[:, None]
        m2 = np.einsum("ij,ij->i", x, x)
        lo = v.min(axis=1).astype(np.float64)
        hi = v.max(axis=1).astype(np.float64)
        bins = (_bins(v, band) + offsets).ravel()
    hist = np.bincount(bins, minlength=n * NBINS).reshape(n, NBINS)
    for row, g in enumerate(out.groups):
        m = masks[g]
        total = int(cnt[m].sum())
        if total == 0:
            out.nonfinite[row, column] = int((v.shape[1] - cnt[m]).sum())
            continue
        gm = float((cnt[m] * mean[m]).sum() / total)
        out.count[row, column] = total
        out.mean[row, column] = gm
        out.m2[row, column] = float(m2[m].sum() + (cnt[m] * (mean[m] - gm) ** 2).sum())
        out.min[row, column] = float(lo[m].min())
        out.max[row, column] = float(hi[m].max())
        out.nonfinite[row, column] = int((v.shape[1] - cnt[m]).sum())
        out.hist[row, column] = hist[m].sum(axis=0)


# ---------------------------------------------------------------- tasks (run on workers)


@dataclass(frozen=True)
class ShardTask:
    """One shard to reduce: its index, its sample range, and each sample's group labels.

    Attributes:
        shard: Shard index.
        start: First sample.
        labels: Per sample (in sample order), its value of each of :data:`GROUP_COLUMNS`.
    """

    shard: int
    start: int
    labels: tuple[tuple[str, ...], ...]


def partial_path(spec: StoreSpec, release: str, shard: int) -> str:
    """Where the partial of a shard is kept (an fsspec path)."""
    return spec.path(stats_work_path(release), f"shard-{shard:06d}.npz")


def shard_partial(task: ShardTask, spec: StoreSpec, release: str) -> Partial:
    """Reduce one shard of every raster array to partial statistics per group and band."""
    n = len(task.labels)
    groups: list[Group] = [("all", "all")]
    masks: dict[Group, np.ndarray] = {("all", "all"): np.ones(n, dtype=bool)}
    for i, by in enumerate(GROUP_COLUMNS):
        values = np.array([lab[i] for lab in task.labels], dtype=object)
        for value in sorted(set(values.tolist())):
            groups.append((by, value))
            masks[(by, value)] = values == value
    out = Partial.empty(groups)
    group = open_group(spec, release)
    column = 0
    for name in RASTERS:
        block = np.asarray(array_of(group, name)[task.start : task.start + n])
        for i, band in enumerate(ARRAYS_BY_NAME[name].bands):
            _band_partial(block[:, i], band, masks, out, column)
            column += 1
    return out


def stats_task(task: ShardTask, spec: StoreSpec, release: str) -> int:
    """Reduce one shard and store its partial in the work area (atomic); return the shard."""
    body = shard_partial(task, spec, release).to_bytes()
    write_bytes_atomic(filesystem(spec), partial_path(spec, release, task.shard), body)
    return task.shard


# ---------------------------------------------------------------- the table


_ARRAY_OF_BAND = {b: a for a in RASTERS for b in ARRAYS_BY_NAME[a].bands}


def to_table(total: Partial) -> pa.Table:
    """The statistics rows: ``all`` first, then by split, season and country; bands in order."""
    order = {k: i for i, k in enumerate(("all", *GROUP_COLUMNS))}
    rows = sorted(
        range(len(total.groups)), key=lambda r: (order[total.groups[r][0]], total.groups[r][1])
    )
    edges = {b: bin_edges(b).tolist() for b in BANDS}
    cols: dict[str, list[Any]] = {f.name: [] for f in BAND_STATS_SCHEMA}
    for r in rows:
        for c, band in enumerate(BANDS):
            n = int(total.count[r, c])
            cols["group_by"].append(total.groups[r][0])
            cols["group"].append(total.groups[r][1])
            cols["band"].append(band)
            cols["array"].append(_ARRAY_OF_BAND[band])
            cols["count"].append(n)
            cols["nonfinite"].append(int(total.nonfinite[r, c]))
            cols["mean"].append(float(total.mean[r, c]) if n else None)
            cols["std"].append(float(np.sqrt(total.m2[r, c] / n)) if n else None)
            cols["min"].append(float(total.min[r, c]) if n else None)
            cols["max"].append(float(total.max[r, c]) if n else None)
            cols["hist"].append(total.hist[r, c].tolist())
            cols["bin_edges"].append(edges[band])
    meta = {b"bigearthnet_lake.stats": json.dumps(parameters()).encode()}
    return pa.table(cols, schema=BAND_STATS_SCHEMA).replace_schema_metadata(meta)


def band_stats_of(table: pa.Table, group_by: str = "all", group: str = "all") -> dict[str, Any]:
    """``band -> (mean, std)`` of one group of a statistics table (for normalisation)."""
    out = {}
    for r in table.to_pylist():
        if r["group_by"] == group_by and r["group"] == group and r["count"]:
            out[r["band"]] = (r["mean"], r["std"])
    return out


# ---------------------------------------------------------------- the driver


@dataclass
class StatsReport:
    """What a stats run produced.

    Attributes:
        release: The release.
        table: The statistics rows (see :data:`BAND_STATS_SCHEMA`).
        path: Where the table is (a path for local lakes, else a URL).
        patches: Pairs reduced.
        shards: Shards in the release.
        resumed: Shards whose partial was found from an earlier run and reused.
        seconds: Wall time of this run.
        already_done: The release already had these statistics: nothing was computed.
        dashboard: The Dask dashboard link of the run, when there was one.
    """

    release: str
    table: pa.Table
    path: str
    patches: int = 0
    shards: int = 0
    resumed: int = 0
    seconds: float = 0.0
    already_done: bool = False
    dashboard: str | None = None
    amended: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (the overall rows without histograms, and throughput)."""
        overall = [
            {k: r[k] for k in ("band", "count", "mean", "std", "min", "max")}
            for r in self.table.to_pylist()
            if r["group_by"] == "all"
        ]
        return {
            "release": self.release,
            "path": self.path,
            "patches": self.patches,
            "shards": self.shards,
            "resumed": self.resumed,
            "seconds": round(self.seconds, 3),
            "patches_per_second": round(self.patches / self.seconds, 1) if self.seconds else None,
            "already_done": self.already_done,
            "dashboard": self.dashboard,
            "rows": self.table.num_rows,
            "amended": self.amended,
            "overall": overall,
        }


def _location(spec: StoreSpec, rel: str) -> str:
    child = spec.child(rel)
    return child.root if spec.protocol == "file" else child.url


def shard_tasks(rel: Release) -> list[ShardTask]:
    """One task per shard of the release, with each sample's split, season and country."""
    t = rel.patches(columns=["sample_index", *GROUP_COLUMNS]).sort_by("sample_index")
    n = len(rel)
    if t.num_rows != n or t["sample_index"].to_pylist() != list(range(n)):
        raise LayoutError(
            f"release {rel.name!r} of {rel.spec.url}: the patches table does not cover samples "
            f"0..{n - 1} once each ({t.num_rows} rows); run `lake pipeline verify`"
        )
    columns = [[str(v) for v in t[c].to_pylist()] for c in GROUP_COLUMNS]
    labels = list(zip(*columns, strict=True))
    attrs: Any = rel.group.attrs["bigearthnet_lake"]
    per = int(attrs["samples_per_shard"])
    return [ShardTask(k, s, tuple(labels[s : s + per])) for k, s in enumerate(range(0, n, per))]


def compute_stats(
    spec: StoreSpec,
    release: str | None = None,
    *,
    cluster: ClusterSpec = DEFAULT_CLUSTER,
    progress: bool = False,
    force: bool = False,
    on_start: Callable[[Runner], None] | None = None,
) -> StatsReport:
    """Compute a release's per-band statistics on a cluster; store and publish them.

    Idempotent: a release that already has them (same parameters) is left as it is; a rerun
    after a failure reuses the partials of the shards already reduced.

    Args:
        spec: The lake.
        release: The release (the current one when None).
        cluster: Where the tasks run.
        progress: Show a progress bar.
        force: Recompute even if the release already has statistics.
        on_start: Called with the runner once the cluster is up (e.g. to print the dashboard).

    Returns:
        The report, with the table and where it was written.

    Raises:
        ReleaseNotFound: No such release (or no release at all).
        LayoutError: The release's patch group or table is inconsistent.
    """
    t0 = time.perf_counter()
    rel = Lake(spec).release(release)
    path = band_stats_path(rel.name)
    fs = filesystem(spec)
    done = rel.manifest.get("derived", {}).get(DERIVED_NAME)
    if not force and done and done.get("parameters") == parameters() and fs.exists(spec.path(path)):
        # Not pq.read_table(fs.open(...)): see lake.tables.read_parquet (exit 134 after a rerun).
        table = read_parquet(fs, spec.path(path))
        return StatsReport(
            rel.name,
            table,
            _location(spec, path),
            len(rel),
            done.get("shards", 0),
            0,
            time.perf_counter() - t0,
            already_done=True,
        )
    tasks = shard_tasks(rel)
    work = spec.path(stats_work_path(rel.name))
    state = f"{work}/state.json"
    header = {"parameters": parameters(), "patches": len(rel), "shards": len(tasks)}
    if fs.exists(state) and read_json(fs, state) != header:
        fs.rm(work, recursive=True)
    write_json_atomic(fs, state, header)
    stored = {p.rsplit("/", 1)[-1] for p in fs.find(work)} if fs.exists(work) else set()
    todo = [t for t in tasks if f"shard-{t.shard:06d}.npz" not in stored]
    report = StatsReport(rel.name, pa.table({}), _location(spec, path), len(rel), len(tasks))
    report.resumed = len(tasks) - len(todo)
    if todo:
        with Runner(cluster.with_store(spec)) as runner:
            report.dashboard = runner.dashboard
            if on_start is not None:
                on_start(runner)
            for _ in runner.map(stats_task, todo, spec, rel.name, desc="stats", progress=progress):
                pass
        # The workers wrote the partials; this client listed the folder before they did, and
        # s3fs would answer from that listing (FileNotFoundError on S3).
        fs.invalidate_cache(work)
    total = Partial.empty([("all", "all")])
    for t in tasks:
        total = combine(
            total, Partial.from_bytes(fs.cat_file(partial_path(spec, rel.name, t.shard)))
        )
    report.table = to_table(total)
    report.amended = publish_stats(spec, rel, report.table, len(tasks))
    fs.rm(work, recursive=True)
    report.seconds = time.perf_counter() - t0
    return report


def publish_stats(spec: StoreSpec, rel: Release, table: pa.Table, shards: int) -> list[str]:
    """Write the table, re-render the collection with its summaries, amend the manifest.

    Returns:
        The objects added or replaced (paths relative to the lake).
    """
    fs = filesystem(spec)
    body = parquet_bytes(table)
    path = band_stats_path(rel.name)
    write_bytes_atomic(fs, spec.path(path), body)
    entries = [ObjectEntry(path, len(body), sha256_bytes(body))]
    objects = {
        o["path"]: ObjectEntry(o["path"], o["size"], o["sha256"]) for o in rel.manifest["objects"]
    }
    objects[path] = entries[0]
    built = render_catalog(spec, rel.name, objects)
    for p, e in built.entries().items():
        if objects.get(p) != e:
            write_bytes_atomic(fs, spec.path(p), built.files[p])
            entries.append(e)
    amend(
        spec,
        rel.name,
        entries,
        derived=DERIVED_NAME,
        details={
            "parameters": parameters(),
            "table": path,
            "collection": collection_path(rel.name),
            "shards": shards,
            "patches": len(rel),
        },
    )
    return [e.path for e in entries]


def read_stats(spec: StoreSpec, release: str | None = None) -> pa.Table:
    """The statistics table of a release.

    Raises:
        LayoutError: The release has no statistics yet (run ``lake pipeline stats``).
    """
    rel = Lake(spec).release(release)
    path = band_stats_path(rel.name)
    fs = filesystem(spec)
    if not fs.exists(spec.path(path)):
        raise LayoutError(
            f"release {rel.name!r} of {spec.url} has no statistics at {path}: run "
            f"`lake pipeline stats --release {rel.name}` first"
        )
    return read_parquet(fs, spec.path(path))


def iter_rows(table: pa.Table, group_by: str = "all") -> Iterable[dict[str, Any]]:
    """The rows of one grouping, without histograms."""
    for r in table.to_pylist():
        if r["group_by"] == group_by:
            yield {k: v for k, v in r.items() if k not in ("hist", "bin_edges")}
