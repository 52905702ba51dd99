"""Sources: real files decode exactly; a complete pair reads back bit for bit from each kind of
source; every kind of bad input is reported by name and reason."""

from __future__ import annotations

import os
import pickle
import shutil
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import lmdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import rasterio
from safetensors.numpy import save as save_safetensors

from lake.bigearthnet import S1_BANDS, S2_BANDS
from lake.errors import BadInput, SourceError
from lake.names import pair_files
from pipelines.sources import tarzst
from pipelines.sources.base import PAIR_BANDS, Pair, Source, check_metadata, read_metadata
from pipelines.sources.folders import FolderSource
from pipelines.sources.lmdb_source import LmdbSource
from pipelines.sources.open import open_source
from pipelines.sources.tarzst import TarZstSource
from tests.conftest import METADATA, SAMPLE
from tests.pipelines.conftest import (
    OTHER_ID,
    PATCH_ID,
    PairFixture,
    encode_pair,
    georef,
    lmdb_entries,
    metadata_rows,
    sample_files,
    write_archives,
    write_folders,
    write_lmdb,
    write_tar_zst,
)

KINDS = ["folders", "tar.zst", "lmdb"]


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def assert_pair_equals(got: Pair, pair: PairFixture) -> None:
    assert (got.patch_id, got.s1_name) == (pair.patch_id, pair.s1_name)
    assert set(got.bands) == set(PAIR_BANDS)
    for band in PAIR_BANDS:
        assert same_bits(got.bands[band], pair.values[band]), band
    epsg, transform = georef(pair.patch_id, "B02")
    assert got.epsg == epsg == 32633
    assert got.transform == tuple(transform)[:6]
    assert got.transform[2:6:3] == (390000.0, 5348400.0)  # BIGEARTHNET.md: UL of 75_43


def opened(root: Path) -> Source:
    source = open_source(root)
    source.prepare()
    return source


def read_in_child(source: Source, patch_id: str, s1_name: str) -> dict[str, bytes]:
    return {b: a.tobytes() for b, a in source.read_pair(patch_id, s1_name).bands.items()}


# -- (a) the real sample decodes exactly ----------------------------------------------------


@pytest.mark.parametrize("band", PAIR_BANDS)
def test_sample_files_decode_exactly(band):
    rel = sample_files()[band]
    got = FolderSource(SAMPLE, METADATA).read_band(rel, band)
    with rasterio.open(SAMPLE / rel) as ds:
        want, epsg, transform = ds.read(1), ds.crs.to_epsg(), tuple(ds.transform)[:6]
    assert same_bits(got.data, want)
    assert (got.epsg, got.transform) == (epsg, transform)


def test_sample_holds_no_complete_pair():
    row = metadata_rows(PATCH_ID).to_pylist()[0]
    with pytest.raises(BadInput) as err:
        FolderSource(SAMPLE, METADATA).read_pair(row["patch_id"], row["s1_name"])
    assert err.value.reason == "missing_file"
    assert err.value.subject.startswith(str(SAMPLE))


# -- (b) a complete pair, bit for bit, from every kind of source -----------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_complete_pair_reads_back_bit_exact(sources, pair, kind):
    source = opened(sources[kind])
    assert source.kind == kind and isinstance(source, Source)
    assert source.metadata()["patch_id"].to_pylist() == [pair.patch_id]
    assert_pair_equals(source.read_pair(pair.patch_id, pair.s1_name), pair)
    assert source.orphans({pair.patch_id}, {pair.s1_name}) == []


@pytest.mark.parametrize("kind", KINDS)
def test_source_is_picklable_and_opens_per_process(sources, pair, kind):
    source = opened(sources[kind])
    source.read_pair(pair.patch_id, pair.s1_name)  # opens handles in this process first
    clone = pickle.loads(pickle.dumps(source))
    assert clone == source
    with ProcessPoolExecutor(1, mp_context=get_context("fork")) as pool:
        got = pool.submit(read_in_child, clone, pair.patch_id, pair.s1_name).result(timeout=60)
    assert got == {b: pair.values[b].tobytes() for b in PAIR_BANDS}


def test_fingerprints_change_with_content(sources, pair, tmp_path):
    root = shutil.copytree(sources["folders"], tmp_path / "f")
    source = FolderSource(root)
    before = source.fingerprint()
    assert before == FolderSource(root).fingerprint()
    pq.write_table(metadata_rows(pair.patch_id, OTHER_ID), root / "metadata.parquet")
    assert source.fingerprint() != before


# -- (c) bad inputs, folders -----------------------------------------------------------------


@pytest.fixture
def folder_copy(sources, tmp_path) -> Path:
    return shutil.copytree(sources["folders"], tmp_path / "folders")


def band_path(root: Path, pair: PairFixture, band: str) -> Path:
    return root / pair_files(pair.patch_id, pair.s1_name)[band]


def read_error(source: Source, pair: PairFixture) -> BadInput:
    with pytest.raises(BadInput) as err:
        source.read_pair(pair.patch_id, pair.s1_name)
    return err.value


def write_raw(path: Path, data: np.ndarray, resolution: int) -> None:
    epsg, transform = georef("S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_75_43", "B02")
    transform = transform @ transform.scale(resolution / 10)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[1],
        height=data.shape[0],
        count=1,
        dtype=data.dtype,
        crs=f"EPSG:{epsg}",
        transform=transform,
    ) as ds:
        ds.write(data, 1)


def test_truncated_geotiff(folder_copy, pair):
    path = band_path(folder_copy, pair, "B03")
    path.write_bytes(path.read_bytes()[:15_000])
    err = read_error(FolderSource(folder_copy), pair)
    assert (err.subject, err.reason) == (str(path), "truncated")


def test_garbage_file(folder_copy, pair):
    path = band_path(folder_copy, pair, "VH")
    path.write_bytes(b"this is not a GeoTIFF" * 10)
    err = read_error(FolderSource(folder_copy), pair)
    assert (err.subject, err.reason) == (str(path), "unreadable")


def test_missing_band_file(folder_copy, pair):
    path = band_path(folder_copy, pair, "B8A")
    path.unlink()
    err = read_error(FolderSource(folder_copy), pair)
    assert (err.subject, err.reason) == (str(path), "missing_file")


def test_wrong_shape(folder_copy, pair):
    path = band_path(folder_copy, pair, "B02")
    write_raw(path, pair.values["B05"], 10)
    err = read_error(FolderSource(folder_copy), pair)
    assert (err.subject, err.reason) == (str(path), "wrong_shape")
    assert "60x60, expected 120x120" in err.detail


def test_wrong_dtype(folder_copy, pair):
    path = band_path(folder_copy, pair, "B04")
    write_raw(path, pair.values["B04"].astype(np.float32), 10)
    err = read_error(FolderSource(folder_copy), pair)
    assert (err.subject, err.reason) == (str(path), "wrong_dtype")


def test_metadata_patch_with_no_files(folder_copy):
    row = metadata_rows(OTHER_ID).to_pylist()[0]
    with pytest.raises(BadInput) as err:
        FolderSource(folder_copy).read_pair(row["patch_id"], row["s1_name"])
    assert (err.value.subject, err.value.reason) == (OTHER_ID, "no_files")


def test_folder_orphans(folder_copy, pair):
    row = metadata_rows(OTHER_ID).to_pylist()[0]
    stray = encode_pair(row["patch_id"], row["s1_name"], pair.values)
    for rel, data in stray.items():
        if rel.endswith(("_B01.tif", "_VV.tif", "_reference_map.tif")):  # one file per folder
            (folder_copy / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder_copy / rel).write_bytes(data)
    got = FolderSource(folder_copy).orphans({pair.patch_id}, {pair.s1_name})
    assert {r.reason for r in got} == {"no_metadata"}
    kept = ("_B01.tif", "_VV.tif", "_reference_map.tif")
    want = {os.path.dirname(folder_copy / p) for p in stray if p.endswith(kept)}
    assert {r.subject for r in got} == want
    assert {r.patch_id for r in got} == {OTHER_ID, None}


# -- (c) bad inputs, tar.zst ------------------------------------------------------------------


@pytest.fixture
def archives_copy(sources, tmp_path) -> Path:
    ignore = shutil.ignore_patterns(tarzst.STAGING_DIRNAME)
    return shutil.copytree(sources["tar.zst"], tmp_path / "tarzst", ignore=ignore)


def test_read_before_prepare_is_a_source_error(archives_copy, pair):
    with pytest.raises(SourceError, match="prepare"):
        TarZstSource(archives_copy).read_pair(pair.patch_id, pair.s1_name)


def test_truncated_archive_keeps_staged_members(archives_copy, pair):
    s2 = archives_copy / "BigEarthNet-S2.tar.zst"
    s2.write_bytes(s2.read_bytes()[:-200])
    source = TarZstSource(archives_copy)
    with pytest.raises(SourceError) as err:
        source.prepare()
    message = str(err.value)
    assert str(s2) in message and "truncated" in message
    staged = int(message.split(" member(s)")[0].rsplit(" ", 1)[1])
    assert 0 < staged < len(S2_BANDS)
    assert source.staged() == {
        "BigEarthNet-S2.tar.zst": False,
        "BigEarthNet-S1.tar.zst": True,
        "Reference_Maps.tar.zst": True,
    }
    files = sorted((rel, b) for b, rel in pair_files(pair.patch_id, pair.s1_name).items())
    first_rel, first_band = next(f for f in files if f[0].startswith("BigEarthNet-S2/"))
    assert same_bits(source.read_band(first_rel, first_band).data, pair.values[first_band])
    err2 = read_error(source, pair)
    assert err2.reason == "missing_file"
    assert err2.subject.startswith("BigEarthNet-S2.tar.zst:BigEarthNet-S2/")
    assert "did not finish" in err2.detail


def test_corrupt_archive_is_a_source_error(archives_copy, pair):
    path = archives_copy / "BigEarthNet-S1.tar.zst"
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    source = TarZstSource(archives_copy)
    with pytest.raises(SourceError, match=r"BigEarthNet-S1\.tar\.zst: corrupt or truncated"):
        source.prepare()
    assert source.staged()["BigEarthNet-S1.tar.zst"] is False
    err = read_error(source, pair)
    assert err.subject.startswith("BigEarthNet-S1.tar.zst:") and err.reason == "missing_file"


def test_garbage_member_named_by_archive_path(archives_copy, pair):
    files = dict(pair.files)
    rel = pair_files(pair.patch_id, pair.s1_name)["VV"]
    files[rel] = b"garbage"
    write_archives(archives_copy, files, pair.metadata)
    source = TarZstSource(archives_copy)
    source.prepare()
    err = read_error(source, pair)
    assert (err.subject, err.reason) == (f"BigEarthNet-S1.tar.zst:{rel}", "unreadable")


def test_finished_stage_is_reused_and_changed_archive_restaged(archives_copy, monkeypatch):
    source = TarZstSource(archives_copy, staging_dir=str(archives_copy / "cache"))
    source.prepare()
    calls = []
    real = tarzst.stage_archive

    def counting(env, archive, *rest):
        calls.append(archive.name)
        return real(env, archive, *rest)

    monkeypatch.setattr(tarzst, "stage_archive", counting)
    source.prepare()
    assert calls == []
    maps = archives_copy / "Reference_Maps.tar.zst"
    os.utime(maps, ns=(maps.stat().st_atime_ns, maps.stat().st_mtime_ns + 10**9))
    source.prepare()
    assert calls == ["Reference_Maps.tar.zst"]
    assert all(source.staged().values())


def test_archive_orphans_and_no_files(archives_copy, pair):
    row = metadata_rows(OTHER_ID).to_pylist()[0]
    stray = encode_pair(row["patch_id"], row["s1_name"], pair.values)
    maps = {k: v for k, v in {**pair.files, **stray}.items() if k.startswith("Reference_Maps/")}
    write_tar_zst(archives_copy / "Reference_Maps.tar.zst", maps)
    source = TarZstSource(archives_copy)
    source.prepare()
    got = source.orphans({pair.patch_id}, {pair.s1_name})
    folder = os.path.dirname(pair_files(OTHER_ID, row["s1_name"])["reference_map"])
    assert [(r.subject, r.reason, r.patch_id) for r in got] == [
        (f"Reference_Maps.tar.zst:{folder}", "no_metadata", OTHER_ID)
    ]
    with pytest.raises(BadInput) as err:
        source.read_pair(OTHER_ID, row["s1_name"])
    assert err.value.reason == "missing_file"  # its map is there, the rest is not


def test_missing_archive(archives_copy):
    (archives_copy / "BigEarthNet-S1.tar.zst").unlink()
    with pytest.raises(SourceError, match="missing archive"):
        TarZstSource(archives_copy).prepare()


# -- (c) bad inputs, LMDB ----------------------------------------------------------------------


def lmdb_with(tmp_path: Path, pair: PairFixture, change: dict[str, bytes | None]) -> LmdbSource:
    entries = {**lmdb_entries(pair.patch_id, pair.s1_name, pair.values), **change}
    root = write_lmdb(
        tmp_path / "lmdb", {k: v for k, v in entries.items() if v is not None}, pair.metadata
    )
    return LmdbSource(root / "BigEarthNet.lmdb", root / "metadata.parquet")


def test_lmdb_missing_s1_key(tmp_path, pair):
    err = read_error(lmdb_with(tmp_path, pair, {pair.s1_name: None}), pair)
    assert (err.subject, err.reason) == (f"BigEarthNet.lmdb:{pair.s1_name}", "missing_key")


def test_lmdb_missing_reference_map_key(tmp_path, pair):
    key = f"{pair.patch_id}_reference_map"
    err = read_error(lmdb_with(tmp_path, pair, {key: None}), pair)
    assert (err.subject, err.reason) == (f"BigEarthNet.lmdb:{key}", "missing_band")


def test_lmdb_no_keys(tmp_path, pair):
    source = lmdb_with(tmp_path, pair, {})
    row = metadata_rows(OTHER_ID).to_pylist()[0]
    with pytest.raises(BadInput) as err:
        source.read_pair(row["patch_id"], row["s1_name"])
    assert (err.value.subject, err.value.reason) == (OTHER_ID, "no_files")


@pytest.mark.parametrize(
    ("tensors", "reason"),
    [
        ({"VV": np.zeros((120, 120), np.float64)}, "wrong_dtype"),
        ({"VV": np.zeros((60, 60), np.float32)}, "wrong_shape"),
        ({"VV": np.zeros((120, 120, 1), np.float32)}, "wrong_shape"),
        ({}, "missing_band"),
    ],
)
def test_lmdb_bad_tensor(tmp_path, pair, tensors, reason):
    blob = save_safetensors({"VH": pair.values["VH"], **tensors})
    err = read_error(lmdb_with(tmp_path, pair, {pair.s1_name: blob}), pair)
    assert (err.subject, err.reason) == (f"BigEarthNet.lmdb:{pair.s1_name}/VV", reason)


def test_lmdb_garbage_blob(tmp_path, pair):
    err = read_error(lmdb_with(tmp_path, pair, {pair.patch_id: b"\x00garbage"}), pair)
    assert (err.subject, err.reason) == (f"BigEarthNet.lmdb:{pair.patch_id}", "unreadable")


def test_lmdb_orphans(tmp_path, pair):
    row = metadata_rows(OTHER_ID).to_pylist()[0]
    extra = lmdb_entries(row["patch_id"], row["s1_name"], pair.values)
    got = lmdb_with(tmp_path, pair, extra).orphans({pair.patch_id}, {pair.s1_name})
    assert sorted(r.subject for r in got) == sorted(f"BigEarthNet.lmdb:{k}" for k in extra)
    assert {r.reason for r in got} == {"no_metadata"}


def test_lmdb_not_an_lmdb(tmp_path, pair):
    (tmp_path / "x.lmdb").mkdir()
    (tmp_path / "x.lmdb" / "data.mdb").write_bytes(b"nope" * 1000)
    with pytest.raises(SourceError, match="not a readable LMDB"):
        LmdbSource(tmp_path / "x.lmdb", METADATA).prepare()


# -- open_source ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_open_source_detects_kind_and_text(sources, kind, tmp_path):
    root = shutil.copytree(sources[kind], tmp_path / "src")
    assert open_source(root).text_path is None
    (root / "BigEarthNet.txt.parquet").write_bytes(b"")
    source = open_source(root)
    assert source.kind == kind
    assert source.text_path == str(root / "BigEarthNet.txt.parquet")


def test_open_lmdb_folder_directly(sources):
    source = open_source(sources["lmdb"] / "BigEarthNet.lmdb")
    assert isinstance(source, LmdbSource)
    assert source.metadata_path == str(sources["lmdb"] / "metadata.parquet")


def test_open_source_errors(sources, tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        open_source(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="not a BigEarthNet source"):
        open_source(tmp_path / "empty")
    both = shutil.copytree(sources["folders"], tmp_path / "both")
    for archive in sources["tar.zst"].glob("*.tar.zst"):
        shutil.copy(archive, both)
    with pytest.raises(SourceError, match="more than one kind"):
        open_source(both)
    assert open_source(both, kind="tar.zst").kind == "tar.zst"
    with pytest.raises(SourceError, match="no lmdb source"):
        open_source(both, kind="lmdb")
    with pytest.raises(SourceError, match="unknown source kind"):
        open_source(both, kind="zip")
    (both / "metadata.parquet").unlink()
    with pytest.raises(SourceError, match="metadata parquet does not exist"):
        open_source(both, kind="folders")


def test_s1_bands_are_float32_in_every_source(sources, pair):
    for kind in KINDS:
        got = opened(sources[kind]).read_pair(pair.patch_id, pair.s1_name)
        assert all(got.bands[b].dtype == np.float32 for b in S1_BANDS)


def test_lmdb_env_handle_is_per_process(sources):
    source = opened(sources["lmdb"])
    from pipelines.sources.lmdb_source import _READERS, reader

    env = reader(source.path)
    assert isinstance(env, lmdb.Environment)
    assert (os.path.abspath(source.path), os.getpid()) in _READERS
    assert "_READERS" not in pickle.dumps(source).decode("latin-1")


def test_lmdb_threads_opening_one_source_at_once_share_one_handle(tmp_path):
    """Scan tasks on a thread runner open a source's LMDB at the same moment: py-lmdb refuses a
    second open of an environment in one process, so the handle cache must open it once (a
    clean-clone CI run failed a tar.zst ingest with "is already open in this process")."""
    import threading

    from pipelines.sources.lmdb_source import forget_reader, reader

    for round_ in range(5):
        path = tmp_path / f"db{round_}"
        with lmdb.open(str(path), map_size=1 << 20) as env, env.begin(write=True) as txn:
            txn.put(b"k", b"v")
        start = threading.Barrier(8)
        got: list[object] = []

        def open_it(
            path: Path = path, start: threading.Barrier = start, got: list[object] = got
        ) -> None:
            start.wait()
            try:
                got.append(reader(str(path)))
            except Exception as exc:
                got.append(exc)

        threads = [threading.Thread(target=open_it) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert all(isinstance(e, lmdb.Environment) for e in got), got
        assert len({id(e) for e in got}) == 1
        forget_reader(str(path))


# -- non-finite S1 values --------------------------------------------------------------------------


def test_real_s1_sample_is_finite_db_without_nodata():
    """The fact the ``non_finite`` rule rests on: released S1 bands are finite, with no nodata."""
    for band, rel in sample_files().items():
        if band in S1_BANDS:
            with rasterio.open(SAMPLE / rel) as ds:
                values = ds.read(1)
                assert ds.nodata is None and ds.dtypes[0] == "float32"
            assert np.isfinite(values).all()
            assert -50 < values.min() < values.max() < 30  # dB


def _non_finite_source(kind: str, root: Path, pair: PairFixture, bad: float) -> Source:
    values = dict(pair.values)
    vv = values["VV"].copy()
    vv[7, 11] = bad
    vv[100, 3] = bad
    values["VV"] = vv
    if kind == "folders":
        write_folders(root, encode_pair(pair.patch_id, pair.s1_name, values), pair.metadata)
    elif kind == "tar.zst":
        write_archives(root, encode_pair(pair.patch_id, pair.s1_name, values), pair.metadata)
    else:
        write_lmdb(root, lmdb_entries(pair.patch_id, pair.s1_name, values), pair.metadata)
    return opened(root)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("kind", KINDS)
def test_non_finite_s1_values_are_bad_input_naming_the_file(tmp_path, pair, kind, bad):
    source = _non_finite_source(kind, tmp_path / "src", pair, bad)
    err = read_error(source, pair)
    rel = pair_files(pair.patch_id, pair.s1_name)["VV"]
    subject = {
        "folders": str(tmp_path / "src" / rel),
        "tar.zst": f"BigEarthNet-S1.tar.zst:{rel}",
        "lmdb": f"BigEarthNet.lmdb:{pair.s1_name}/VV",
    }[kind]
    assert (err.subject, err.reason) == (subject, "non_finite")
    counts = "2 NaN and 0 infinite" if np.isnan(bad) else "0 NaN and 2 infinite"
    assert f"VV holds {counts} value(s), the first at row 7, column 11" in err.detail


# -- metadata rows -------------------------------------------------------------------------------

FULLWIDTH_ID = PATCH_ID[:-5] + "\uff17\uff15_43"  # "75" in fullwidth digits


def _bad_metadata(path: Path) -> tuple[Path, dict[int, tuple[str, str]]]:
    """A metadata parquet: two good rows, then one bad row of every kind.

    Returns:
        The file and ``row -> (reason, value the detail must show)``.
    """
    good = metadata_rows(PATCH_ID, OTHER_ID).to_pylist()
    base = good[0]
    bad_rows = [
        (dict(base, labels=["Arable land", "Lava"]), "bad_label", "'Lava'"),
        (dict(base, split="val"), "bad_split", "'val'"),
        (dict(base, patch_id="../../etc/passwd"), "bad_patch_id", "'../../etc/passwd'"),
        (dict(base, patch_id=FULLWIDTH_ID), "bad_patch_id", FULLWIDTH_ID),
        (dict(base, patch_id=PATCH_ID + "\n"), "bad_patch_id", repr(PATCH_ID + "\n")),
        (dict(base, labels=[]), "no_labels", "labels is empty"),
        (dict(base, s1_name="S1A_IW_GRDH_1SDV_x/../y"), "bad_s1_name", "'S1A_IW_GRDH_1SDV_x/../y'"),
        (dict(good[1]), "duplicate_patch_id", f"{path}: row 1"),
    ]
    rows = good + [r for r, _, _ in bad_rows]
    pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(METADATA)), path)
    return path, {len(good) + i: (reason, shown) for i, (_, reason, shown) in enumerate(bad_rows)}


def test_bad_metadata_rows_are_rejected_by_file_row_value_and_reason(tmp_path):
    path, expected = _bad_metadata(tmp_path / "metadata.parquet")
    checked = check_metadata(path)
    assert checked.table["patch_id"].to_pylist() == sorted([PATCH_ID, OTHER_ID])
    got = {r.subject.split(": row ")[1].split(",")[0]: r for r in checked.rejected}
    assert sorted(map(int, got)) == sorted(expected)
    for row, (reason, shown) in expected.items():
        r = got[str(row)]
        assert r.subject.startswith(f"{path}: row {row}, patch_id ")
        assert r.reason == reason, (row, r)
        assert shown in r.detail, (row, r.detail)
    assert checked.rejected_rows.num_rows == len(expected)
    assert OTHER_ID in {r.patch_id for r in checked.rejected}  # the duplicate is named
    with pytest.raises(SourceError, match=f"{len(expected)} invalid metadata row"):
        read_metadata(path)  # the strict reader (synth) still refuses the file


def test_duplicate_patch_id_across_files_keeps_the_first_file(tmp_path):
    main = tmp_path / "metadata.parquet"
    extra = tmp_path / "extra.parquet"
    pq.write_table(metadata_rows(PATCH_ID), main)
    pq.write_table(metadata_rows(PATCH_ID, OTHER_ID), extra)
    checked = check_metadata(main, [extra])
    assert checked.table["patch_id"].to_pylist() == sorted([PATCH_ID, OTHER_ID])
    [dup] = checked.rejected
    assert (dup.subject, dup.reason) == (
        f"{extra}: row 1, patch_id '{PATCH_ID}'",
        "duplicate_patch_id",
    )
    assert f"{main}: row 0" in dup.detail


def test_a_source_with_bad_metadata_rows_still_reads_the_good_ones(folder_copy, pair):
    _bad_metadata(folder_copy / "metadata.parquet")
    source = FolderSource(folder_copy)
    assert source.metadata()["patch_id"].to_pylist() == sorted([PATCH_ID, OTHER_ID])
    assert len(source.checked_metadata().rejected) == 8
