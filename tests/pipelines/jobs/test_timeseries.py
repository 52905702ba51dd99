"""``lake pipeline timeseries`` end to end: generated scenes -> rustac STAC API -> pystac-client ->
the job (stackstac) -> a release part on the embedded S3 endpoint -> :class:`lake.timeseries`.

Each patch's scenes are written around it at its own georeference (from the lake's ``patches``
table), so the test knows every pixel each acquisition must hold, bit for bit.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from lake.bigearthnet import S2_10M, S2_20M, S2_60M
from lake.errors import ConfigError, PatchNotFound
from lake.reader import open_lake
from lake.release import read_manifest
from lake.timeseries import TimeSeries
from pipelines.cli import app
from pipelines.cluster.spec import ClusterSpec
from pipelines.jobs.timeseries import (
    Selection,
    TimeSeriesOptions,
    cut_timeseries,
    patch_bounds,
    period_index,
    periods_of,
)
from pipelines.jobs.verify import verify_release
from pipelines.local.stac import StacServer
from pipelines.sources.scenes import SceneSearchError, parse_datetime
from pipelines.synth.scenes import SceneSet, expected, scenes_around
from tests.conftest import s3_spec_for
from tests.support.lakes import LakeRecipe, TestLake, copy_lake, upload_lake

LAKE = LakeRecipe(20, 5, per_shard=8, scan_batch=8)
#: Three dates: old baseline; baseline 05.09 (stored + 1000); one too cloudy for --max-cloud 50.
DATES = [
    datetime(2019, 5, 3, 10, 10, tzinfo=UTC),
    datetime(2019, 5, 20, 10, 0, tzinfo=UTC),
    datetime(2019, 6, 7, 10, 20, tzinfo=UTC),
    datetime(2019, 6, 12, 10, 20, tzinfo=UTC),
]
BASELINES = ["02.14", "05.09", "02.14", "05.10"]
CLOUD = [10.0, 20.0, 5.0, 80.0]
KEYS = ["both", "planetary-computer", "earth-search", "both"]
GROUPS = (S2_10M, S2_20M, S2_60M)


@dataclass(frozen=True)
class World:
    """The test lake, the patches cut, their scenes and the STAC API serving them."""

    lake: TestLake
    ids: list[str]
    scenes: SceneSet
    url: str


@pytest.fixture(scope="module")
def world(
    build_lake: Callable[[LakeRecipe], TestLake], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    lake = build_lake(LAKE)
    t = open_lake(lake.spec).current.patches(columns=["patch_id", "tile", "epsg", "transform"])
    rows = t.sort_by("patch_id").to_pylist()[:3]
    patches = [(r["tile"], r["epsg"], patch_bounds(r["transform"])) for r in rows]
    first = patches[0][2]
    half = (first[0] + first[2]) / 2
    scenes = scenes_around(
        patches,
        DATES,
        tmp_path_factory.mktemp("scenes"),
        baselines=BASELINES,
        cloud_cover=CLOUD,
        nodata_east_of={(2, 0): half},  # the first patch's June scene ends mid-patch
        keys=KEYS,
    )
    with StacServer(scenes.catalogue) as server:
        yield World(lake, [r["patch_id"] for r in rows], scenes, server.url)


def reference_composite(
    raw: np.ndarray, scl: np.ndarray, period: np.ndarray, periods: int
) -> np.ndarray:
    """The composite as numpy says it: ``nanquantile(..., 0.5, method="lower")`` of valid pixels
    (SCL not 0, 1, 3, 8, 9, 10 at the group's size; DN not 0), 0 where none is valid."""
    h = raw.shape[-1]
    ok = ~np.isin(scl, [0, 1, 3, 8, 9, 10])
    ok = ok.repeat(2, 1).repeat(2, 2) if h == 120 else ok[:, 1::3, 1::3] if h == 20 else ok
    valid = ok[:, None] & (raw != 0)
    out = np.zeros((periods, *raw.shape[1:]), np.uint16)
    for p in range(periods):
        v = np.where(valid[period == p], raw[period == p].astype(np.float64), np.nan)
        if len(v):
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels
                med = np.nanquantile(v, 0.5, axis=0, method="lower")
            out[p] = np.nan_to_num(med, nan=0).astype(np.uint16)
    return out


def lake_cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), prog_name="lake", env={"LAKE_URL": ""})


def check_series(ts: TimeSeries, world: World, ids: list[str]) -> None:
    """Every acquisition of every patch holds exactly the generated pixels at its place."""
    rel = open_lake(ts.spec).release(ts.release)
    bounds = {
        r["patch_id"]: patch_bounds(r["transform"])
        for r in rel.patches(columns=["patch_id", "transform"]).to_pylist()
    }
    for pid, series in zip(ids, ts.indices_of(ids), strict=True):
        acq = ts.acquisitions([series]).to_pylist()
        scenes = [world.scenes.scenes[a["scene_id"]] for a in acq]
        assert [s.when for s in scenes] == sorted(s.when for s in scenes)
        for g in GROUPS:
            got = ts.read([series], g.name)[0]
            assert got.shape == (len(acq), *g.sample_shape) and got.dtype == np.uint16
            for t, s in enumerate(scenes):
                want = np.stack(
                    [
                        expected(s.index, b, bounds[pid], nodata_east_of=s.nodata_east_of)
                        for b in g.bands
                    ]
                )
                np.testing.assert_array_equal(got[t], want)
        scl = ts.read([series], "scl")[0]
        for t, (s, a) in enumerate(zip(scenes, acq, strict=True)):
            want_scl = expected(s.index, "SCL", bounds[pid], nodata_east_of=s.nodata_east_of)
            np.testing.assert_array_equal(scl[t], want_scl)
            assert a["cloud_fraction"] == pytest.approx(np.isin(want_scl, [3, 8, 9, 10]).mean())
            assert a["nodata_fraction"] == pytest.approx((want_scl == 0).mean())
            assert a["harmonised"] == (s.offset == 1000)


def test_cli_on_s3_end_to_end(world: World, s3_server: object) -> None:
    """pystac-client -> `lake pipeline timeseries` -> the reader, on the embedded S3 endpoint."""
    spec = upload_lake(world.lake, s3_spec_for(s3_server))  # type: ignore[arg-type]
    e = spec
    res = lake_cli(
        "pipeline", "timeseries", "--lake", spec.url, "--endpoint-url", str(e.endpoint_url),
        "--key", str(e.key), "--secret", str(e.secret),
        "--stac", world.url, "--collection", "sentinel-2-l2a", "--datetime", "2019-05/2019-06",
        "--ids", ",".join(world.ids), "--max-cloud", "50", "--composite", "month",
        "--cluster", "sync", "--batch", "2", "--part", "may-june", "--json",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    ts = TimeSeries.open(spec, part="may-june")
    assert sorted(ts.patch_ids) == world.ids  # in sample_index order
    table = ts.acquisitions()
    # 3 patches x 3 dates below 50 % cloud (the 80 % date is left out by --max-cloud).
    assert table.num_rows == 9
    assert not any(d.day == 12 for d in table["datetime"].to_pylist())
    check_series(ts, world, world.ids)
    # Monthly composites: the lower median of the valid pixels of each month's acquisitions.
    assert [t.month for t in ts.times] == [5, 6]
    for series in range(len(ts)):
        acq = ts.acquisitions([series]).to_pylist()
        scl = ts.read([series], "scl")[0]
        for g in GROUPS:
            raw = ts.read([series], g.name)[0]
            period = period_index(
                [a["datetime"] for a in acq],
                ts.times,
                datetime(2019, 6, 30, 23, 59, 59, tzinfo=UTC),
            )
            want = reference_composite(raw, scl, period, 2)
            got = ts.composite([series], g.name)[0]
            np.testing.assert_array_equal(got, want)
            assert got.shape == (2, *g.sample_shape)
        # Where exactly one acquisition of a month is valid, the composite is that pixel.
        may = [i for i, a in enumerate(acq) if a["datetime"].month == 5]
        raw10 = ts.read([series], "s2_10m")[0]
        ok = ~np.isin(scl[may].repeat(2, 1).repeat(2, 2), [0, 1, 3, 8, 9, 10])
        only_first = ok[0] & ~ok[1]
        np.testing.assert_array_equal(
            ts.composite([series])[0, 0][:, only_first], raw10[may[0]][:, only_first]
        )
    manifest = read_manifest(spec)
    assert manifest["derived"]["timeseries/may-june"]["acquisitions"] == 9
    listed = {o["path"] for o in manifest["objects"]}
    assert "timeseries/r1/may-june/acquisitions.parquet" in listed
    # A rerun with the same options does nothing.
    again = cut_timeseries(
        spec,
        TimeSeriesOptions(world.url, "sentinel-2-l2a", "2019-05/2019-06", part="may-june",
                          max_cloud=50, composite="month", batch=2),
        Selection(ids=tuple(world.ids)),
        cluster=ClusterSpec("sync"),
    )  # fmt: skip
    assert again.already_done
    check_loader(spec, ts, world)


def check_loader(spec: object, ts: TimeSeries, world: World) -> None:
    """The loader delivers the composites as ``s2_timeseries`` with the usual order rules."""
    from lake.loader import LakeDataLoader, LakeDataset

    ds = LakeDataset(spec, modalities=["s2_timeseries", "labels"], dtype="native", seed=3)
    assert ds.timeseries == "may-june" and [t.month for t in ds.timeseries_times] == [5, 6]
    batches = list(LakeDataLoader(ds, batch_size=2))
    got = [pid for b in batches for pid in b["patch_id"]]
    assert sorted(got) == world.ids  # the epoch is the pairs the part covers
    for b in batches:
        want = ts.composite(ts.indices_of(b["patch_id"]))
        np.testing.assert_array_equal(b["s2_timeseries"].numpy(), want)
        assert b["s2_timeseries"].shape[1:] == (2, 4, 120, 120)

    def fresh() -> LakeDataset:
        return LakeDataset(spec, modalities=["s2_timeseries"], dtype="native", seed=3)

    resumed = fresh()
    resumed.load_state_dict(fresh().state_dict(consumed=1))
    assert [s["patch_id"] for s in resumed] == [s["patch_id"] for s in fresh()][1:]
    flipped = LakeDataset(spec, modalities=["s2_timeseries"], augment=True, shuffle=False)
    for sample in flipped:
        from lake.vlm.augment import transform_image

        (series,) = ts.indices_of([sample["patch_id"]])
        want = transform_image(ts.composite([series])[0].astype(np.float32), sample["transform"])
        np.testing.assert_array_equal(sample["s2_timeseries"].numpy(), want)
    outside = sorted(set(open_lake(spec).current.sample_index) - set(world.ids))[0]
    with pytest.raises(PatchNotFound, match="not in time-series part 'may-june'"):
        LakeDataset(spec, select=[outside], modalities=["s2_timeseries"])
    with pytest.raises(ConfigError, match=r"timeseries='may-june'.*not requested"):
        LakeDataset(spec, modalities=["s2_10m"], timeseries="may-june")
    with pytest.raises(ConfigError, match="no time-series part 'nope'"):
        LakeDataset(spec, modalities=["s2_timeseries"], timeseries="nope")


def test_resumes_after_a_crash(world: World, tmp_path: Path) -> None:
    """A run that dies mid-way (a scene file vanishes) keeps its finished tasks; a rerun reuses
    them and the result is the same as a clean run."""
    spec = copy_lake(world.lake, tmp_path / "lake")
    order = open_lake(spec).current.sample_index
    last = max(range(len(world.ids)), key=lambda p: order[world.ids[p]])  # cut last
    victim = Path(world.scenes.items[last]["assets"]["B04"]["href"])  # its May scene's red band
    opts = TimeSeriesOptions(world.url, "sentinel-2-l2a", "2019-05", part="p", batch=1)
    moved = victim.with_suffix(".gone")
    victim.rename(moved)
    try:
        with pytest.raises(Exception, match=r"B04\.tif"):
            cut_timeseries(spec, opts, Selection(ids=tuple(world.ids)), cluster=ClusterSpec("sync"))
    finally:
        moved.rename(victim)
    rep = cut_timeseries(spec, opts, Selection(ids=tuple(world.ids)), cluster=ClusterSpec("sync"))
    assert (rep.tasks, rep.resumed, rep.acquisitions) == (3, 2, 6)
    check_series(TimeSeries.open(spec, part="p"), world, world.ids)
    assert not (tmp_path / "lake" / "_work" / "r1" / "timeseries" / "p").exists()
    # The amended manifest lists every object of the part with its checksum.
    report = verify_release(spec, cluster=ClusterSpec("sync"))
    assert report.ok, report.problems


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--datetime", "2030-01/2030-02"], "no scene of 'sentinel-2-l2a'"),
        (["--collection", "landsat-c2-l2"], "--collection 'landsat-c2-l2' is not a collection"),
        (["--datetime", "2019-13"], "--datetime '2019-13' is not a date"),
        (["--datetime", "2019-06/2019-05"], "the end is before the start"),
        (["--composite", "weekly"], "--composite 'weekly' is not one of none, 10D, month"),
        (["--max-cloud", "0"], "--max-cloud 0.0 is not a percentage"),
        (["--part", "../x"], "--part '../x' is invalid"),
        (["--ids", "S2B_MSIL2A_nope_X_99_99"], "patch(es) ['S2B_MSIL2A_nope_X_99_99'] are not in"),
        (["--bbox", "1,2,3"], "--bbox '1,2,3': give west,south,east,north"),
    ],
)
def test_bad_inputs_name_the_value(world: World, args: list[str], message: str) -> None:
    base = {"--datetime": "2019-05/2019-06", "--ids": world.ids[0]}
    for k, v in zip(args[::2], args[1::2], strict=True):
        base[k] = v
    if "--bbox" in base:
        del base["--ids"]
    flat = [x for kv in base.items() for x in kv]
    res = lake_cli(
        "pipeline", "timeseries", "--lake", str(world.lake.root), "--stac", world.url,
        "--cluster", "sync", *flat,
    )  # fmt: skip
    assert res.exit_code == 1, res.output
    assert message in res.output


def test_a_patch_outside_every_scene_is_named(world: World) -> None:
    t = open_lake(world.lake.spec).current.patches(columns=["patch_id"])
    outside = sorted(set(t["patch_id"].to_pylist()) - set(world.ids))[0]
    with pytest.raises(
        SceneSearchError, match=rf"outside every scene found, e\.g\. \['{outside}'\]"
    ):
        cut_timeseries(
            world.lake.spec,
            TimeSeriesOptions(world.url, "sentinel-2-l2a", "2019-05"),
            Selection(ids=(world.ids[0], outside)),
            cluster=ClusterSpec("sync"),
        )


def test_selection_must_be_one_kind(world: World) -> None:
    opts = TimeSeriesOptions(world.url, "sentinel-2-l2a", "2019-05")
    with pytest.raises(ConfigError, match="exactly one of --ids, --sql or --bbox"):
        cut_timeseries(world.lake.spec, opts, Selection(), cluster=ClusterSpec("sync"))
    with pytest.raises(ConfigError, match=r"--bbox \[0.0, 0.0, 1.0, 1.0\] selects no patch"):
        cut_timeseries(
            world.lake.spec, opts, Selection(bbox=(0, 0, 1, 1)), cluster=ClusterSpec("sync")
        )
    with pytest.raises(PatchNotFound, match="--sql"):
        cut_timeseries(
            world.lake.spec,
            opts,
            Selection(sql="SELECT 'nope' AS patch_id"),
            cluster=ClusterSpec("sync"),
        )


def test_periods() -> None:
    when = parse_datetime("2019-01/2019-03")
    assert [p.month for p in periods_of(when, "month")] == [1, 2, 3]
    tens = periods_of(parse_datetime("2019-01-01/2019-01-31"), "10D")
    assert [p.day for p in tens] == [1, 11, 21, 31]
    assert periods_of(when, "none") == []
    assert when.stac == "2019-01-01T00:00:00Z/2019-03-31T23:59:59Z"
