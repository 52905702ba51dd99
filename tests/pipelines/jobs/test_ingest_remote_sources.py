"""Ingest from sources on S3 (GeoTIFF folders, .tar.zst archives) on a 2-worker Dask Gateway,
whose workers share no disk with the driver, equals a local ingest of the same pairs, bit for bit
(the archives staged by the workers); staging on a cluster reruns only what failed; and a source
URL that is wrong says so, naming the URL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from lake.config import StoreSpec, store_spec
from lake.errors import SourceError
from lake.reader import open_lake
from lake.storage import filesystem
from pipelines.cluster.runner import Runner
from pipelines.cluster.spec import ClusterSpec
from pipelines.jobs.ingest import IngestOptions, ingest
from pipelines.local.gateway import LocalGateway
from pipelines.local.s3 import EmbeddedS3
from pipelines.sources.open import open_source
from pipelines.sources.tarzst import ARCHIVES
from pipelines.synth import synthesize
from tests.conftest import s3_spec_for

pytestmark = pytest.mark.s3

N = 20
OPTS = IngestOptions(release="r1", samples_per_shard=8, scan_batch=8, progress=False)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalGateway]:
    """dask-gateway-server (infra/gateway/dask_gateway_config.py) on a free loopback port."""
    with LocalGateway(tmp_path_factory.mktemp("gateway")) as gw:
        yield gw


@pytest.fixture(scope="module")
def local_sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same 20 pairs as GeoTIFF folders and as .tar.zst archives (same seed)."""
    root = tmp_path_factory.mktemp("remote-src")
    out = {}
    for fmt in ("folders", "tar.zst"):
        out[fmt] = root / fmt
        synthesize(N, out[fmt], fmt=fmt, seed=23)
    return out


@pytest.fixture(scope="module")
def uploaded(s3_server: EmbeddedS3, local_sources: dict[str, Path]) -> dict[str, str]:
    """Each source uploaded to the embedded S3 endpoint: kind -> URL."""
    spec = s3_spec_for(s3_server)
    fs = filesystem(spec)
    for fmt, path in local_sources.items():
        fs.put(str(path), spec.path(fmt), recursive=True)
    return {fmt: f"{spec.url}/{fmt}" for fmt in local_sources}


@pytest.fixture(scope="module")
def local_lake(
    tmp_path_factory: pytest.TempPathFactory, local_sources: dict[str, Path]
) -> StoreSpec:
    """The reference: the local folders ingested in-process."""
    spec = store_spec(str(tmp_path_factory.mktemp("local-lake") / "lake"), environ={})
    ingest(open_source(local_sources["folders"]), spec, OPTS, ClusterSpec("sync"))
    return spec


def data_objects(spec: StoreSpec) -> dict[str, tuple[int, str]]:
    """Path -> (size, sha256) of the Zarr chunk objects of release r1, from its manifest."""
    manifest = open_lake(spec).release("r1").manifest
    return {o["path"]: (o["size"], o["sha256"]) for o in manifest["objects"] if "/c/" in o["path"]}


def patch_rows(spec: StoreSpec) -> list[dict[str, object]]:
    """The patches table's rows (sample order, metadata, georeference)."""
    cols = ["patch_id", "sample_index", "s1_name", "labels", "epsg", "transform"]
    return open_lake(spec).release("r1").patches().select(cols).sort_by("patch_id").to_pylist()


@pytest.mark.parametrize("kind", ["folders", "tar.zst"])
def test_gateway_ingest_from_s3_equals_a_local_ingest(
    kind, gateway, s3_server, uploaded, local_lake
):
    lake = s3_spec_for(s3_server)
    source = open_source(uploaded[kind], store=lake)
    assert source.kind == kind and getattr(source, "store", None) is not None
    cluster = ClusterSpec(
        gateway.endpoint.address,
        password=gateway.endpoint.password,
        workers=2,
        worker_memory="1GiB",
    ).with_store(lake)
    fs = filesystem(lake)
    staging = getattr(source, "staging", "s3://")[len("s3://") :]
    if kind == "tar.zst" and fs.exists(staging):
        fs.rm(staging, recursive=True)  # the ingest stages the archives
    report = ingest(source, lake, OPTS, cluster)
    assert report.patches == N and report.n_quarantined == 0
    if kind == "tar.zst":  # staged on the Gateway's workers, not in this (the driver) process
        for archive in ARCHIVES.values():
            marker = json.loads(fs.cat_file(f"{staging}/{archive}/stage.json"))
            assert marker["complete"] and marker["staged_by"]["pid"] != os.getpid(), archive
    want, got = data_objects(local_lake), data_objects(lake)
    assert len(want) >= 7 * 3 and got == want  # 3 shards of 7 arrays (+ band names), all equal
    assert patch_rows(lake) == patch_rows(local_lake)
    # The hashes recorded as the shards were encoded are those of the stored objects.
    import hashlib

    for path, (size, sha) in got.items():
        data = fs.cat_file(lake.path(path))
        assert (len(data), hashlib.sha256(data).hexdigest()) == (size, sha), path


def test_s3_archives_are_staged_compressed_next_to_them(gateway, s3_server, uploaded):
    """The archives are staged as compressed packs on S3 (readable by every worker), smaller
    than the members they hold; nothing is staged on local disk."""
    lake = s3_spec_for(s3_server)
    source = open_source(uploaded["tar.zst"], store=lake)
    source.prepare()
    fs = filesystem(lake)
    staging = source.staging  # type: ignore[attr-defined]
    assert staging.startswith("s3://")
    raw = staged = 0
    for archive in ARCHIVES.values():
        marker = json.loads(fs.cat_file(f"{staging[5:]}/{archive}/stage.json"))
        assert marker["complete"] and marker["members"] > 0
        raw, staged = raw + marker["bytes"], staged + marker["staged_bytes"]
        listed = sum(fs.size(p) for p in fs.find(f"{staging[5:]}/{archive}"))
        assert listed - len(json.dumps(marker)) - 2 <= marker["staged_bytes"] <= listed
    assert staged < raw  # compressed, unlike the local LMDB stage (313 KB per pair)
    assert source.staged() == dict.fromkeys(ARCHIVES.values(), True)  # type: ignore[attr-defined]


# -- bad source URLs ---------------------------------------------------------------------------


def test_a_source_url_that_does_not_exist_is_named(s3_server):
    lake = s3_spec_for(s3_server)
    url = f"{lake.url}/no-such-source"
    with pytest.raises(SourceError, match=f"{url}: source does not exist"):
        open_source(url, store=lake)
    with pytest.raises(SourceError, match="s3://no-such-bucket-15/src"):
        open_source("s3://no-such-bucket-15/src", store=lake)


def test_a_bucket_without_the_layout_is_named(s3_server, tmp_path):
    lake = s3_spec_for(s3_server)
    fs = filesystem(lake)
    fs.pipe_file(lake.path("junk/readme.txt"), b"not a source")
    url = f"{lake.url}/junk"
    with pytest.raises(SourceError, match=f"{url}: not a BigEarthNet source"):
        open_source(url, store=lake)
    with pytest.raises(SourceError, match=f"{url}: no folders source here"):
        open_source(url, kind="folders", store=lake)
    with pytest.raises(SourceError, match="an LMDB source must be a local folder"):
        open_source(url, kind="lmdb", store=lake)


def test_folders_without_metadata_are_named(s3_server, uploaded):
    lake = s3_spec_for(s3_server)
    fs = filesystem(lake)
    src = uploaded["folders"][len("s3://") :]
    dst = lake.path("no-meta")
    fs.pipe_file(f"{dst}/BigEarthNet-S2/x/y.tif", b"x")
    with pytest.raises(SourceError, match=f"{lake.url}/no-meta/metadata.parquet: metadata"):
        open_source(f"{lake.url}/no-meta", store=lake)
    assert fs.exists(f"{src}/metadata.parquet")


def test_credentials_that_fail_are_named_with_the_url(s3_server, uploaded):
    lake = s3_spec_for(s3_server)
    wrong = replace(lake, secret="not-the-secret")
    url = uploaded["folders"]
    with pytest.raises(SourceError, match=f"{url}: cannot read the source") as err:
        open_source(url, store=wrong)
    assert "not-the-secret" not in str(err.value)


def test_a_missing_archive_on_s3_is_named(s3_server, local_sources):
    lake = s3_spec_for(s3_server)
    fs = filesystem(lake)
    root = local_sources["tar.zst"]
    for name in ("BigEarthNet-S2.tar.zst", "metadata.parquet"):
        fs.put_file(str(root / name), lake.path(f"partial/{name}"))
    source = open_source(f"{lake.url}/partial", store=lake)
    with pytest.raises(SourceError, match=f"missing archive.*{lake.url}/partial/Reference_Maps"):
        source.prepare()


def test_staging_on_workers_reruns_only_what_failed(s3_server, local_sources):
    """The archives stage as tasks of a 2-worker local cluster; two truncated archives are
    named together, the good one is staged anyway, and each rerun stages only what is missing."""
    lake = s3_spec_for(s3_server)
    fs = filesystem(lake)
    root = local_sources["tar.zst"]
    cut = ("BigEarthNet-S1.tar.zst", "Reference_Maps.tar.zst")
    for name in (*ARCHIVES.values(), "metadata.parquet"):
        data = (root / name).read_bytes()
        fs.pipe_file(lake.path(f"cut/{name}"), data[: len(data) // 2] if name in cut else data)
    source = open_source(f"{lake.url}/cut", store=lake)
    staging = source.staging[len("s3://") :]  # type: ignore[attr-defined]

    def markers() -> dict[str, bytes]:
        return {a: fs.cat_file(f"{staging}/{a}/stage.json") for a in ARCHIVES.values()}

    with Runner(ClusterSpec("local", workers=2)) as runner:
        with pytest.raises(SourceError) as err:
            source.prepare(runner=runner)
        for name in cut:
            assert f"{lake.url}/cut/{name}: corrupt or truncated archive stream" in str(err.value)
        assert "BigEarthNet-S2" not in str(err.value)
        first = markers()
        done = {a: json.loads(m) for a, m in first.items()}
        assert [done[a]["complete"] for a in ARCHIVES.values()] == [True, False, False]
        assert all(m["staged_by"]["pid"] != os.getpid() for m in done.values())
        partial = source.packs().folders(cut[0])  # type: ignore[attr-defined]

        fs.pipe_file(lake.path(f"cut/{cut[0]}"), (root / cut[0]).read_bytes())
        with pytest.raises(SourceError, match="truncated") as err:
            source.prepare(runner=runner)
        assert cut[0] not in str(err.value) and f"{lake.url}/cut/{cut[1]}" in str(err.value)
        second = markers()
        assert second["BigEarthNet-S2.tar.zst"] == first["BigEarthNet-S2.tar.zst"]  # untouched
        assert second[cut[0]] != first[cut[0]] and json.loads(second[cut[0]])["complete"]
        # This process had read the partial stage's index; it reads the new one.
        assert len(source.packs().folders(cut[0])) > len(partial)  # type: ignore[attr-defined]

        fs.pipe_file(lake.path(f"cut/{cut[1]}"), (root / cut[1]).read_bytes())
        source.prepare(runner=runner)
        third = markers()
        assert {a for a in ARCHIVES.values() if third[a] != second[a]} == {cut[1]}
    assert source.staged() == dict.fromkeys(ARCHIVES.values(), True)  # type: ignore[attr-defined]
    meta = source.metadata()
    pid, s1 = meta["patch_id"][0].as_py(), meta["s1_name"][0].as_py()
    local = open_source(root)
    local.prepare()
    got, want = source.read_pair(pid, s1), local.read_pair(pid, s1)
    assert all(got.bands[b].tobytes() == v.tobytes() for b, v in want.bands.items())
    assert pq.read_metadata(root / "metadata.parquet").num_rows == N


def test_a_staging_location_that_cannot_be_written_is_named(s3_server, uploaded, monkeypatch):
    """A write that fails is not taken for a truncated archive: each archive is named with the
    staging location to fix (packs of 64 KiB, so that packs are written while the archive is
    read, as for the real archives)."""
    monkeypatch.setattr("pipelines.sources.packs.PACK_BYTES", 64 << 10)
    lake = s3_spec_for(s3_server)
    staging = "s3://no-such-bucket-15/stage"
    source = open_source(uploaded["tar.zst"], store=lake, staging_dir=staging)
    with pytest.raises(SourceError) as err:
        source.prepare()
    for archive in ARCHIVES.values():
        assert f"{uploaded['tar.zst']}/{archive}: cannot stage it" in str(err.value)
    assert staging in str(err.value) and "truncated" not in str(err.value)


def test_lake_ingest_takes_an_s3_source_url(s3_server, uploaded, local_lake):
    """``lake ingest s3://...`` reads the source with the lake's S3 options."""
    lake = s3_spec_for(s3_server)
    e = s3_server.endpoint
    cmd = [sys.executable, "-m", "pipelines.cli", "ingest", uploaded["folders"],
           "--lake", lake.url, "--endpoint-url", e.endpoint_url, "--key", e.key,
           "--secret", e.secret, "--region", e.region, "--release", "r1", "--cluster", "sync",
           "--samples-per-shard", "8", "--scan-batch", "8", "--json"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert (out["patches"], out["kind"], out["source"]) == (N, "folders", uploaded["folders"])
    assert data_objects(lake) == data_objects(local_lake)
    bad = [*cmd[:4], f"{lake.url}/nothing-here", *cmd[5:]]
    proc = subprocess.run(bad, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode != 0 and f"{lake.url}/nothing-here: source does not exist" in proc.stderr
