"""The stats job: exact numbers against numpy, idempotence and resume, a killed worker, the
manifest amendment (verification still passes), the STAC summaries, S3, bad inputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from catalog.build import verify_catalog
from lake.config import StoreSpec
from lake.errors import ReleaseNotFound
from lake.layout import band_stats_path, stats_work_path
from lake.reader import open_lake
from lake.storage import filesystem, read_json
from pipelines.cluster.spec import ClusterSpec
from pipelines.jobs.stats import (
    BANDS,
    NBINS,
    Partial,
    combine,
    compute_stats,
    shard_partial,
    shard_tasks,
    stats_task,
)
from tests.conftest import s3_spec_for
from tests.pipelines.jobs.helpers import RELEASE, THREADS, ingest_into, numpy_stats

SYNC = ClusterSpec("sync")


def assert_matches_numpy(table, spec: StoreSpec) -> None:
    """Every row of the table equals the numpy computation (to float64 rounding)."""
    want = numpy_stats(spec)
    rows = table.to_pylist()
    assert {(r["group_by"], r["group"], r["band"]) for r in rows} == set(want)
    for r in rows:
        w = want[(r["group_by"], r["group"], r["band"])]
        where = f"{r['group_by']}={r['group']} {r['band']}"
        assert r["count"] == w["count"], where
        assert r["mean"] == pytest.approx(w["mean"], rel=1e-12, abs=1e-9), where
        assert r["std"] == pytest.approx(w["std"], rel=1e-10, abs=1e-9), where
        assert (r["min"], r["max"]) == (w["min"], w["max"]), where
        edges = np.array(r["bin_edges"])
        assert len(r["hist"]) == NBINS and len(edges) == NBINS + 1
        hist, _ = np.histogram(np.clip(w["values"], edges[0], edges[-1]), edges)
        np.testing.assert_array_equal(r["hist"], hist, err_msg=where)
        assert sum(r["hist"]) == r["count"]


def test_stats_equal_numpy_and_are_published(jobs_lake):
    report = compute_stats(jobs_lake, cluster=THREADS)
    assert report.patches == 48 and report.shards == 24 and not report.already_done
    assert Path(report.path).is_file()
    assert report.table.num_rows % len(BANDS) == 0
    assert_matches_numpy(report.table, jobs_lake)
    # The manifest lists the table and the new collection; the catalog check still passes.
    manifest = open_lake(jobs_lake).current.manifest
    listed = {o["path"]: o for o in manifest["objects"]}
    assert band_stats_path(RELEASE) in listed
    assert manifest["derived"]["band_stats"]["shards"] == 24
    assert manifest["amendments"][-1]["replaced"][0]["path"] == f"stac/{RELEASE}/collection.json"
    verify_catalog(jobs_lake, RELEASE)
    coll = read_json(filesystem(jobs_lake), jobs_lake.path(f"stac/{RELEASE}/collection.json"))
    bands = {b["name"]: b["statistics"] for b in coll["summaries"]["bands"]}
    assert set(bands) == set(BANDS)
    assert coll["assets"]["band_stats"]["file:size"] == listed[band_stats_path(RELEASE)]["size"]
    # The work area is gone.
    assert not filesystem(jobs_lake).exists(jobs_lake.path(stats_work_path(RELEASE)))


def test_rerun_resumes_and_is_idempotent(jobs_lake):
    # A run that died after 10 of 24 shards: their partials are in the work area.
    rel = open_lake(jobs_lake).current
    for t in shard_tasks(rel)[:10]:
        stats_task(t, jobs_lake, RELEASE)
    first = compute_stats(jobs_lake, cluster=SYNC)
    assert first.resumed == 10 and first.shards == 24
    assert_matches_numpy(first.table, jobs_lake)
    again = compute_stats(jobs_lake, cluster=SYNC)
    assert again.already_done and again.table.equals(first.table)
    assert len(open_lake(jobs_lake).current.manifest["amendments"]) == 1
    forced = compute_stats(jobs_lake, cluster=SYNC, force=True)
    assert forced.table.equals(first.table) and forced.resumed == 0
    # Same bytes again: nothing to amend, the manifest records no new amendment.
    assert len(open_lake(jobs_lake).current.manifest["amendments"]) == 1


def test_combine_is_order_independent(jobs_lake):
    rel = open_lake(jobs_lake).current
    parts = [shard_partial(t, jobs_lake, RELEASE) for t in shard_tasks(rel)]
    forward = Partial.empty([("all", "all")])
    for p in parts:
        forward = combine(forward, p)
    backward = Partial.empty([("all", "all")])
    for p in reversed(parts):
        backward = combine(backward, p)
    rows = [backward.groups.index(g) for g in forward.groups]
    np.testing.assert_array_equal(forward.count, backward.count[rows])
    np.testing.assert_allclose(forward.mean, backward.mean[rows], rtol=1e-13)
    np.testing.assert_allclose(forward.m2, backward.m2[rows], rtol=1e-11)


def test_killed_worker_still_gives_the_right_numbers(jobs_lake):
    """MUST-SHOW: SIGKILL a worker of a LocalCluster with nannies during the job."""
    from distributed import Client, LocalCluster

    work = Path(jobs_lake.path(stats_work_path(RELEASE)))
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        before = client.run(os.getpid)
        assert len(before) == 2
        result: dict[str, object] = {}

        def job() -> None:
            try:
                result["report"] = compute_stats(
                    jobs_lake, cluster=ClusterSpec(cluster.scheduler_address)
                )
            except BaseException as exc:  # pragma: no cover (reported below)
                result["error"] = exc

        thread = threading.Thread(target=job)
        thread.start()
        deadline = time.monotonic() + 60
        while not list(work.glob("shard-*.npz")) and time.monotonic() < deadline:
            time.sleep(0.002)
        assert list(work.glob("shard-*.npz")), "the job never started"
        victim = sorted(before.values())[0]
        running_when_killed = thread.is_alive()
        done_when_killed = len(list(work.glob("shard-*.npz")))
        os.kill(victim, signal.SIGKILL)
        thread.join(120)
        assert not thread.is_alive()
        assert "error" not in result, result.get("error")
        assert running_when_killed and done_when_killed < 24
        # The nanny replaced the worker.
        client.wait_for_workers(2, timeout=30)
        after = client.run(os.getpid)
        assert victim not in after.values() and len(after) == 2
    report = result["report"]
    assert report.shards == 24  # type: ignore[attr-defined]
    assert_matches_numpy(report.table, jobs_lake)  # type: ignore[attr-defined]


@pytest.mark.s3
def test_stats_on_s3(s3_server, jobs_source):
    spec = s3_spec_for(s3_server)
    ingest_into(jobs_source, spec)
    report = compute_stats(spec, RELEASE, cluster=THREADS)
    assert report.path.startswith("s3://") and report.path.endswith("band_stats.parquet")
    assert_matches_numpy(report.table, spec)
    verify_catalog(spec, RELEASE)
    # Tasks carry shard numbers and labels; the spec (scattered, never in a key) hides its secret.
    tasks = shard_tasks(open_lake(spec).current)
    assert spec.secret and spec.secret not in repr(spec) and spec.secret not in repr(tasks)


def test_unknown_release_is_named(jobs_lake):
    with pytest.raises(ReleaseNotFound, match=r"'nope'.*r1"):
        compute_stats(jobs_lake, "nope", cluster=SYNC)


def test_empty_lake_says_ingest(tmp_path):
    from lake.config import store_spec

    with pytest.raises(ReleaseNotFound, match="lake ingest"):
        compute_stats(store_spec(str(tmp_path / "none"), environ={}), cluster=SYNC)


def test_loader_normalises_with_the_lakes_own_stats(jobs_lake):
    from lake.errors import LayoutError
    from lake.loader import LakeDataset
    from lake.loader.stats import lake_band_stats

    with pytest.raises(LayoutError, match="lake pipeline stats"):
        LakeDataset(jobs_lake, normalize="lake", modalities=["s2_10m"])
    report = compute_stats(jobs_lake, cluster=SYNC)
    train = {
        r["band"]: (r["mean"], r["std"])
        for r in report.table.to_pylist()
        if (r["group_by"], r["group"]) == ("split", "train")
    }
    assert lake_band_stats(jobs_lake, RELEASE) == train
    ds = LakeDataset(jobs_lake, normalize="lake", modalities=["s2_10m", "s1"], shuffle=False)
    official = LakeDataset(jobs_lake, normalize=True, modalities=["s2_10m"], shuffle=False)
    sample = next(iter(ds))
    pair = open_lake(jobs_lake).current.patch(sample["patch_id"])
    for i, band in enumerate(("B02", "B03", "B04", "B08")):
        mean, std = train[band]
        want = (pair[band].astype(np.float32) - np.float32(mean)) * np.float32(1 / std)
        np.testing.assert_allclose(sample["s2_10m"][i], want, rtol=1e-5, atol=1e-5)
    mean, std = train["VH"]
    np.testing.assert_allclose(sample["s1"][1], (pair["VH"] - mean) / std, rtol=1e-4, atol=1e-4)
    assert not np.allclose(next(iter(official))["s2_10m"], sample["s2_10m"])
    with pytest.raises(ValueError, match="normalize='bogus'"):
        LakeDataset(jobs_lake, normalize="bogus")


def test_rerunning_stats_on_a_release_that_has_them_never_aborts(jobs_lake):
    """``lake pipeline stats`` on a release with statistics exited 134 ("terminate called
    without an active exception") in about 1 run of 6: Arrow's threads dropped the last
    reference to the Python file it had read the table from while the interpreter was shutting
    down. 20 reruns of the real CLI, each must exit 0."""
    compute_stats(jobs_lake, cluster=SYNC)
    cmd = [sys.executable, "-m", "pipelines.cli", "pipeline", "stats", "--lake", jobs_lake.url,
           "--cluster", "sync", "--json"]  # fmt: skip
    results = [subprocess.run(cmd, capture_output=True, text=True, timeout=120) for _ in range(20)]
    assert [r.returncode for r in results] == [0] * 20, [r.stderr[-300:] for r in results]
    assert all(json.loads(r.stdout)["already_done"] for r in results)
