"""The export job: a SQL or STAC subset as a new lake (bit-exact, verified, with its text rows)
or as WebDataset shards (read back with webdataset); reruns; bad inputs; S3."""

from __future__ import annotations

import gc
import json

import numpy as np
import pyarrow.compute as pc
import pytest

from lake.config import store_spec
from lake.errors import ConfigError, QueryError, ReadOnlyError, ReleaseNotFound
from lake.reader import open_lake
from pipelines.cluster.spec import ClusterSpec
from pipelines.jobs.export import export, select_pairs
from pipelines.jobs.stats import BANDS
from pipelines.jobs.verify import verify_release
from tests.conftest import s3_spec_for
from tests.pipelines.jobs.helpers import RELEASE, THREADS

TRAIN = "SELECT patch_id FROM patches WHERE split = 'train'"


def assert_same_pairs(src_spec, dst_spec, ids) -> None:
    src, dst = open_lake(src_spec).current, open_lake(dst_spec).current
    assert sorted(dst.sample_index) == sorted(ids)
    for pid in ids:
        a, b = src.patch(pid), dst.patch(pid)
        for band in (*BANDS, "reference_map"):
            np.testing.assert_array_equal(a[band], b[band], err_msg=f"{pid} {band}")
            assert a[band].dtype == b[band].dtype
        assert a["metadata"]["labels"] == b["metadata"]["labels"]


def test_sql_subset_as_a_new_lake(jobs_lake, tmp_path):
    src = open_lake(jobs_lake).current
    want = src.patches(filter=pc.field("split") == "train")["patch_id"].to_pylist()
    target = store_spec(str(tmp_path / "out"), environ={})
    report = export(jobs_lake, target, sql=TRAIN, per_shard=4, cluster=THREADS)
    assert report.patches == len(want) > 0 and not report.already_done
    assert_same_pairs(jobs_lake, target, want)
    text = open_lake(target).current.annotations(columns=["patch_id", "ID"])
    src_text = src.annotations(columns=["patch_id", "ID"])
    keep = pc.is_in(src_text["patch_id"], value_set=text["patch_id"].unique())
    assert report.annotations == text.num_rows == src_text.filter(keep).num_rows > 0
    assert set(text["patch_id"].to_pylist()) <= set(want)
    assert verify_release(target, cluster=ClusterSpec("sync")).ok
    again = export(jobs_lake, target, sql=TRAIN, per_shard=4, cluster=THREADS)
    assert again.already_done


# webdataset leaves its shard files for the garbage collector to close (ResourceWarning).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_stac_search_as_webdataset(jobs_lake, tmp_path):
    import webdataset as wds

    src = open_lake(jobs_lake).current
    country = src.patches(columns=["country"])["country"][0].as_py()
    want = src.patches(filter=pc.field("country") == country)["patch_id"].to_pylist()
    target = store_spec(str(tmp_path / "wds"), environ={})
    report = export(
        jobs_lake,
        target,
        search={"filter": f"country = '{country}'"},
        fmt="webdataset",
        per_shard=3,
        cluster=THREADS,
    )
    assert report.patches == len(want) and report.shards == -(-len(want) // 3)
    index = json.loads((tmp_path / "wds" / "index.json").read_text())
    urls = [str(tmp_path / "wds" / s["name"]) for s in index["shards"]]
    assert sum(s["samples"] for s in index["shards"]) == len(want)
    seen = {}
    for sample in wds.WebDataset(urls, shardshuffle=False).decode():
        seen[sample["__key__"]] = sample
    gc.collect()  # here, not in the next test: closes the shard files webdataset left open
    assert sorted(seen) == sorted(want)
    for pid, sample in seen.items():
        pair = src.patch(pid)
        np.testing.assert_array_equal(sample["s2_10m.npy"][2], pair["B04"])
        np.testing.assert_array_equal(sample["s1.npy"][1], pair["VH"])
        assert sample["s1.npy"].dtype == np.float32 and sample["s2_20m.npy"].dtype == np.uint16
        assert sample["json"]["labels"] == pair["metadata"]["labels"]
    # A rerun of a finished export does nothing; one of an interrupted export resumes.
    assert export(
        jobs_lake,
        target,
        search={"filter": f"country = '{country}'"},
        fmt="webdataset",
        per_shard=3,
        cluster=THREADS,
    ).already_done


def test_interrupted_webdataset_export_resumes(jobs_lake, tmp_path):
    target = store_spec(str(tmp_path / "wds"), environ={})
    first = export(jobs_lake, target, sql=TRAIN, fmt="webdataset", per_shard=2, cluster=THREADS)
    index = tmp_path / "wds" / "index.json"
    body = index.read_bytes()
    # Simulate a crash after two shards: no index, the other shards' records gone.
    index.unlink()
    from pipelines.jobs.export import WORK

    for s in json.loads(body)["shards"][2:]:
        (tmp_path / "wds" / s["name"]).unlink()
    for s in json.loads(body)["shards"][:2]:
        (tmp_path / "wds" / WORK).mkdir(exist_ok=True)
        (tmp_path / "wds" / WORK / f"{s['name']}.json").write_text(json.dumps(s))
    again = export(jobs_lake, target, sql=TRAIN, fmt="webdataset", per_shard=2, cluster=THREADS)
    assert again.resumed == 2 and again.shards == first.shards
    assert index.read_bytes() == body  # same bytes, same checksums (mtime 0)


def test_bad_inputs(jobs_lake, tmp_path):
    target = store_spec(str(tmp_path / "t"), environ={})
    with pytest.raises(QueryError, match="selects no pairs"):
        export(jobs_lake, target, sql="SELECT patch_id FROM patches WHERE split = 'nope'")
    with pytest.raises(ReadOnlyError):
        export(jobs_lake, target, sql=f"COPY patches TO '{tmp_path}/x.parquet'")
    with pytest.raises(QueryError, match="DELETE FROM patches"):
        export(jobs_lake, target, sql="DELETE FROM patches")
    with pytest.raises(QueryError, match="patch_id"):
        export(jobs_lake, target, sql="SELECT country FROM patches")
    with pytest.raises(QueryError, match="selects no pairs"):
        export(jobs_lake, target, search={"filter": "country = 'Atlantis'"})
    with pytest.raises(ConfigError, match="either --sql or a search, not both"):
        export(jobs_lake, target, sql=TRAIN, search={"filter": "country = 'Atlantis'"})
    assert select_pairs(open_lake(jobs_lake).release()) == sorted(
        open_lake(jobs_lake).release().sample_index
    )  # neither: every pair
    with pytest.raises(ConfigError, match="format 'zip'"):
        export(jobs_lake, target, sql=TRAIN, fmt="zip")
    with pytest.raises(ReleaseNotFound, match="'v7'"):
        export(jobs_lake, target, release="v7", sql=TRAIN)
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "precious.txt").write_text("keep me")
    with pytest.raises(ConfigError, match=r"not empty.*precious.txt"):
        export(jobs_lake, target, sql=TRAIN, cluster=ClusterSpec("sync"))
    inside = store_spec(jobs_lake.root + "/sub", environ={})
    with pytest.raises(ConfigError, match="overlaps the source"):
        export(jobs_lake, inside, sql=TRAIN, cluster=ClusterSpec("sync"))
    assert (tmp_path / "t" / "precious.txt").read_text() == "keep me"


@pytest.mark.s3
def test_export_to_s3(s3_server, jobs_lake):
    target = s3_spec_for(s3_server)
    ids = sorted(open_lake(jobs_lake).current.sample_index)[:5]
    quoted = ", ".join(f"'{i}'" for i in ids)
    report = export(
        jobs_lake,
        target,
        sql=f"SELECT patch_id FROM patches WHERE patch_id IN ({quoted})",
        per_shard=2,
        cluster=THREADS,
    )
    assert report.patches == 5 and report.target.startswith("s3://")
    assert_same_pairs(jobs_lake, target, ids)
    assert verify_release(target, RELEASE, cluster=THREADS).ok


def test_a_killed_export_leaves_no_staged_text_after_the_next_run(jobs_lake, tmp_path):
    """kill -9 during a lake export used to leave a ``lake-export-*`` folder with a copy of the
    selected annotations in the temporary directory for good; the next export removes it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    cmd = [sys.executable, "-m", "pipelines.cli", "pipeline", "export", str(tmp_path / "out"),
           "--sql", TRAIN, "--lake", jobs_lake.url, "--cluster", "sync", "--per-shard", "2",
           "--json"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not list(tmp.glob("lake-export-*/BigEarthNet.txt.parquet")):
            assert proc.poll() is None, "the export ended before it staged its text"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    left = list(tmp.glob("lake-export-*"))
    assert len(left) == 1 and (left[0] / "BigEarthNet.txt.parquet").exists()
    # Another user's or a live export's folder is left alone.
    live = tmp / "lake-export-live"
    live.mkdir()
    (live / "owner.json").write_text(
        json.dumps({"host": __import__("socket").gethostname(), "pid": os.getpid(), "time": 0})
    )
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["patches"] > 0
    assert sorted(p.name for p in tmp.glob("lake-export-*")) == ["lake-export-live"]
