"""``lake pipeline timeseries``: BigEarthNet patches cut from new Sentinel-2 scenes.

BigEarthNet covers June 2017 - May 2018; this job cuts the same patch footprints out of any
Sentinel-2 L2A scenes a STAC API serves (Earth Search, the Planetary Computer, a private one),
at any dates, and writes them as a time-series *part* of a published release.

Steps:

1. **select** (driver): the patches (``--ids``, ``--sql`` or ``--bbox``), with each one's EPSG and
   bounds from the release's ``patches`` table (the georeference the lake already publishes);
2. **search** (driver, :mod:`pipelines.sources.scenes`): pystac-client over the selection's
   WGS 84 bounding box, ``--datetime``, ``--max-cloud``; each patch gets the scenes whose footprint
   intersects its own (a patch no scene covers is an error that names it);
3. **plan** (driver): each acquisition (patch, scene) gets its row of the raw arrays; the plan
   (with the scenes' items) is kept in ``_work/<release>/timeseries/<part>/plan.json`` so a rerun
   after a kill cuts the same scenes into the same rows;
4. **cut** (cluster, one task per batch of patches): ``stackstac.stack`` of the patch's scenes onto
   the patch's exact grid, one call per resolution group (10, 20, 60 m; its EPSG, its bounds,
   native resolution, ``resampling=nearest``, ``rescale=False``, ``dtype=uint16``,
   ``fill_value=0``), baseline-04.00 harmonisation, the scene classification (SCL, 20 m) for the
   cloud and no-data fraction of each acquisition and for the composites' mask; the task writes its
   rows of the Zarr arrays, then a marker with its fractions (a rerun skips marked tasks);
5. **publish** (driver): ``acquisitions.parquet``, ``timeseries.json``, ``items.parquet`` (one STAC
   Item per patch, stac-geoparquet), and the objects added to the
   release manifest under ``derived["timeseries/<part>"]`` (:func:`lake.release.amend`, locked).

Composites (``--composite 10D|month``): per period, the lower median (an observed value, so
uint16 stays exact) of the acquisitions whose SCL says valid (not no-data, saturated, cloud shadow,
cloud or cirrus) and whose DN is not 0; a pixel without any valid acquisition is 0 (nodata).
The 10 m mask is the 20 m SCL repeated 2 x 2, the 60 m one the SCL's centre pixel of each 3 x 3.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from lake.bigearthnet import S2_10M, S2_20M, S2_60M, ArraySpec
from lake.config import StoreSpec
from lake.documents import TimeSeriesDocument
from lake.errors import ConfigError, PatchNotFound
from lake.layout import (
    timeseries_acquisitions_path,
    timeseries_document_path,
    timeseries_group_path,
    timeseries_items_path,
    timeseries_path,
    timeseries_work_path,
)
from lake.reader import Lake, Release
from lake.release import amend, hash_objects, list_objects
from lake.storage import filesystem, read_json, write_bytes_atomic, write_json_atomic, zarr_store
from lake.tables import parquet_bytes
from lake.timeseries import (
    ACQUISITIONS_SCHEMA,
    COMPOSITE_OF,
    DERIVED_PREFIX,
    TimeSeries,
    array_in,
)
from pipelines.cluster.runner import Runner
from pipelines.cluster.spec import ClusterSpec
from pipelines.sources.scenes import (
    SCL_CLOUDY,
    SCL_INVALID,
    SCL_NODATA,
    SceneSearchError,
    TimeRange,
    canonical_item,
    harmonise,
    needs_harmonising,
    parse_datetime,
    search_scenes,
    sign_item,
)

Composite = Literal["none", "10D", "month"]
COMPOSITES: tuple[str, ...] = get_args(Composite)
GROUPS: tuple[ArraySpec, ...] = (S2_10M, S2_20M, S2_60M)
SCL_SIZE = S2_20M.size
TIMESERIES_VERSION = 1
DEFAULT_CLUSTER = ClusterSpec()
_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


# ---------------------------------------------------------------- cutting one patch


def cut_patch(
    items: Sequence[Any], epsg: int, bounds: Sequence[float], *, harmonised: bool = True
) -> dict[str, np.ndarray]:
    """Cut the scenes ``items`` onto one patch's grid with stackstac.

    Args:
        items: pystac Items of Sentinel-2 L2A scenes (Earth Search or Planetary Computer keys),
            in the order wanted along time.
        epsg: The patch's CRS.
        bounds: The patch's ``(xmin, ymin, xmax, ymax)`` in that CRS (1200 m square).
        harmonised: Remove the +1000 offset of baseline 04.00+ scenes.

    Returns:
        ``s2_10m (t, 4, 120, 120)``, ``s2_20m (t, 6, 60, 60)``, ``s2_60m (t, 2, 20, 20)`` uint16
        and ``scl (t, 60, 60)`` uint8, ``t = len(items)``.
    """
    import stackstac  # type: ignore[import-untyped]
    from rasterio.enums import Resampling

    out: dict[str, np.ndarray] = {}
    offset = np.array([harmonised and needs_harmonising(i) for i in items], dtype=bool)
    for group in (*GROUPS, None):
        bands = list(group.bands) if group is not None else ["SCL"]
        res = group.resolution_m if group is not None else S2_20M.resolution_m
        size = group.size if group is not None else SCL_SIZE
        canon = [canonical_item(i, bands) for i in items]
        cube = stackstac.stack(
            canon,
            assets=bands,
            epsg=int(epsg),
            resolution=res,
            bounds=tuple(float(b) for b in bounds),
            snap_bounds=False,
            resampling=Resampling.nearest,
            rescale=False,
            dtype=np.dtype("uint16"),
            fill_value=np.uint16(0),
            sortby_date=False,
            properties=False,
            band_coords=False,
            chunksize=size,
        )
        values = np.asarray(cube.data.compute(scheduler="sync"), dtype=np.uint16)
        if values.shape != (len(items), len(bands), size, size):
            raise SceneSearchError(
                f"stackstac gave shape {values.shape} for bounds {list(bounds)} at {res} m in "
                f"EPSG:{epsg}; expected {(len(items), len(bands), size, size)}"
            )
        if group is None:
            out["scl"] = values[:, 0].astype(np.uint8)
        else:
            if offset.any():
                values[offset] = harmonise(values[offset])
            out[group.name] = values
    return out


def fractions(scl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per acquisition ``(t, H, W)``: the cloud fraction and the no-data fraction, from SCL."""
    n = scl.reshape(len(scl), -1)
    cloudy = np.isin(n, list(SCL_CLOUDY)).mean(axis=1)
    nodata = (n == SCL_NODATA).mean(axis=1)
    return cloudy.astype(np.float32), nodata.astype(np.float32)


def valid_mask(scl: np.ndarray, size: int) -> np.ndarray:
    """Where SCL ``(t, 60, 60)`` says valid, at a group's size (120: 2x2 repeat, 20: centres)."""
    ok = ~np.isin(scl, list(SCL_INVALID))
    if size == SCL_SIZE:
        return ok
    if size > SCL_SIZE:
        k = size // SCL_SIZE
        return ok.repeat(k, axis=1).repeat(k, axis=2)
    k = SCL_SIZE // size
    return ok[:, k // 2 :: k, k // 2 :: k]


def composite_of(
    values: np.ndarray, scl: np.ndarray, period: np.ndarray, periods: int
) -> np.ndarray:
    """The lower median of valid pixels per period: ``(t, b, h, w)`` -> ``(periods, b, h, w)``.

    Args:
        values: One group's acquisitions.
        scl: Their scene classification ``(t, 60, 60)``.
        period: Each acquisition's period index (-1: outside every period).
        periods: Number of periods.
    """
    _t, b, h, w = values.shape
    out = np.zeros((periods, b, h, w), np.uint16)
    mask = valid_mask(scl, h)[:, None] & (values != 0)
    # Vectorised lower median: invalid pixels sort last (a value above any uint16), so the k
    # valid ones of a pixel come first and the lower median is element (k - 1) // 2.
    above = np.iinfo(np.uint16).max + 1
    for p in range(periods):
        rows = np.flatnonzero(period == p)
        if not len(rows):
            continue
        v = np.where(mask[rows], values[rows].astype(np.int32), above)
        v.sort(axis=0)
        k = mask[rows].sum(axis=0)
        pick = np.take_along_axis(v, (np.maximum(k, 1) - 1)[None] // 2, axis=0)[0]
        out[p] = np.where(k > 0, pick, 0).astype(np.uint16)
    return out


def periods_of(when: TimeRange, composite: Composite) -> list[datetime]:
    """The start of each composite period within ``when`` (empty for ``none``)."""
    if composite == "none":
        return []
    starts = []
    t = when.start
    while t <= when.end:
        starts.append(t)
        if composite == "10D":
            t = t + timedelta(days=10)
        else:
            t = datetime(t.year + (t.month == 12), t.month % 12 + 1, 1, tzinfo=UTC)
    return starts


def period_index(
    dates: Sequence[datetime], starts: Sequence[datetime], end: datetime
) -> np.ndarray:
    """The period of each date (-1 before the first or after ``end``)."""
    out = np.full(len(dates), -1, np.int64)
    for i, d in enumerate(dates):
        if starts and starts[0] <= d <= end:
            out[i] = max(k for k, s in enumerate(starts) if s <= d)
    return out


# ---------------------------------------------------------------- the plan


@dataclass(frozen=True)
class PatchPlan:
    """One patch to cut.

    Attributes:
        patch_id: Its id.
        sample_index: Its index in the release.
        epsg: Its CRS.
        bounds: ``(xmin, ymin, xmax, ymax)`` in that CRS.
        scenes: Indices into the plan's scenes, in time order.
        position: Its first row of the raw arrays.
    """

    patch_id: str
    sample_index: int
    epsg: int
    bounds: tuple[float, float, float, float]
    scenes: tuple[int, ...]
    position: int


@dataclass(frozen=True)
class CutTask:
    """A batch of patches for one task.

    Attributes:
        task: Its number (names its marker).
        first: The series index of its first patch.
        patches: The patches.
    """

    task: int
    first: int
    patches: tuple[PatchPlan, ...]


@dataclass(frozen=True)
class CutContext:
    """What every task shares (picklable).

    Attributes:
        release: The release.
        part: The part.
        stac_url: The STAC API (for signing).
        scenes: The scenes' items as dicts.
        starts: Composite period starts (ISO 8601), empty for none.
        end: The end of the time range (ISO 8601).
        harmonised: Remove the baseline-04.00 offset.
    """

    release: str
    part: str
    stac_url: str
    scenes: tuple[dict[str, Any], ...]
    starts: tuple[str, ...]
    end: str
    harmonised: bool = True


def marker_path(spec: StoreSpec, release: str, part: str, task: int) -> str:
    """Where a finished task records its acquisitions' fractions (an fsspec path)."""
    return spec.path(timeseries_work_path(release, part), f"task-{task:06d}.json")


def cut_task(task: CutTask, spec: StoreSpec, ctx: CutContext) -> int:
    """Cut a batch of patches, write their rows of every array, then the task's marker."""
    import pystac
    import zarr

    items = [sign_item(pystac.Item.from_dict(d), ctx.stac_url) for d in ctx.scenes]
    store = zarr_store(spec, timeseries_group_path(ctx.release, ctx.part))
    group = zarr.open_group(store, mode="r+", zarr_format=3)
    starts = [datetime.fromisoformat(s) for s in ctx.starts]
    end = datetime.fromisoformat(ctx.end)
    records: list[dict[str, Any]] = []
    for k, p in enumerate(task.patches):
        mine = [items[i] for i in p.scenes]
        cut = cut_patch(mine, p.epsg, p.bounds, harmonised=ctx.harmonised)
        rows = slice(p.position, p.position + len(mine))
        for name, values in cut.items():
            array_in(group, name)[rows] = values
        cloudy, nodata = fractions(cut["scl"])
        for j, item in enumerate(mine):
            records.append(
                {
                    "patch": task.first + k,
                    "scene": p.scenes[j],
                    "cloud_fraction": float(cloudy[j]),
                    "nodata_fraction": float(nodata[j]),
                    "harmonised": bool(ctx.harmonised and needs_harmonising(item)),
                }
            )
        if starts:
            period = period_index([i.datetime for i in mine], starts, end)
            for g in GROUPS:
                comp = composite_of(cut[g.name], cut["scl"], period, len(starts))
                array_in(group, COMPOSITE_OF[g.name])[task.first + k] = comp
    write_bytes_atomic(
        filesystem(spec),
        marker_path(spec, ctx.release, ctx.part, task.task),
        json.dumps(records).encode(),
    )
    return task.task


# ---------------------------------------------------------------- the driver


@dataclass(frozen=True)
class Selection:
    """Which patches to cut: exactly one of ids, an SQL query, a WGS 84 bbox."""

    ids: tuple[str, ...] = ()
    sql: str | None = None
    bbox: tuple[float, float, float, float] | None = None


@dataclass(frozen=True)
class TimeSeriesOptions:
    """The parameters of a time-series part.

    Attributes:
        stac: The STAC API's URL.
        collection: The scenes' collection.
        datetime: The time range (``2019-01/2019-12``).
        part: The part's name.
        max_cloud: Keep scenes with ``eo:cloud_cover`` below this percent (None: all).
        composite: ``none``, ``10D`` or ``month``.
        batch: Patches per task.
        harmonise: Remove the baseline-04.00 offset.
    """

    stac: str
    collection: str
    datetime: str
    part: str = "s2-timeseries"
    max_cloud: float | None = None
    composite: str = "none"
    batch: int = 8
    harmonise: bool = True

    def check(self) -> TimeRange:
        """Check the options; return the parsed time range.

        Raises:
            ConfigError: A bad ``--part``, ``--composite``, ``--max-cloud``, ``--batch`` or
                ``--datetime`` (the message names it).
        """
        if not _PART.match(self.part):
            raise ConfigError(
                f"--part {self.part!r} is invalid: use 1-64 letters, digits, '.', '_' or '-'"
            )
        if self.composite not in COMPOSITES:
            raise ConfigError(
                f"--composite {self.composite!r} is not one of {', '.join(COMPOSITES)}"
            )
        if self.max_cloud is not None and not 0 < self.max_cloud <= 100:
            raise ConfigError(f"--max-cloud {self.max_cloud} is not a percentage in (0, 100]")
        if self.batch < 1:
            raise ConfigError(f"--batch {self.batch} must be at least 1")
        return parse_datetime(self.datetime)


@dataclass
class TimeSeriesReport:
    """What a run produced.

    Attributes:
        release: The release.
        part: The part.
        patches: Patches cut.
        scenes: Scenes found.
        acquisitions: (patch, scene) pairs cut.
        tasks: Tasks in all.
        resumed: Tasks found done by an earlier run.
        seconds: Wall time of this run.
        already_done: The part was published already with these parameters.
        dashboard: The Dask dashboard link, when there was one.
        objects: Objects added to the manifest.
    """

    release: str
    part: str
    patches: int = 0
    scenes: int = 0
    acquisitions: int = 0
    tasks: int = 0
    resumed: int = 0
    seconds: float = 0.0
    already_done: bool = False
    dashboard: str | None = None
    objects: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary with throughput."""
        d = asdict(self)
        s = self.seconds
        d["patches_per_second"] = (
            round(self.patches / s, 2) if s and not self.already_done else None
        )
        d["scenes_per_second"] = round(self.scenes / s, 2) if s and not self.already_done else None
        d["seconds"] = round(s, 3)
        return d


def select_patches(rel: Release, selection: Selection) -> pa.Table:
    """The selected rows of the patches table (``patch_id, sample_index, epsg, transform, ...``).

    Raises:
        ConfigError: Not exactly one of ids / sql / bbox, a bad bbox, or nothing selected.
        PatchNotFound: Ids that are not in the release (the message names them).
    """
    given = [bool(selection.ids), selection.sql is not None, selection.bbox is not None]
    if sum(given) != 1:
        raise ConfigError("select the patches with exactly one of --ids, --sql or --bbox")
    cols = ["patch_id", "sample_index", "epsg", "transform", "geometry", "centre_lon", "centre_lat"]
    table = rel.patches(columns=cols)
    if selection.bbox is not None:
        w, s, e, n = (float(v) for v in selection.bbox)
        if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
            raise ConfigError(f"--bbox {[w, s, e, n]} is not west,south,east,north in degrees")
        lon, lat = table["centre_lon"].to_numpy(), table["centre_lat"].to_numpy()
        keep = (lon >= w) & (lon <= e) & (lat >= s) & (lat <= n)
        table = table.filter(pa.array(keep))
        what = f"--bbox {[w, s, e, n]}"
    else:
        if selection.sql is not None:
            from lake.sql.selection import selection as sql_selection

            ids = [
                str(i)
                for i in sql_selection(rel.spec, selection.sql, by="patch_id", release=rel.name)
            ]
            what = "--sql"
        else:
            ids = list(dict.fromkeys(selection.ids))
            what = "--ids"
        known = set(table["patch_id"].to_pylist())
        missing = [i for i in ids if i not in known]
        if missing:
            raise PatchNotFound(
                f"{what}: patch(es) {missing[:5]} are not in release {rel.name!r} "
                f"({len(missing)} missing)"
            )
        table = table.filter(pc.is_in(table["patch_id"], value_set=pa.array(ids)))
    if table.num_rows == 0:
        raise ConfigError(f"{what} selects no patch of release {rel.name!r}")
    return table.sort_by("sample_index")


def patch_bounds(transform: Sequence[float]) -> tuple[float, float, float, float]:
    """A patch's ``(xmin, ymin, xmax, ymax)`` from its 10 m transform (affine order a..f).

    The ``transform`` column of the ``patches`` table is the georeference of the pair's 10 m
    bands as ingest decoded it, so the cut lands on the very grid of the released patch.
    """
    a, _, c, _, e, f = (float(v) for v in transform)
    n = S2_10M.size
    return c, f + e * n, c + a * n, f


def plan_patches(table: pa.Table, scenes: Sequence[Any]) -> list[PatchPlan]:
    """Assign each patch the scenes whose footprint intersects it, and its rows.

    Raises:
        SceneSearchError: Patches that no scene covers (the message names them).
    """
    footprints = [shapely.geometry.shape(s.geometry) for s in scenes]
    tree = shapely.STRtree(footprints)
    geoms = shapely.from_wkb(table["geometry"].to_numpy(zero_copy_only=False))
    plans: list[PatchPlan] = []
    uncovered: list[str] = []
    position = 0
    transforms = table["transform"].to_pylist()
    for i, (pid, idx, epsg) in enumerate(
        zip(
            table["patch_id"].to_pylist(),
            table["sample_index"].to_pylist(),
            table["epsg"].to_pylist(),
            strict=True,
        )
    ):
        # Overlap, not contact: a scene whose edge only touches the patch has none of its pixels.
        near = tree.query(geoms[i], predicate="intersects")
        hits = sorted(int(h) for h in near if footprints[h].intersection(geoms[i]).area > 0)
        if not hits:
            uncovered.append(pid)
            continue
        bounds = patch_bounds(transforms[i])
        plans.append(PatchPlan(pid, int(idx), int(epsg), bounds, tuple(hits), position))
        position += len(hits)
    if uncovered:
        raise SceneSearchError(
            f"{len(uncovered)} selected patch(es) lie outside every scene found, e.g. "
            f"{uncovered[:5]}: widen --datetime or --max-cloud, or leave them out of the selection"
        )
    return plans


def _create_group(
    spec: StoreSpec, release: str, part: str, acquisitions: int, patches: int, periods: int
) -> None:
    """Create the part's Zarr group and its empty arrays (kept when a rerun finds them)."""
    import zarr

    store = zarr_store(spec, timeseries_group_path(release, part))
    group = zarr.open_group(store, mode="a", zarr_format=3)

    # Dimension names unique per band stack and grid, as in the patch group, so that xarray
    # opens the whole group as one Dataset.
    def group_dims(g: ArraySpec) -> tuple[str, ...]:
        grid = f"{g.resolution_m}m"
        return (f"{g.name}_band", f"y_{grid}", f"x_{grid}")

    shapes: dict[str, tuple[tuple[int, ...], str, tuple[str, ...]]] = {
        g.name: ((acquisitions, *g.sample_shape), "uint16", ("acquisition", *group_dims(g)))
        for g in GROUPS
    }
    shapes["scl"] = ((acquisitions, SCL_SIZE, SCL_SIZE), "uint8", ("acquisition", "y_20m", "x_20m"))
    if periods:
        for g in GROUPS:
            shapes[COMPOSITE_OF[g.name]] = (
                (patches, periods, *g.sample_shape),
                "uint16",
                ("sample", "time", *group_dims(g)),
            )
    for name, (shape, dtype, dims) in shapes.items():
        if name in group and array_in(group, name).shape == shape:
            continue
        group.create_array(
            name,
            shape=shape,
            chunks=(1, *shape[1:]),
            dtype=dtype,
            fill_value=0,
            dimension_names=dims,
            overwrite=True,
        )


def _parameters(opts: TimeSeriesOptions, ids: list[str]) -> dict[str, Any]:
    return {
        "version": TIMESERIES_VERSION,
        "stac": opts.stac,
        "collection": opts.collection,
        "datetime": opts.datetime,
        "max_cloud": opts.max_cloud,
        "composite": opts.composite,
        "harmonise": opts.harmonise,
        "patches": ids,
    }


def _bbox_of(table: pa.Table) -> list[float]:
    """The WGS 84 bounding box of the patches' footprints."""
    geoms = shapely.from_wkb(table["geometry"].to_numpy(zero_copy_only=False))
    w, s, e, n = shapely.total_bounds(geoms)
    return [float(w), float(s), float(e), float(n)]


def cut_timeseries(
    spec: StoreSpec,
    opts: TimeSeriesOptions,
    selection: Selection,
    release: str | None = None,
    *,
    cluster: ClusterSpec = DEFAULT_CLUSTER,
    progress: bool = False,
    on_start: Callable[[Runner], None] | None = None,
) -> TimeSeriesReport:
    """Search the scenes, cut the selected patches from them, publish the part.

    Resumable: a rerun with the same options reuses the plan and skips the finished tasks; a
    part already published with the same options is left as it is.

    Args:
        spec: The lake.
        opts: The options.
        selection: The patches.
        release: The release (the current one when None).
        cluster: Where the tasks run.
        progress: Show a progress bar.
        on_start: Called with the runner once the cluster is up.

    Returns:
        The report.

    Raises:
        ConfigError: Bad options, or the part exists with other options.
        SceneSearchError: No API, no such collection, no scene, or a patch outside every scene.
        PatchNotFound: Selected ids that are not in the release.
    """
    t0 = time.perf_counter()
    when = opts.check()
    rel = Lake(spec).release(release)
    key = DERIVED_PREFIX + opts.part
    table = select_patches(rel, selection)
    ids = table["patch_id"].to_pylist()
    params = _parameters(opts, ids)
    report = TimeSeriesReport(rel.name, opts.part, patches=len(ids))
    done = rel.manifest.get("derived", {}).get(key)
    if done is not None:
        if done.get("parameters") != params:
            raise ConfigError(
                f"release {rel.name!r} already has a time-series part {opts.part!r} made with "
                "other options: choose another --part"
            )
        report.already_done = True
        report.scenes = int(done.get("scenes", 0))
        report.acquisitions = int(done.get("acquisitions", 0))
        report.seconds = time.perf_counter() - t0
        return report
    fs = filesystem(spec)
    work = spec.path(timeseries_work_path(rel.name, opts.part))
    plan_file = f"{work}/plan.json"
    plan: dict[str, Any] | None = None
    if fs.exists(plan_file):
        plan = read_json(fs, plan_file)
        if plan is None or plan.get("parameters") != params:
            fs.rm(work, recursive=True)
            plan = None
    starts = periods_of(when, opts.composite)  # type: ignore[arg-type]
    if plan is None:
        scenes = search_scenes(
            opts.stac, opts.collection, when, _bbox_of(table), max_cloud=opts.max_cloud
        )
        patches = plan_patches(table, scenes)
        plan = {
            "parameters": params,
            "scenes": [s.to_dict(transform_hrefs=False) for s in scenes],
            "patches": [asdict(p) for p in patches],
        }
        part_root = spec.path(timeseries_path(rel.name, opts.part))
        if fs.exists(part_root):
            fs.rm(part_root, recursive=True)  # left by an earlier plan
        write_json_atomic(fs, plan_file, plan)
    patches = [
        PatchPlan(
            p["patch_id"],
            p["sample_index"],
            p["epsg"],
            tuple(p["bounds"]),
            tuple(p["scenes"]),
            p["position"],
        )
        for p in plan["patches"]
    ]
    n_acq = sum(len(p.scenes) for p in patches)
    report.scenes, report.acquisitions = len(plan["scenes"]), n_acq
    _create_group(spec, rel.name, opts.part, n_acq, len(patches), len(starts))
    tasks = [
        CutTask(k, s, tuple(patches[s : s + opts.batch]))
        for k, s in enumerate(range(0, len(patches), opts.batch))
    ]
    stored = {p.rsplit("/", 1)[-1] for p in fs.find(work)} if fs.exists(work) else set()
    todo = [t for t in tasks if f"task-{t.task:06d}.json" not in stored]
    report.tasks, report.resumed = len(tasks), len(tasks) - len(todo)
    ctx = CutContext(
        rel.name,
        opts.part,
        opts.stac,
        tuple(plan["scenes"]),
        tuple(s.isoformat() for s in starts),
        when.end.isoformat(),
        opts.harmonise,
    )
    if todo:
        with Runner(cluster.with_store(spec)) as runner:
            report.dashboard = runner.dashboard
            if on_start is not None:
                on_start(runner)
            for _ in runner.map(cut_task, todo, spec, ctx, desc="timeseries", progress=progress):
                pass
        fs.invalidate_cache(work)
    records: list[dict[str, Any]] = []
    for t in tasks:
        records.extend(read_json(fs, marker_path(spec, rel.name, opts.part, t.task)))
    report.objects = _publish(spec, rel, opts, plan, patches, records, starts, key)
    fs.rm(work, recursive=True)
    report.seconds = time.perf_counter() - t0
    return report


def _publish(
    spec: StoreSpec,
    rel: Release,
    opts: TimeSeriesOptions,
    plan: dict[str, Any],
    patches: Sequence[PatchPlan],
    records: Sequence[dict[str, Any]],
    starts: Sequence[datetime],
    key: str,
) -> list[str]:
    """Write the acquisitions table and the document; amend the manifest with every object."""
    import pystac

    fs = filesystem(spec)
    scenes = [pystac.Item.from_dict(d) for d in plan["scenes"]]
    by = {(r["patch"], r["scene"]): r for r in records}
    cols: dict[str, list[Any]] = {f.name: [] for f in ACQUISITIONS_SCHEMA}
    for series, p in enumerate(patches):
        for j, s in enumerate(p.scenes):
            r = by[(series, s)]
            dt = scenes[s].datetime
            cols["patch_id"].append(p.patch_id)
            cols["sample_index"].append(p.sample_index)
            cols["series"].append(series)
            cols["datetime"].append(dt.astimezone(UTC).replace(microsecond=0) if dt else None)
            cols["scene_id"].append(scenes[s].id)
            cols["cloud_fraction"].append(r["cloud_fraction"])
            cols["nodata_fraction"].append(r["nodata_fraction"])
            cols["harmonised"].append(r["harmonised"])
            cols["position"].append(p.position + j)
    table = pa.table(cols, schema=ACQUISITIONS_SCHEMA)
    write_bytes_atomic(
        fs, spec.path(timeseries_acquisitions_path(rel.name, opts.part)), parquet_bytes(table)
    )
    doc: TimeSeriesDocument = {
        "part": opts.part,
        "release": rel.name,
        "parameters": plan["parameters"],
        "arrays": {g.name: list(g.bands) for g in GROUPS} | {"scl": []},
        "patches": [p.patch_id for p in patches],
        "acquisitions": table.num_rows,
        "composite": opts.composite,
        "times": [s.isoformat() for s in starts],
    }
    write_json_atomic(fs, spec.path(timeseries_document_path(rel.name, opts.part)), doc)
    body = items_parquet(series_items(spec, rel, opts.part, patches, table))
    write_bytes_atomic(fs, spec.path(timeseries_items_path(rel.name, opts.part)), body)
    paths = list_objects(spec, timeseries_path(rel.name, opts.part))
    entries = hash_objects(spec, paths)
    amend(
        spec,
        rel.name,
        entries,
        derived=key,
        details={
            "parameters": plan["parameters"],
            "document": timeseries_document_path(rel.name, opts.part),
            "patches": len(patches),
            "scenes": len(scenes),
            "acquisitions": table.num_rows,
        },
    )
    return paths


def series_items(
    spec: StoreSpec, rel: Release, part: str, patches: Sequence[PatchPlan], table: pa.Table
) -> list[dict[str, Any]]:
    """One STAC Item per patch of the part: its footprint, time span, grid and the assets.

    ``proj:epsg`` beside ``proj:code`` (stackstac 0.5 and odc-stac read the former), absolute
    asset hrefs (the lake's URL), the Zarr group with the ``xarray:open_kwargs`` that open it.
    """
    geoms = dict(
        zip(
            *(
                rel.patches(columns=["patch_id", "geometry"])[c].to_pylist()
                for c in ("patch_id", "geometry")
            ),
            strict=True,
        )
    )
    group_href = spec.child(timeseries_group_path(rel.name, part)).url
    table_href = spec.child(timeseries_acquisitions_path(rel.name, part)).url
    times = table["datetime"].to_pylist()
    of = table["series"].to_numpy()
    items = []
    for i, p in enumerate(patches):
        geom = shapely.from_wkb(geoms[p.patch_id])
        mine = [times[j] for j in np.flatnonzero(of == i)]
        xmin, _, _, ymax = p.bounds
        items.append(
            {
                "type": "Feature",
                "stac_version": "1.1.0",
                # Projection 1.2 has both proj:code and proj:epsg (2.0 dropped proj:epsg).
                "stac_extensions": [
                    "https://stac-extensions.github.io/projection/v1.2.0/schema.json"
                ],
                "id": p.patch_id,
                "geometry": shapely.geometry.mapping(geom),
                "bbox": [float(v) for v in geom.bounds],
                "properties": {
                    "datetime": None,
                    "start_datetime": min(mine).isoformat(),
                    "end_datetime": max(mine).isoformat(),
                    "bigearthnet:sample_index": p.sample_index,
                    "timeseries:series": i,
                    "timeseries:acquisitions": len(mine),
                    "timeseries:first_position": p.position,
                    "proj:code": f"EPSG:{p.epsg}",
                    "proj:epsg": p.epsg,
                    "proj:shape": [S2_10M.size, S2_10M.size],
                    "proj:transform": [10.0, 0.0, xmin, 0.0, -10.0, ymax],
                },
                "links": [],
                "assets": {
                    "series": {
                        "href": group_href,
                        "type": "application/vnd+zarr",
                        "roles": ["data"],
                        "xarray:open_kwargs": {"engine": "zarr", "consolidated": False},
                    },
                    "acquisitions": {
                        "href": table_href,
                        "type": "application/vnd.apache.parquet",
                        "roles": ["metadata"],
                    },
                },
            }
        )
    return items


def items_parquet(items: Sequence[dict[str, Any]]) -> bytes:
    """Items as stac-geoparquet bytes (``stac_geoparquet.arrow``)."""
    import os
    import tempfile

    from stac_geoparquet.arrow import parse_stac_items_to_arrow, to_parquet

    fd, tmp = tempfile.mkstemp(suffix=".parquet", prefix="ts-items-")
    os.close(fd)
    try:
        to_parquet(parse_stac_items_to_arrow(items), tmp, compression="zstd")
        with open(tmp, "rb") as f:
            return f.read()
    finally:
        os.unlink(tmp)


def open_timeseries(spec: StoreSpec, release: str | None, part: str) -> TimeSeries:
    """The published part (a convenience for the CLI and the tests)."""
    return TimeSeries.open(spec, release, part)
