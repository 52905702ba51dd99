"""Ingest under real and hostile input: the real sample bit for bit, a corpus of bad input, and
kill -9 at several points followed by a rerun that equals an uninterrupted run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import rasterio
from affine import Affine

from lake.config import store_spec
from lake.names import pair_files
from lake.reader import open_lake
from pipelines.cluster.spec import ClusterSpec
from pipelines.jobs.ingest import IngestOptions, ingest
from pipelines.sources.base import PAIR_BANDS
from pipelines.sources.open import open_source
from pipelines.synth import synthesize
from tests.conftest import s3_spec_for
from tests.support.lakes import ingest_command

OPTS = IngestOptions(release="r1", samples_per_shard=8, scan_batch=8, progress=False)
SYNC = ClusterSpec("sync")


# ------------------------------------------------------------------ the real sample


@pytest.mark.parametrize("kind", ["folders", "tar.zst", "lmdb"])
@pytest.mark.parametrize("backend", ["file", pytest.param("s3", marks=pytest.mark.s3)])
def test_real_sample_values_round_trip_bit_exact(sources, pair, kind, backend, tmp_path, request):
    src_dir = tmp_path / "src"
    shutil.copytree(sources[kind], src_dir)
    spec = (
        store_spec(str(tmp_path / "lake"), environ={})
        if backend == "file"
        else s3_spec_for(request.getfixturevalue("s3_server"))
    )
    report = ingest(open_source(src_dir), spec, OPTS, SYNC)
    assert report.patches == 1 and report.n_quarantined == 0
    got = open_lake(spec).current.patch(pair.patch_id)
    for band in PAIR_BANDS:
        assert got[band].dtype == pair.values[band].dtype
        assert got[band].tobytes() == pair.values[band].tobytes(), band
    meta = got["metadata"]
    assert meta["s1_name"] == pair.s1_name and meta["epsg"] == 32633
    assert list(meta["transform"]) == [10.0, 0.0, 390000.0, 0.0, -10.0, 5348400.0]


# ------------------------------------------------------------------ the bad-input corpus


def _write_tif(path: Path, data: np.ndarray, epsg: int = 32633) -> None:
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0],
                       count=1, dtype=data.dtype, crs=f"EPSG:{epsg}",
                       transform=Affine(10, 0, 300000, 0, -10, 5400000)) as ds:  # fmt: skip
        ds.write(data, 1)


@pytest.fixture(scope="module")
def clean_source(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bad") / "clean"
    synthesize(16, out, fmt="folders", seed=3)
    return out


def _corrupt(root: Path) -> dict[str, tuple[str, str]]:
    """Damage a copy of the source in every way part 6 of the issue lists.

    Returns:
        ``case -> (subject the report must name, reason)``.
    """
    meta = pq.read_table(root / "metadata.parquet")
    ids, s1s = meta["patch_id"].to_pylist(), meta["s1_name"].to_pylist()
    files = [pair_files(p, s) for p, s in zip(ids, s1s, strict=True)]
    expect: dict[str, tuple[str, str]] = {}

    p = root / files[0]["B03"]
    p.write_bytes(p.read_bytes()[:15_000])
    expect["truncated"] = (str(p), "truncated")
    p = root / files[1]["VH"]
    p.write_bytes(b"\x00garbage, not a GeoTIFF" * 40)
    expect["unreadable"] = (str(p), "unreadable")
    p = root / files[2]["B8A"]
    p.unlink()
    expect["missing band"] = (str(p), "missing_file")
    p = root / files[3]["B05"]
    _write_tif(p, np.ones((30, 30), np.uint16))
    expect["wrong shape"] = (str(p), "wrong_shape")
    p = root / files[4]["B02"]
    _write_tif(p, np.ones((120, 120), np.float32))
    expect["wrong dtype"] = (str(p), "wrong_dtype")
    for band in ("B02", "VV", "reference_map"):  # every folder of pair 5
        shutil.rmtree((root / files[5][band]).parent)
    expect["no files"] = (ids[5], "no_files")
    # Files with no metadata row: a copy of pair 6 under a real id that is not in the metadata.
    stranger = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_11_11"
    src = (root / files[6]["B02"]).parent
    dst = src.parent / stranger
    dst.mkdir()
    for f in src.iterdir():
        shutil.copy(f, dst / f.name.replace(ids[6], stranger))
    expect["no metadata"] = (stranger, "no_metadata")

    text = pq.read_table(root / "BigEarthNet.txt.parquet")
    rows = text.to_pylist()
    box = next(
        i for i, r in enumerate(rows) if r["type"] == "bounding box" and r["patch_id"] == ids[9]
    )
    rows[box]["output"] = "[0.10 0.20, 1.30 0.50]"
    expect["box out of range"] = (f"ID {rows[box]['ID']}", "box_out_of_range")
    bad = next(
        i for i, r in enumerate(rows) if r["type"] == "bounding box" and r["patch_id"] == ids[10]
    )
    rows[bad]["output"] = "[0.1 0.2]"
    expect["malformed box"] = (f"ID {rows[bad]['ID']}", "malformed_box")
    kind = next(i for i, r in enumerate(rows) if r["patch_id"] == ids[11])
    rows[kind]["type"] = "banana"
    expect["malformed row"] = (f"ID {rows[kind]['ID']}", "bad_type")
    unknown = dict(
        rows[-1], ID=10**9, patch_id="S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_99_99"
    )
    rows.append(unknown)
    expect["unknown patch"] = (f"ID {10**9}", "unknown_patch")
    pq.write_table(pa.Table.from_pylist(rows, schema=text.schema), root / "BigEarthNet.txt.parquet")
    return expect


def test_bad_input_is_quarantined_by_name_and_reason_and_the_rest_ingested(clean_source, tmp_path):
    root = tmp_path / "src"
    shutil.copytree(clean_source, root)
    expect = _corrupt(root)
    spec = store_spec(str(tmp_path / "lake"), environ={})
    report = ingest(open_source(root), spec, OPTS, SYNC)

    lines = (tmp_path / "lake" / "releases" / "r1" / "quarantine.jsonl").read_text().splitlines()
    records = [json.loads(x) for x in lines]
    for case, (subject, reason) in expect.items():
        hits = [r for r in records if subject in r["subject"] and r["reason"] == reason]
        assert hits, f"{case}: no quarantine record naming {subject} with reason {reason}"
        assert hits[0]["detail"], case
    # Everything valid went in: 16 pairs less the six broken ones.
    release = open_lake(spec).current
    assert report.patches == len(release) == 10
    assert report.quarantined["patch_quarantined"] > 0  # text rows of the broken pairs
    text = pq.read_table(root / "BigEarthNet.txt.parquet")
    ann = release.annotations()
    n_text_rejected = sum(
        1 for r in records if r["subject"].split(": row ")[0].endswith(".parquet")
    )
    assert ann.num_rows == text.num_rows - n_text_rejected
    assert set(ann["patch_id"].to_pylist()) <= set(release.sample_index)
    assert pc.max(ann["box_x2"]).as_py() <= 1.0
    # Valid pairs are bit-exact.
    good = open_source(clean_source)
    for pid in list(release.sample_index)[:3]:
        s1 = release.patch(pid)["metadata"]["s1_name"]
        want = good.read_pair(pid, s1)
        assert all(np.array_equal(release.patch(pid)[b], want.bands[b]) for b in PAIR_BANDS)


def test_bad_input_sets_the_exit_status(clean_source, tmp_path):
    root = tmp_path / "src"
    shutil.copytree(clean_source, root)
    _corrupt(root)
    lake_dir = str(tmp_path / "lake")
    cmd = [sys.executable, "-m", "pipelines.cli", "ingest", str(root), "--lake", lake_dir,
           "--cluster", "sync", "--samples-per-shard", "8", "--json"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stderr
    assert json.loads(proc.stdout)["patches"] == 10


# ------------------------------------------------------------------ crash and resume


def _run_until(cmd: list[str], ready, timeout: float = 120) -> bool:
    """Start ingest, SIGKILL it as soon as ``ready()``; True if it was killed, False if it ended."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if ready():
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.005)
        return False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _count(folder: Path) -> int:
    return len(list(folder.glob("*.json"))) if folder.exists() else 0


@pytest.fixture(scope="module")
def crash_source(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("crash") / "src"
    synthesize(48, out, fmt="folders", seed=11)
    return out


def test_kill_9_at_several_points_then_rerun_equals_a_clean_run(crash_source, tmp_path):
    clean, crashed = tmp_path / "clean", tmp_path / "crashed"
    subprocess.run(
        ingest_command(crash_source, clean), check=True, capture_output=True, timeout=300
    )
    work = crashed / "_work" / "r1"
    kill_points = [
        lambda: _count(work / "scan") >= 2,  # mid-scan
        lambda: _count(work / "shards") >= 2,  # mid-write
        lambda: (crashed / "tables" / "r1" / "patches" / "part-0.parquet").exists(),  # tables
    ]
    killed = 0
    for ready in kill_points:
        if not _run_until(ingest_command(crash_source, crashed), ready):
            break  # it finished before this point: the rerun below is then a no-op
        killed += 1
        # Nothing half-written is visible: no release is published yet.
        root = crashed / "lake.json"
        assert not root.exists() or "r1" not in root.read_text()
    assert killed >= 2, "the kill points were never reached"
    final = subprocess.run(ingest_command(crash_source, crashed), capture_output=True, text=True,
                           timeout=300)  # fmt: skip
    assert final.returncode == 0, final.stderr
    report = json.loads(final.stdout)
    assert report["already_published"] or report["resumed"]["scan_batches"] > 0
    a, b = (open_lake(store_spec(str(p), environ={})).current.manifest for p in (clean, crashed))
    assert a["objects"] == b["objects"]
    assert a["counts"] == b["counts"]
    assert not work.exists()


# ------------------------------------------------------------------ bad rows, NaN, staging


FULLWIDTH = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_\uff17\uff15_43"


def _bad_rows(root: Path) -> dict[str, tuple[str, str, str]]:
    """Bad metadata rows, a repeated annotation ID and NaN in one S1 band of a source copy.

    Returns:
        ``case -> (text the subject holds, reason, text the detail holds)``.
    """
    meta_path = root / "metadata.parquet"
    meta = pq.read_table(meta_path)
    rows = meta.to_pylist()
    ids = [r["patch_id"] for r in rows]
    n = len(rows)
    rows[0]["labels"] = ["Arable land", "Lava"]
    rows[1]["split"] = "val"
    rows.append(dict(rows[4], patch_id="../../../etc/passwd"))
    rows.append(dict(rows[4], patch_id=FULLWIDTH))
    rows.append(dict(rows[2], labels=["Pastures"]))  # a second row for ids[2]
    pq.write_table(pa.Table.from_pylist(rows, schema=meta.schema), meta_path)
    expect = {
        "bad label": (f"{meta_path}: row 0, patch_id '{ids[0]}'", "bad_label", "'Lava'"),
        "bad split": (f"{meta_path}: row 1, patch_id '{ids[1]}'", "bad_split", "'val'"),
        "../ id": (f"{meta_path}: row {n}, ", "bad_patch_id", "'../../../etc/passwd'"),
        "fullwidth id": (f"{meta_path}: row {n + 1}, ", "bad_patch_id", FULLWIDTH),
        "duplicate patch_id": (f"{meta_path}: row {n + 2}, ", "duplicate_patch_id", "row 2;"),
    }
    text_path = root / "BigEarthNet.txt.parquet"
    text = pq.read_table(text_path)
    trows = text.to_pylist()
    first = next(r for r in trows if r["patch_id"] == ids[3] and r["type"] == "captioning")
    trows.append(dict(first, output=first["output"] + " (a second answer)"))
    pq.write_table(pa.Table.from_pylist(trows, schema=text.schema), text_path)
    expect["duplicate ID"] = (f"{text_path}: row ID {first['ID']}", "duplicate_id", "keeps it")
    vv = root / pair_files(ids[5], rows[5]["s1_name"])["VV"]
    with rasterio.open(vv) as ds:
        profile, values = ds.profile, ds.read(1)
    values[60, 61] = np.nan
    with rasterio.open(vv, "w", **profile) as ds:
        ds.write(values, 1)
    expect["NaN in S1"] = (str(vv), "non_finite", "1 NaN and 0 infinite")
    return expect


def test_bad_rows_and_values_are_quarantined_through_the_cli(clean_source, tmp_path):
    root = tmp_path / "src"
    shutil.copytree(clean_source, root)
    expect = _bad_rows(root)
    lake_dir = tmp_path / "lake"
    cmd = [sys.executable, "-m", "pipelines.cli", "ingest", str(root), "--lake",
           str(lake_dir), "--release", "r1", "--cluster", "sync", "--samples-per-shard", "8",
           "--json"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["patches"] == 16 - 3  # bad label, bad split, NaN; the duplicate's first row stays
    lines = (lake_dir / "releases" / "r1" / "quarantine.jsonl").read_text().splitlines()
    records = [json.loads(x) for x in lines]
    for case, (subject, reason, detail) in expect.items():
        hits = [r for r in records if r["subject"].startswith(subject) and r["reason"] == reason]
        assert len(hits) == 1, f"{case}: {subject} {reason} not quarantined once: {records}"
        assert detail in hits[0]["detail"], (case, hits[0]["detail"])
    assert doc["quarantined"]["duplicate_id"] == 1
    # Text rows of a pair whose metadata row was quarantined say so (not "unknown").
    meta = pq.read_table(clean_source / "metadata.parquet")
    bad_label_id = meta["patch_id"][0].as_py()
    about = {r["reason"] for r in records if r["patch_id"] == bad_label_id}
    assert "patch_quarantined" in about and "unknown_patch" not in about
    assert not [r for r in records if r["reason"] == "no_metadata"]  # no orphan double count
    release = open_lake(store_spec(str(lake_dir), environ={})).current
    ann = release.annotations()
    assert pc.count_distinct(ann["ID"]).as_py() == ann.num_rows  # IDs unique in the release
    assert not any(o.endswith("(a second answer)") for o in ann["output"].to_pylist())
    assert set(release.sample_index) == set(meta["patch_id"].to_pylist()) - {
        meta["patch_id"][i].as_py() for i in (0, 1, 5)
    }


@pytest.fixture(scope="module")
def archive_source(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("archives") / "src"
    synthesize(4, out, fmt="tar.zst", seed=5, text=False)
    return out


def test_a_read_only_tar_zst_source_needs_and_takes_staging_dir(archive_source, tmp_path):
    root = shutil.copytree(archive_source, tmp_path / "src")
    # The source folder cannot take the stage: its default place is taken (and, for a user other
    # than root, the folder is read-only too).
    (root / ".lake-staging").write_text("not a folder")
    root.chmod(0o555)
    try:
        base = [sys.executable, "-m", "pipelines.cli"]
        opts = ["--cluster", "sync", "--samples-per-shard", "8", "--json"]
        lake_a, lake_b = str(tmp_path / "a"), str(tmp_path / "b")
        proc = subprocess.run([*base, "ingest", str(root), "--lake", lake_a, *opts],
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert proc.returncode == 1, proc.stderr
        assert "cannot stage the archives there" in proc.stderr
        assert "--staging-dir" in proc.stderr and "313 KB per pair" in proc.stderr
        stage = tmp_path / "stage"
        for cmd, lake_dir in ((["ingest"], lake_a), (["pipeline", "ingest"], lake_b)):
            proc = subprocess.run([*base, *cmd, str(root), "--lake", lake_dir, *opts,
                                   "--staging-dir", str(stage)],
                                  capture_output=True, text=True, timeout=300)  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            assert json.loads(proc.stdout)["patches"] == 4
        assert (stage / "data.mdb").is_file()
        assert (root / ".lake-staging").is_file()  # the source was not written to
    finally:
        root.chmod(0o755)


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root to run the CLI as another user (nobody) against a root-owned source",
)
def test_a_source_another_user_cannot_write_is_staged_with_staging_dir(archive_source):
    """The real case: the archives belong to someone else; the user may only read them."""
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    probe = subprocess.run([*as_nobody, sys.executable, "-c", "import pipelines.cli"],
                           capture_output=True, text=True, timeout=120, cwd="/tmp")  # fmt: skip
    if probe.returncode != 0:
        pytest.skip("user nobody cannot read this checkout or its venv (a 0700 folder, e.g. "
                    f"one made by mktemp): {probe.stderr.strip()[-200:]}")  # fmt: skip
    base = Path(tempfile.mkdtemp(prefix="lake-ro-", dir="/tmp"))
    try:
        base.chmod(0o755)
        root = shutil.copytree(archive_source, base / "src")
        for p in (root, *root.iterdir()):
            p.chmod(0o555 if p.is_dir() else 0o444)
        work = base / "work"
        work.mkdir()
        os.chown(work, 65534, 65534)
        cmd = [*as_nobody, sys.executable, "-m", "pipelines.cli", "ingest", str(root),
               "--lake", str(work / "lake"), "--cluster", "sync", "--json"]  # fmt: skip
        env = {**os.environ, "HOME": str(work)}
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=work)
        assert proc.returncode == 1, proc.stderr
        assert "PermissionError" in proc.stderr and "--staging-dir" in proc.stderr
        proc = subprocess.run([*cmd, "--staging-dir", str(work / "stage")], capture_output=True,
                              text=True, timeout=300, env=env, cwd=work)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["patches"] == 4
        assert sorted(p.name for p in root.iterdir()) == sorted(
            p.name for p in archive_source.iterdir()
        )
    finally:
        for p in base.rglob("*"):
            if p.is_dir():
                p.chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)
