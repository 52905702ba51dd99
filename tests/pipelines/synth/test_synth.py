"""Tests of the synthetic source generator (``lake synth``): layout, encoding, truth of the text."""

from __future__ import annotations

import re
import tarfile
from collections import deque
from pathlib import Path

import lmdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import rasterio
import zstandard
from affine import Affine
from safetensors.numpy import load as safetensors_load

from lake.bigearthnet import (
    CLASSES_ORIGINAL,
    CODE_TO_CLASS,
    S1_BANDS,
    S2_BANDS,
    TEXT_COLUMNS,
    TEXT_TYPES,
    UNLABELED_CODES,
    season_of,
)
from lake.grid import centre_wgs84, tile_grid
from lake.names import pair_files, parse_patch_id, parse_s1_name
from pipelines.sources.base import METADATA_SCHEMA, read_metadata
from pipelines.sources.geotiff import encode_band, read_band_file
from pipelines.synth import (
    DEFAULT_METADATA,
    TEXT_SCHEMA,
    annotations_for,
    draw,
    land_cover,
    reference_map,
    synthesize,
)
from pipelines.synth.landcover import pair_bands, patch_key
from pipelines.synth.text import label_regions, plan_text
from pipelines.synth.writers import FolderWriter, GeoTiffEncoder, LmdbWriter, SynthPair

SAMPLE = DEFAULT_METADATA.parent / "sample"
N = 10
SEED = 3
ROOT_ENTRIES = {"BigEarthNet-S2", "BigEarthNet-S1", "Reference_Maps"}
PARQUETS = {"metadata.parquet", "BigEarthNet.txt.parquet"}


# ---------------------------------------------------------------------------------------------
# Fixtures: a small metadata parquet (fast to read) and one run per format, same seed.


@pytest.fixture(scope="module")
def full_metadata() -> pa.Table:
    return read_metadata(DEFAULT_METADATA)


@pytest.fixture(scope="module")
def small_metadata(full_metadata: pa.Table, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """400 real rows spread over the whole file (every country, every split)."""
    rows = np.linspace(0, full_metadata.num_rows - 1, 400).astype(int)
    path = tmp_path_factory.mktemp("meta") / "metadata.parquet"
    pq.write_table(full_metadata.take(pa.array(rows)), path)
    return path


def _run(tmp_path_factory: pytest.TempPathFactory, meta: Path, fmt: str, name: str) -> Path:
    out = tmp_path_factory.mktemp(name) / "out"
    synthesize(N, out, fmt=fmt, seed=SEED, metadata_path=meta)
    return out


@pytest.fixture(scope="module")
def folders(small_metadata: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory, small_metadata, "folders", "folders")


@pytest.fixture(scope="module")
def archives(small_metadata: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory, small_metadata, "tar.zst", "tar")


@pytest.fixture(scope="module")
def lmdb_out(small_metadata: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory, small_metadata, "lmdb", "lmdb")


def _meta_rows(out: Path) -> list[dict]:
    return pq.read_table(out / "metadata.parquet").to_pylist()


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _read_map(out: Path, patch_id: str, s1_name: str) -> np.ndarray:
    return read_band_file(
        out / pair_files(patch_id, s1_name)["reference_map"], "reference_map"
    ).data


# ---------------------------------------------------------------------------------------------
# Draw, determinism


def test_draw_is_sorted_real_and_deterministic(small_metadata: Path) -> None:
    meta = read_metadata(small_metadata)
    a, b = draw(meta, 50, 7), draw(meta, 50, 7)
    assert a.equals(b)
    assert not a.equals(draw(meta, 50, 8))
    ids = a.column("patch_id").to_pylist()
    assert ids == sorted(ids) and len(set(ids)) == 50
    assert set(ids) <= set(meta.column("patch_id").to_pylist())
    assert a.schema == METADATA_SCHEMA


def test_same_seed_same_bytes(folders: Path, small_metadata: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    synthesize(N, again, seed=SEED, metadata_path=small_metadata)
    first, second = _files(folders), _files(again)
    rasters = [k for k in first if k.endswith(".tif")]
    assert len(rasters) == 15 * N
    assert first.keys() == second.keys()
    assert all(first[k] == second[k] for k in rasters)
    for name in PARQUETS:
        assert pq.read_table(folders / name).equals(pq.read_table(again / name))


def test_other_seed_other_data(small_metadata: Path, tmp_path: Path) -> None:
    a = synthesize(3, tmp_path / "a", seed=1, metadata_path=small_metadata, text=False)
    b = synthesize(3, tmp_path / "b", seed=2, metadata_path=small_metadata, text=False)
    assert a.n_text_rows == 0 and not (a.out / "BigEarthNet.txt.parquet").exists()
    assert _meta_rows(a.out) != _meta_rows(b.out)


# ---------------------------------------------------------------------------------------------
# Layout per format


def test_folders_layout(folders: Path) -> None:
    assert {p.name for p in folders.iterdir()} == ROOT_ENTRIES | PARQUETS
    expected = set()
    for row in _meta_rows(folders):
        expected |= set(pair_files(row["patch_id"], row["s1_name"]).values())
    found = {str(p.relative_to(folders)) for p in folders.rglob("*.tif")}
    assert found == expected


def test_folder_bands_decode_with_real_georeferencing(folders: Path) -> None:
    for row in _meta_rows(folders)[:3]:
        s2, s1 = parse_patch_id(row["patch_id"]), parse_s1_name(row["s1_name"])
        for band, rel in pair_files(row["patch_id"], row["s1_name"]).items():
            decoded = read_band_file(folders / rel, band)  # checks shape, dtype, resolution
            name = s1 if band in S1_BANDS else s2
            grid = tile_grid(name.tile)
            res = 60 if band in ("B01", "B09") else 20 if decoded.data.shape[0] == 60 else 10
            assert decoded.epsg == grid.epsg
            assert decoded.transform == tuple(grid.patch_transform(name.x, name.y, res))[:6]
            if decoded.data.dtype == np.uint16:
                assert decoded.data.min() > 0  # 0 is nodata
            else:
                assert decoded.data.min() > -50 and decoded.data.max() < 20


def test_tar_members_stream_and_match_folders(archives: Path, folders: Path) -> None:
    assert {p.name for p in archives.iterdir()} == {f"{r}.tar.zst" for r in ROOT_ENTRIES} | PARQUETS
    rows = _meta_rows(archives)
    assert rows == _meta_rows(folders)
    for root in ROOT_ENTRIES:
        members: dict[str, bytes] = {}
        dirs: list[str] = []
        with (
            open(archives / f"{root}.tar.zst", "rb") as f,
            zstandard.ZstdDecompressor().stream_reader(f) as stream,
            tarfile.open(fileobj=stream, mode="r|") as tar,
        ):
            for info in tar:
                if info.isdir():
                    dirs.append(info.name)
                else:
                    members[info.name] = tar.extractfile(info).read()
        assert len(dirs) == len(set(dirs)) and root in dirs
        wanted = {
            rel for row in rows for rel in pair_files(row["patch_id"], row["s1_name"]).values()
        }
        wanted = {rel for rel in wanted if rel.startswith(root + "/")}
        assert set(members) == wanted
        for rel in wanted:  # every folder of every member has its own entry
            parts = rel.split("/")
            assert {"/".join(parts[:i]) for i in range(1, len(parts))} <= set(dirs)
            assert members[rel] == (folders / rel).read_bytes()


def test_lmdb_keys_and_tensors(lmdb_out: Path, folders: Path) -> None:
    assert {p.name for p in lmdb_out.iterdir()} == {"BigEarthNet.lmdb"} | PARQUETS
    rows = _meta_rows(lmdb_out)
    env = lmdb.open(str(lmdb_out / "BigEarthNet.lmdb"), readonly=True, lock=False)
    with env.begin() as txn:
        keys = {k.decode() for k, _ in txn.cursor()}
        expected = set()
        for row in rows:
            pid, s1 = row["patch_id"], row["s1_name"]
            expected |= {pid, s1, f"{pid}_reference_map"}
        assert keys == expected
        row = rows[0]
        files = pair_files(row["patch_id"], row["s1_name"])
        s2 = safetensors_load(txn.get(row["patch_id"].encode()))
        s1 = safetensors_load(txn.get(row["s1_name"].encode()))
        ref = safetensors_load(txn.get(f"{row['patch_id']}_reference_map".encode()))
    env.close()
    assert set(s2) == set(S2_BANDS) and set(s1) == set(S1_BANDS) and set(ref) == {"Data"}
    for band, arr in [*s2.items(), *s1.items(), ("reference_map", ref["Data"])]:
        on_disk = read_band_file(folders / files[band], band).data
        assert arr.dtype == on_disk.dtype and np.array_equal(arr, on_disk)
    assert s2["B02"].shape == (120, 120) and s2["B05"].shape == (60, 60)
    assert s2["B01"].shape == (20, 20) and s1["VV"].dtype == np.float32


def test_lmdb_map_grows(tmp_path: Path) -> None:
    labels = ["Pastures"]
    pids = [f"S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_{i:02d}_10" for i in range(8)]
    writer = LmdbWriter(tmp_path, map_size=1 << 20, batch=3)  # far too small: must grow
    for pid in pids:
        key = patch_key(0, pid)
        bands = pair_bands(key, land_cover(0, pid, labels), 6)
        writer.write(SynthPair(pid, f"S1A_IW_GRDH_1SDV_20170613T165043_33UUP_{pid[-5:]}", bands))
    assert writer.close() > 8 * 300_000
    env = lmdb.open(str(tmp_path / "BigEarthNet.lmdb"), readonly=True, lock=False)
    assert env.stat()["entries"] == 3 * len(pids)
    env.close()


# ---------------------------------------------------------------------------------------------
# GeoTIFF encoding against the real sample


def _sample_files() -> dict[str, Path]:
    out = {}
    for path in SAMPLE.rglob("*.tif"):
        band = path.stem.rsplit("_", 1)[-1]
        out["reference_map" if band == "map" else band] = path
    return out


def test_profiles_match_the_real_sample(full_metadata: pa.Table, tmp_path: Path) -> None:
    samples = _sample_files()
    assert len(samples) == 15
    writer = FolderWriter(tmp_path)
    written: dict[str, Path] = {}
    for band, path in samples.items():
        name = path.parent.name
        column = "s1_name" if band in S1_BANDS else "patch_id"
        row = full_metadata.filter(pc.equal(full_metadata[column], name)).to_pylist()[0]
        key = patch_key(0, row["patch_id"])
        cover = land_cover(0, row["patch_id"], row["labels"])
        writer.write(SynthPair(row["patch_id"], row["s1_name"], pair_bands(key, cover, 6)))
        written[band] = tmp_path / pair_files(row["patch_id"], row["s1_name"])[band]
    writer.close()
    for band, path in samples.items():
        with rasterio.open(path) as real, rasterio.open(written[band]) as synth:
            assert synth.profile == real.profile, band  # dtype, nodata, size, compression...
            assert synth.crs.to_epsg() == real.crs.to_epsg()
            assert synth.transform == real.transform
            assert synth.tags() == real.tags()


def test_fast_encoder_equals_encode_band() -> None:
    rng = np.random.default_rng(0)
    encoder = GeoTiffEncoder()
    grid = tile_grid("29SNB")
    for band in (*S2_BANDS, *S1_BANDS):
        size = 120 if band in ("B02", "B03", "B04", "B08", "VV", "VH") else 60
        size = 20 if band in ("B01", "B09") else size
        dtype = np.float32 if band in S1_BANDS else np.uint16
        for x, y in ((0, 0), (17, 88)):
            data = rng.integers(1, 9000, (size, size)).astype(dtype)
            transform = grid.patch_transform(x, y, 1200 // size)
            assert encoder.encode(data, band, grid.epsg, transform) == encode_band(
                data, band, grid.epsg, transform
            )
    odd = Affine(10, 0, 1.5, 0, -10, 2.5)
    data = rng.integers(1, 9, (120, 120)).astype(np.uint16)
    assert encoder.encode(data, "B02", 32633, odd) == encode_band(data, "B02", 32633, odd)


# ---------------------------------------------------------------------------------------------
# Reference maps


def _shares(codes: np.ndarray) -> tuple[dict[str, float], float]:
    values, counts = np.unique(codes, return_counts=True)
    classes: dict[str, float] = {}
    unlabeled = 0.0
    for v, c in zip(values.tolist(), counts.tolist(), strict=True):
        if v in UNLABELED_CODES:
            unlabeled += c / codes.size
        else:
            classes[CODE_TO_CLASS[v]] = classes.get(CODE_TO_CLASS[v], 0.0) + c / codes.size
    return classes, unlabeled


def test_reference_maps_agree_with_labels(full_metadata: pa.Table) -> None:
    rows = full_metadata.take(pa.array(np.arange(0, full_metadata.num_rows, 2400))).to_pylist()
    some_unlabeled = 0
    for row in rows:
        codes = reference_map(5, row["patch_id"], row["labels"])
        assert codes.dtype == np.uint16 and codes.shape == (120, 120)
        classes, unlabeled = _shares(codes)
        assert set(classes) == set(row["labels"]), row["patch_id"]
        assert min(classes.values()) >= 0.01
        assert unlabeled < 0.25
        some_unlabeled += unlabeled > 0
    assert some_unlabeled > 0
    row = rows[0]
    assert np.array_equal(
        reference_map(5, row["patch_id"], row["labels"]),
        reference_map(5, row["patch_id"], row["labels"]),
    )


def test_written_maps_agree_with_labels(folders: Path) -> None:
    for row in _meta_rows(folders):
        classes, unlabeled = _shares(_read_map(folders, row["patch_id"], row["s1_name"]))
        assert set(classes) == set(row["labels"]) and unlabeled < 0.25


def test_pixels_follow_the_land_cover() -> None:
    labels = ["Arable land", "Coniferous forest", "Inland waters", "Urban fabric"]
    pid = "S2A_MSIL2A_20170717T101031_N9999_R022_T33UUP_40_40"
    cover = land_cover(1, pid, labels)
    bands = pair_bands(patch_key(1, pid), cover, 7)
    mean = {}
    for name in labels:
        (code,) = {c for c in np.unique(cover.codes).tolist() if CODE_TO_CLASS.get(c) == name}
        mask = cover.codes == code
        mean[name] = {b: float(bands[b][mask].mean()) for b in ("B04", "B08", "VV")}
    water, forest, urban = mean["Inland waters"], mean["Coniferous forest"], mean["Urban fabric"]
    assert water["B08"] < forest["B08"] < mean["Arable land"]["B08"]
    assert water["VV"] < forest["VV"] < urban["VV"]
    assert urban["B04"] > forest["B04"]
    coarse = bands["B8A"].astype(float).mean()
    assert abs(coarse - bands["B08"].astype(float).mean()) / coarse < 0.15


# ---------------------------------------------------------------------------------------------
# Text


def test_text_columns_types_and_ids(folders: Path) -> None:
    table = pq.read_table(folders / "BigEarthNet.txt.parquet")
    assert tuple(table.column_names) == TEXT_COLUMNS
    assert table.schema == TEXT_SCHEMA
    assert table.column("ID").to_pylist() == list(range(table.num_rows))
    assert set(table.column("type").to_pylist()) == set(TEXT_TYPES)
    answers = pc.filter(table["output"], pc.equal(table["type"], "binary")).to_pylist()
    assert set(answers) == {"yes", "no"}
    meta = {r["patch_id"]: r for r in _meta_rows(folders)}
    per_pair = table.group_by("patch_id").aggregate([("ID", "count")])
    assert 15 <= np.mean(per_pair.column("ID_count").to_numpy()) <= 22
    for row in table.to_pylist()[::7]:
        m = meta[row["patch_id"]]
        s2 = parse_patch_id(row["patch_id"])
        lon, lat = centre_wgs84(s2.tile, s2.x, s2.y)
        assert row["s1_name"] == m["s1_name"] and row["country"] == m["country"]
        assert row["split"] in (m["split"], "bench")
        assert row["season"] == season_of(s2.datetime.month)
        assert (row["latitude"], row["longitude"]) == (lat, lon)
        assert re.fullmatch(r"(Cf[abc]|Cs[ab]|Df[abc]|BSk|ET)", row["climate_zone"])


def test_annotations_for_equals_written_text(folders: Path) -> None:
    meta = pq.read_table(folders / "metadata.parquet")
    batches = list(annotations_for(meta, SEED, batch_rows=50))
    assert len(batches) > 1 and all(b.schema == TEXT_SCHEMA for b in batches)
    assert pa.Table.from_batches(batches).equals(pq.read_table(folders / "BigEarthNet.txt.parquet"))


_BOX = re.compile(r"\[(\d\.\d\d) (\d\.\d\d), (\d\.\d\d) (\d\.\d\d)\]")
_POINT = re.compile(r"<point>\((\d\.\d\d), (\d\.\d\d)\)</point>")


def _class_at(codes: np.ndarray, text: str) -> str:
    x, y = (round(float(v) * 100) for v in _POINT.search(text).groups())
    return CODE_TO_CLASS[int(codes[y * 120 // 100, x * 120 // 100])]


def _box(codes: np.ndarray, name: str) -> tuple[float, ...]:
    """The normalised box of every pixel of a class (what the answers used to be)."""
    rows, cols = np.nonzero(np.isin(codes, [c for c, n in CODE_TO_CLASS.items() if n == name]))
    return (cols.min() / 120, rows.min() / 120, (cols.max() + 1) / 120, (rows.max() + 1) / 120)


def _flood_regions(grid: list[list[str]]) -> list[list[tuple[int, int]]]:
    """4-connected regions of equal non-empty names, by a plain BFS, in raster order of seeds."""
    h, w = len(grid), len(grid[0])
    seen = [[False] * w for _ in range(h)]
    regions = []
    for r0 in range(h):
        for c0 in range(w):
            if seen[r0][c0] or not grid[r0][c0]:
                continue
            seen[r0][c0] = True
            queue, pixels = deque([(r0, c0)]), []
            while queue:
                r, c = queue.popleft()
                pixels.append((r, c))
                for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
                    inside = 0 <= rr < h and 0 <= cc < w
                    if inside and not seen[rr][cc] and grid[rr][cc] == grid[r][c]:
                        seen[rr][cc] = True
                        queue.append((rr, cc))
            regions.append(pixels)
    return regions


def _point_xy(text: str) -> tuple[int, int]:
    """The ``k`` (of ``k / 100``) of the x and y of the ``<point>`` in a question."""
    found = _POINT.search(text)
    assert found is not None, text
    x, y = (round(float(v) * 100) for v in found.groups())
    return x, y


def _names(codes: np.ndarray) -> list[list[str]]:
    return [[CODE_TO_CLASS.get(int(v), "") for v in row] for row in codes]


def _box_text(pixels: list[tuple[int, int]]) -> str:
    """The expected answer: pixel-edge box / 120 with 2 decimals (widened when it rounds flat)."""
    rows, cols = [r for r, _ in pixels], [c for _, c in pixels]
    x1, y1, x2, y2 = min(cols) / 120, min(rows) / 120, (max(cols) + 1) / 120, (max(rows) + 1) / 120
    x2 += 0.01 if f"{x1:.2f}" == f"{x2:.2f}" else 0.0
    y2 += 0.01 if f"{y1:.2f}" == f"{y2:.2f}" else 0.0
    return f"[{x1:.2f} {y1:.2f}, {x2:.2f} {y2:.2f}]"


_REF = re.compile(r"Give the bounding box of <ref>the (largest area of )?(.+)</ref>\.")


def _expected_box(codes: np.ndarray, question: str, category: str) -> tuple[str, str, bool]:
    """Expected answer, class and whether the class has several regions, by flood fill."""
    grid = _names(codes)
    regions = _flood_regions(grid)
    if category == "reference":
        found = _REF.fullmatch(question)
        assert found is not None, question
        says_largest, lower = found.groups()
        name = _by_lower(lower)
        own = sorted((p for p in regions if grid[p[0][0]][p[0][1]] == name), key=len)
        assert len(own) == 1 or len(own[-1]) > len(own[-2])  # "the largest" is unambiguous
        assert (says_largest is not None) == (len(own) > 1)
        return _box_text(own[-1]), name, len(own) > 1
    x, y = _point_xy(question)
    pixel = (y * 120 // 100, x * 120 // 100)
    (region,) = [p for p in regions if pixel in p]
    name = grid[pixel[0]][pixel[1]]
    return _box_text(region), name, sum(grid[p[0][0]][p[0][1]] == name for p in regions) > 1


def _position(codes: np.ndarray, name: str) -> str:
    rows, cols = np.nonzero(np.isin(codes, [c for c, n in CODE_TO_CLASS.items() if n == name]))
    x, y = (cols.mean() + 0.5) / 120, (rows.mean() + 0.5) / 120
    if abs(x - 0.5) < 1 / 6 and abs(y - 0.5) < 1 / 6:
        return "centre"
    return ("top " if y < 0.5 else "bottom ") + ("left" if x < 0.5 else "right")


def _touch(codes: np.ndarray, a: str, b: str) -> bool:
    cls = np.vectorize(lambda c: CODE_TO_CLASS.get(int(c), ""))(codes)
    across = zip(cls[:, :-1].ravel(), cls[:, 1:].ravel(), strict=True)
    down = zip(cls[:-1].ravel(), cls[1:].ravel(), strict=True)
    pairs = {*across, *down}
    return (a, b) in pairs or (b, a) in pairs


def _options(text: str) -> dict[str, str]:
    return dict(re.findall(r"^([A-D])\. (.+)$", text, flags=re.M))


def _by_lower(name: str) -> str:
    return {c.lower(): c for c in CLASSES_ORIGINAL}[name]


def test_answers_are_true_of_the_map(folders: Path) -> None:
    table = pq.read_table(folders / "BigEarthNet.txt.parquet").to_pylist()
    meta = {r["patch_id"]: r for r in _meta_rows(folders)}
    checked = set()
    smaller = 0  # boxes of classes with several regions, clearly smaller than the class's box
    for row in table:
        codes = _read_map(folders, row["patch_id"], meta[row["patch_id"]]["s1_name"])
        shares, _ = _shares(codes)
        q, a, cat = row["input"], row["output"], (row["type"], row["category"])
        if cat == ("binary", "presence"):
            name = _by_lower(re.fullmatch(r"Is there any (.+) in the image\?", q).group(1))
            assert a == ("yes" if name in shares else "no")
        elif cat == ("binary", "area"):
            x, y = re.fullmatch(r"Does (.+) cover more of the image than (.+)\?", q).groups()
            assert a == (
                "yes" if shares.get(_by_lower(x), 0) > shares.get(_by_lower(y), 0) else "no"
            )
        elif cat == ("binary", "point"):
            name = _by_lower(re.search(r"</point> (.+)\?$", q).group(1))
            assert a == ("yes" if _class_at(codes, q) == name else "no")
        elif cat == ("mcq", "area"):
            assert _by_lower(_options(q)[a]) == max(shares, key=shares.__getitem__)
        elif cat == ("mcq", "presence"):
            opts = _options(q)
            assert [k for k, v in opts.items() if _by_lower(v) in shares] == [a]
        elif cat == ("mcq", "counting"):
            assert int(_options(q)[a]) == len(shares)
        elif cat == ("mcq", "country"):
            assert _options(q)[a] == row["country"]
        elif cat == ("mcq", "season"):
            assert _options(q)[a] == row["season"]
        elif cat[0] == "bounding box":
            expected, name, several = _expected_box(codes, q, cat[1])
            assert a == expected, (q, a, expected)
            x1, y1, x2, y2 = (float(v) for v in _BOX.fullmatch(a).groups())
            assert 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1
            whole = _box(codes, name)
            assert whole[0] - 0.005 <= x1 and x2 <= whole[2] + 0.005
            assert whole[1] - 0.005 <= y1 and y2 <= whole[3] + 0.005
            smaller += (
                several
                and (x2 - x1) * (y2 - y1) < (whole[2] - whole[0]) * (whole[3] - whole[1]) - 0.01
            )
        elif cat == ("mcq", "climate zone"):
            assert _options(q)[a] == row["climate_zone"]
        elif cat == ("binary", "adjacency"):
            x, y = (_by_lower(v) for v in re.findall(r"<ref>(.+?)</ref>", q))
            assert a == ("yes" if _touch(codes, x, y) else "no")
        elif cat == ("captioning", "caption"):
            assert row["country"] in a and row["season"].lower() in a
            mentioned = 0
            for name, share in shares.items():
                found = re.search(re.escape(name.lower()) + r" \(about (\d+) %\)", a)
                if found:
                    mentioned += 1
                    assert abs(100 * share - int(found.group(1))) <= 0.5 + 1e-9
            assert mentioned == min(3, len(shares)) == a.count("(about ")
        elif cat == ("mcq", "relative position"):
            name = _by_lower(re.search(r"<ref>(.+)</ref>", q).group(1))
            assert _options(q)[a] == _position(codes, name)
        checked.add(cat)
    assert {("binary", "presence"), ("mcq", "area"), ("bounding box", "reference")} <= checked
    assert {("binary", "point"), ("bounding box", "point"), ("mcq", "counting")} <= checked
    assert {("binary", "adjacency"), ("captioning", "caption"), ("mcq", "climate zone")} <= checked
    assert smaller > 0


def _shapes() -> list[np.ndarray]:
    """Maps that are hard for label propagation: a spiral, combs, a snake, noise, a checkerboard."""
    spiral = np.zeros((120, 120), dtype=np.int8)
    r0, r1 = 0, 119
    while r0 <= r1:
        spiral[r0, r0 : r1 + 1] = spiral[r0 : r1 + 1, r1] = 1
        if r1 - r0 >= 2:
            spiral[r1, r0 : r1 + 1] = spiral[r0 + 2 : r1 + 1, r0] = 1
        r0, r1 = r0 + 2, r1 - 2
    comb = np.zeros((120, 120), dtype=np.int8)
    comb[:, ::2], comb[-1] = 1, 1
    snake = np.zeros((120, 120), dtype=np.int8)
    snake[::4], snake[1::4, -1], snake[3::4, 0] = 1, 1, 1
    noise = np.random.default_rng(0).integers(-1, 3, (120, 120)).astype(np.int8)
    checker = (np.indices((120, 120)).sum(axis=0) % 2).astype(np.int8)
    return [spiral, comb, comb[::-1, ::-1], snake, snake.T, noise, checker, noise[:7, :31]]


def test_label_regions_equal_a_flood_fill(full_metadata: pa.Table) -> None:
    rows = full_metadata.take(pa.array([0, 777, 5_000, 90_000])).to_pylist()
    real = [reference_map(2, r["patch_id"], r["labels"]).astype(np.int64) for r in rows]
    for cls in [*_shapes(), *real]:
        labels = label_regions(cls)
        expected = np.full(cls.shape, -1, dtype=np.int64)
        for pixels in _flood_regions([[str(v) if v >= 0 else "" for v in row] for row in cls]):
            first = min(pixels)
            expected[tuple(np.array(pixels).T)] = first[0] * cls.shape[1] + first[1]
        assert np.array_equal(labels, expected)


def test_boxes_of_a_known_map(full_metadata: pa.Table) -> None:
    codes = np.full((120, 120), 211, dtype=np.uint16)  # arable land, one region
    codes[12:48, 30:90] = 312  # coniferous forest: the larger of its two regions...
    codes[78:114, 0:30] = 312  # ...and the smaller (all its pixels span [0.00 0.10, 0.75 0.95])
    codes[60:72, 60:120] = 512  # inland waters, one region
    big, small = "[0.25 0.10, 0.75 0.40]", "[0.00 0.65, 0.25 0.95]"
    arable, water = "[0.00 0.00, 1.00 1.00]", "[0.50 0.50, 1.00 0.60]"
    refs = {
        "the largest area of coniferous forest": big,
        "the inland waters": water,
        "the arable land": arable,
    }
    drawn = draw(full_metadata, 40, 9)
    table = pa.Table.from_batches(list(annotations_for(drawn, 9, maps=lambda pid, lab: codes)))
    seen = set()
    for row in pc.filter(table, pc.equal(table["type"], "bounding box")).to_pylist():
        q, a = row["input"], row["output"]
        if row["category"] == "reference":
            ref = q.removeprefix("Give the bounding box of <ref>").removesuffix("</ref>.")
            assert a == refs[ref], q
            seen.add(ref)
        else:
            x, y = _point_xy(q)
            r, c = y * 120 // 100, x * 120 // 100
            by_code = {211: arable, 512: water, 312: big if r < 60 else small}
            assert a == by_code[int(codes[r, c])]
            seen.add(a)
    assert set(refs) | {big, small, arable, water} <= seen


def test_coverage_and_bench_split(full_metadata: pa.Table) -> None:
    drawn = draw(full_metadata, 20_000, 11)
    plan = plan_text(drawn, 11)
    assert 0.95 < plan.has_text.mean() < 0.98
    splits = np.array(plan.splits)
    n_test = int(((splits == "test") | (splits == "bench"))[plan.has_text].sum())
    n_bench = int((splits == "bench").sum())
    assert n_bench == round(0.0025 * n_test) and plan.has_text[splits == "bench"].all()
    assert (np.array(drawn.column("split").to_pylist())[splits == "bench"] == "test").all()
    assert plan.splits == plan_text(drawn, 11).splits


def test_bench_rows_in_text(full_metadata: pa.Table) -> None:
    drawn = draw(full_metadata, 120, 4)
    flat = np.full((120, 120), 211, dtype=np.uint16)  # a cheap map: text only
    table = pa.Table.from_batches(list(annotations_for(drawn, 4, maps=lambda pid, labels: flat)))
    bench = pc.filter(table, pc.equal(table["split"], "bench"))
    assert bench.num_rows > 0
    assert len(set(bench.column("patch_id").to_pylist())) >= 1
    presence = pc.filter(table, pc.equal(table["category"], "presence"))
    for row in presence.to_pylist():
        if row["type"] == "binary":
            assert row["output"] == ("yes" if "arable land" in row["input"] else "no")


# ---------------------------------------------------------------------------------------------
# Arguments


@pytest.mark.parametrize(
    ("n", "fmt", "match"),
    [(0, "folders", "at least 1"), (401, "folders", "between 1 and 400"), (2, "zip", "zip")],
)
def test_bad_arguments(small_metadata: Path, tmp_path: Path, n: int, fmt: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        synthesize(n, tmp_path / "out", fmt=fmt, metadata_path=small_metadata)


def test_refuses_a_non_empty_folder(small_metadata: Path, tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match=re.escape(str(tmp_path))):
        synthesize(1, tmp_path, metadata_path=small_metadata)
    synthesize(1, tmp_path / "empty", metadata_path=small_metadata, text=False)  # new: fine


def test_report_and_default_metadata(small_metadata: Path, tmp_path: Path) -> None:
    assert DEFAULT_METADATA.exists()
    report = synthesize(2, tmp_path / "r", fmt="lmdb", metadata_path=small_metadata, progress=True)
    assert report.n_patches == 2 and report.fmt == "lmdb" and report.out == tmp_path / "r"
    assert report.bytes_written > 2 * 300_000 and report.seconds > 0
    assert report.n_text_rows == pq.read_metadata(tmp_path / "r/BigEarthNet.txt.parquet").num_rows
