"""Ingest end to end: every band read back equals the source, bit for bit, for each source kind,
on local disk and on the embedded S3 endpoint; resume, idempotence, plain-Zarr readability."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import zarr

from lake.config import store_spec
from lake.reader import open_lake
from pipelines.cluster.spec import ClusterSpec
from pipelines.jobs.ingest import IngestOptions, ingest
from pipelines.sources.base import PAIR_BANDS
from pipelines.sources.open import open_source
from pipelines.synth import synthesize
from tests.conftest import s3_spec_for

N = 24
OPTS = IngestOptions(release="r1", samples_per_shard=8, scan_batch=8, progress=False)
THREADS = ClusterSpec("threads", 2)


@pytest.fixture(scope="module", params=["folders", "tar.zst", "lmdb"])
def source_dir(request, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("src") / request.param
    synthesize(N, out, fmt=request.param, seed=7)
    return out


def assert_lake_equals_source(spec, source) -> None:
    release = open_lake(spec).current
    meta = source.metadata()
    assert len(release) == meta.num_rows
    for pid, s1 in zip(meta["patch_id"].to_pylist(), meta["s1_name"].to_pylist(), strict=True):
        want = source.read_pair(pid, s1)
        got = release.patch(pid)
        for band in PAIR_BANDS:
            assert got[band].dtype == want.bands[band].dtype, (pid, band)
            np.testing.assert_array_equal(got[band], want.bands[band], err_msg=f"{pid} {band}")
        assert got["metadata"]["s1_name"] == s1


@pytest.fixture(params=["file", pytest.param("s3", marks=pytest.mark.s3)])
def lake_spec(request, tmp_path):
    """An empty lake in a folder or on the session's S3 endpoint (started here, in the setup,
    so the leak check does not take the endpoint for a process the test left running)."""
    if request.param == "file":
        return store_spec(str(tmp_path / "lake"), environ={})
    return s3_spec_for(request.getfixturevalue("s3_server"))


def test_round_trip_is_bit_exact(source_dir, lake_spec):
    spec = lake_spec
    source = open_source(source_dir)
    report = ingest(source, spec, OPTS, THREADS)
    assert report.patches == N and report.n_quarantined == 0
    text_rows = pq.read_metadata(source_dir / "BigEarthNet.txt.parquet").num_rows
    assert report.annotations == text_rows
    assert_lake_equals_source(spec, source)


def test_layout_readable_without_project_code(source_dir, tmp_path):
    spec = store_spec(str(tmp_path / "lake"), environ={})
    source = open_source(source_dir)
    ingest(source, spec, OPTS, THREADS)
    group = zarr.open_group(str(tmp_path / "lake" / "patches" / "r1.zarr"), mode="r")
    assert group["s2_10m"].shape == (N, 4, 120, 120) and group["s2_10m"].dtype == np.uint16
    assert group["s1"].dtype == np.float32 and group["s2_60m"].shape == (N, 2, 20, 20)
    assert group["s2_20m"].shards == (8, 6, 60, 60) and group["s2_20m"].chunks == (1, 6, 60, 60)
    assert list(group["s2_20m_band"][:]) == ["B05", "B06", "B07", "B8A", "B11", "B12"]
    import xarray as xr

    ds = xr.open_zarr(str(tmp_path / "lake" / "patches" / "r1.zarr"), consolidated=False)
    assert ds["s2_10m"].dims == ("sample", "s2_10m_band", "y_10m", "x_10m")
    # Shuffled write order, recorded in the table.
    table = pq.read_table(tmp_path / "lake" / "tables" / "r1" / "patches")
    order = table.sort_by("sample_index")["patch_id"].to_pylist()
    assert order == [str(x) for x in group["patch_id"][:]]
    assert order != sorted(order)
    assert b"geo" in table.schema.metadata


def test_rerun_after_success_is_a_noop(source_dir, tmp_path):
    spec = store_spec(str(tmp_path / "lake"), environ={})
    source = open_source(source_dir)
    first = ingest(source, spec, OPTS, THREADS)
    manifest = (tmp_path / "lake" / "releases" / "r1" / "manifest.json").read_bytes()
    again = ingest(source, spec, OPTS, THREADS)
    assert again.already_published and again.patches == first.patches
    assert (tmp_path / "lake" / "releases" / "r1" / "manifest.json").read_bytes() == manifest
    assert not (tmp_path / "lake" / "_work").exists() or not any(
        (tmp_path / "lake" / "_work").iterdir()
    )


def test_local_dask_cluster_gives_the_same_release(tmp_path, source_dir):
    if source_dir.name != "folders":
        pytest.skip("one source kind is enough for the process cluster")
    a = store_spec(str(tmp_path / "a"), environ={})
    b = store_spec(str(tmp_path / "b"), environ={})
    source = open_source(source_dir)
    ingest(source, a, OPTS, ClusterSpec("local", 2))
    ingest(source, b, OPTS, ClusterSpec("sync"))
    ma, mb = (open_lake(s).current.manifest["objects"] for s in (a, b))
    assert ma == mb
