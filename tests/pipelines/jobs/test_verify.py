"""The verify job: an intact release passes (also after stats amended it); a deleted and a
corrupted object are each named; counts are checked; unknown release; S3."""

from __future__ import annotations

import os

import pytest

from lake.errors import ReleaseNotFound
from lake.reader import open_lake
from pipelines.cluster.spec import ClusterSpec
from pipelines.jobs.stats import compute_stats
from pipelines.jobs.verify import verify_release
from tests.conftest import s3_spec_for
from tests.pipelines.jobs.helpers import RELEASE, THREADS, ingest_into


def test_intact_release_passes_before_and_after_stats(jobs_lake):
    report = verify_release(jobs_lake, cluster=THREADS, batch=8)
    n_objects = len(open_lake(jobs_lake).current.manifest["objects"])
    assert report.ok, report.text()
    assert report.objects == n_objects and report.patches == 48 and report.bytes > 0
    assert report.unlisted == []
    compute_stats(jobs_lake, cluster=THREADS)
    again = verify_release(jobs_lake, cluster=ClusterSpec("sync"))
    assert again.ok, again.text()
    assert again.objects == n_objects + 1  # the table was added; the collection replaced


def test_deleted_and_corrupted_objects_are_named(jobs_lake):
    root = jobs_lake.root
    deleted = f"patches/{RELEASE}.zarr/s1/c/3/0/0/0"
    corrupted = f"tables/{RELEASE}/patches/part-0.parquet"
    os.remove(f"{root}/{deleted}")
    with open(f"{root}/{corrupted}", "r+b") as f:
        f.seek(100)
        f.write(b"\x00garbage\x00")
    report = verify_release(jobs_lake, cluster=THREADS, batch=8)
    assert not report.ok
    bad = {p.path: p.kind for p in report.problems}
    assert bad == {deleted: "missing", corrupted: "checksum"}
    text = report.text()
    assert deleted in text and corrupted in text and "2 problem(s)" in text
    assert report.to_dict()["ok"] is False


def test_truncated_object_and_counts(jobs_lake):
    path = f"{jobs_lake.root}/stac/{RELEASE}/items.parquet"
    with open(path, "r+b") as f:
        f.truncate(10)
    # The manifest claims more pairs than the arrays and tables hold.
    import json
    from pathlib import Path

    mpath = Path(f"{jobs_lake.root}/releases/{RELEASE}/manifest.json")
    manifest = json.loads(mpath.read_text())
    manifest["counts"]["patches"] = 50
    mpath.write_text(json.dumps(manifest))
    report = verify_release(jobs_lake, cluster=ClusterSpec("sync"))
    kinds = {(p.path, p.kind) for p in report.problems}
    assert (f"stac/{RELEASE}/items.parquet", "size") in kinds
    assert ("patches table", "count") in kinds
    assert any(k == "count" and path.endswith("/s2_10m") for path, k in kinds)


def test_unlisted_objects_are_reported_not_failed(jobs_lake):
    from pathlib import Path

    Path(f"{jobs_lake.root}/tables/{RELEASE}/stray.txt").write_text("left over")
    report = verify_release(jobs_lake, cluster=ClusterSpec("sync"))
    assert report.ok and report.unlisted == [f"tables/{RELEASE}/stray.txt"]


def test_unknown_release(jobs_lake):
    with pytest.raises(ReleaseNotFound, match="'v9'"):
        verify_release(jobs_lake, "v9", cluster=ClusterSpec("sync"))


@pytest.mark.s3
def test_verify_on_s3_names_a_deleted_object(s3_server, jobs_source):
    spec = s3_spec_for(s3_server)
    ingest_into(jobs_source, spec)
    assert verify_release(spec, cluster=THREADS).ok
    from lake.storage import filesystem

    victim = f"patches/{RELEASE}.zarr/s2_10m/c/0/0/0/0"
    filesystem(spec).rm_file(spec.path(victim))
    report = verify_release(spec, cluster=THREADS)
    assert [(p.path, p.kind) for p in report.problems] == [(victim, "missing")]
    assert spec.secret and spec.secret not in report.text()
