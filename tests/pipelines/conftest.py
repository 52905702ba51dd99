"""Source fixtures: one complete pair built from the real sample's values, in the three forms.

The shared sample holds three different pairs (S2 of 75_43, S1 of 70_48, the map of 26_57), so no
complete pair. The fixture writes the sample's values under the real names of one pair
(the metadata row of ``..._T33UUP_75_43`` with its own ``s1_name``), georeferenced from
:mod:`lake.grid`, as extracted folders, as streamed ``.tar.zst`` archives and as a rico-hdl LMDB.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import lmdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import rasterio
import zstandard
from safetensors.numpy import save as save_safetensors

from lake.bigearthnet import REFERENCE_MAP, S1_BANDS, S2_BANDS
from lake.config import StoreSpec
from lake.grid import tile_grid
from lake.names import MAPS_ROOT, S1_ROOT, S2_ROOT, pair_files, parse_patch_id, parse_s1_name
from pipelines.sources.base import PAIR_BANDS
from pipelines.sources.geotiff import encode_band, spec_of
from tests.conftest import METADATA, SAMPLE
from tests.pipelines.jobs.helpers import LAKE as JOBS_LAKE
from tests.support.lakes import LakeRecipe, TestLake, copy_lake

PATCH_ID = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_75_43"
#: The sample's S1 (of another pair) and reference map (of a third pair).
SAMPLE_S1 = "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_70_48"
SAMPLE_MAP_PATCH = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_26_57"
#: Another real metadata row (used for "no files" and orphans).
OTHER_ID = SAMPLE_MAP_PATCH


def sample_files() -> dict[str, str]:
    """Every file of the shared sample: band -> path relative to the sample root."""
    s2, s1 = parse_patch_id(PATCH_ID), parse_s1_name(SAMPLE_S1)
    files = {b: f"{S2_ROOT}/{s2.band_path(b)}" for b in S2_BANDS}
    files |= {b: f"{S1_ROOT}/{s1.band_path(b)}" for b in S1_BANDS}
    files[REFERENCE_MAP.name] = (
        f"{MAPS_ROOT}/{parse_patch_id(SAMPLE_MAP_PATCH).reference_map_path()}"
    )
    return files


def metadata_rows(*patch_ids: str) -> pa.Table:
    """The official metadata rows of some patches."""
    table = pq.read_table(METADATA)
    return table.filter(pc.is_in(table["patch_id"], value_set=pa.array(patch_ids)))


@dataclass(frozen=True)
class PairFixture:
    """One complete pair: its names, its band values, and its files' bytes.

    Attributes:
        patch_id: The pair's S2 patch id.
        s1_name: Its S1 name (from the metadata).
        values: Band -> the array written.
        files: Path relative to a source root -> GeoTIFF bytes.
        metadata: The pair's metadata row(s).
    """

    patch_id: str
    s1_name: str
    values: Mapping[str, np.ndarray]
    files: Mapping[str, bytes]
    metadata: pa.Table


def georef(patch_id: str, band: str) -> tuple[int, rasterio.Affine]:
    """EPSG and transform of a band of a patch, from the patch grid."""
    name = parse_patch_id(patch_id)
    grid = tile_grid(name.tile)
    return grid.epsg, grid.patch_transform(name.x, name.y, spec_of(band).resolution_m)


def encode_pair(patch_id: str, s1_name: str, values: Mapping[str, np.ndarray]) -> dict[str, bytes]:
    """The 15 GeoTIFFs of a pair, as the official encoding, keyed by relative path."""
    out = {}
    for band, rel in pair_files(patch_id, s1_name).items():
        epsg, transform = georef(patch_id, band)
        out[rel] = encode_band(values[band], band, epsg, transform)
    return out


def write_folders(root: Path, files: Mapping[str, bytes], metadata: pa.Table) -> Path:
    """An extracted-folders source."""
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    root.mkdir(parents=True, exist_ok=True)
    pq.write_table(metadata, root / "metadata.parquet")
    return root


def _dirs(paths: Iterable[str]) -> list[str]:
    """Every folder above the given paths, parents first."""
    dirs: set[str] = set()
    for p in paths:
        parts = p.split("/")[:-1]
        dirs.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    return sorted(dirs, key=lambda d: (d.count("/"), d))


def write_tar_zst(path: Path, members: Mapping[str, bytes], level: int = 3) -> Path:
    """A ``.tar.zst`` written as a stream (tar ``w|`` into a zstd stream writer), with folders.

    Like the ``zstd`` command line, the frame carries a content checksum.
    """
    with (
        open(path, "wb") as raw,
        zstandard.ZstdCompressor(level=level, write_checksum=True).stream_writer(
            raw, closefd=False
        ) as zst,
        tarfile.open(fileobj=zst, mode="w|") as tar,
    ):
        for d in _dirs(members):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name in sorted(members):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(members[name]), 0o644
            tar.addfile(info, io.BytesIO(members[name]))
    return path


def write_archives(root: Path, files: Mapping[str, bytes], metadata: pa.Table) -> Path:
    """A ``.tar.zst`` source: one archive per top-level folder, plus metadata."""
    root.mkdir(parents=True, exist_ok=True)
    for top in (S2_ROOT, S1_ROOT, MAPS_ROOT):
        members = {k: v for k, v in files.items() if k.startswith(top + "/")}
        write_tar_zst(root / f"{top}.tar.zst", members)
    pq.write_table(metadata, root / "metadata.parquet")
    return root


def lmdb_entries(patch_id: str, s1_name: str, values: Mapping[str, np.ndarray]) -> dict[str, bytes]:
    """The three rico-hdl LMDB entries of a pair."""
    return {
        patch_id: save_safetensors({b: values[b] for b in S2_BANDS}),
        s1_name: save_safetensors({b: values[b] for b in S1_BANDS}),
        f"{patch_id}_reference_map": save_safetensors({"Data": values[REFERENCE_MAP.name]}),
    }


def write_lmdb(root: Path, entries: Mapping[str, bytes], metadata: pa.Table) -> Path:
    """An LMDB source (``BigEarthNet.lmdb/`` plus metadata)."""
    root.mkdir(parents=True, exist_ok=True)
    env = lmdb.open(str(root / "BigEarthNet.lmdb"), map_size=1 << 28)
    with env.begin(write=True) as txn:
        for key, value in entries.items():
            txn.put(key.encode(), value)
    env.close()
    pq.write_table(metadata, root / "metadata.parquet")
    return root


@pytest.fixture(scope="session")
def pair() -> PairFixture:
    """The complete pair: S2 of 75_43, S1 values of 70_48 and map values of 26_57 under the
    names of 75_43's metadata row."""
    values = {}
    for band, rel in sample_files().items():
        with rasterio.open(SAMPLE / rel) as ds:
            values[band] = ds.read(1)
    assert set(values) == set(PAIR_BANDS)
    metadata = metadata_rows(PATCH_ID)
    s1_name = metadata["s1_name"][0].as_py()
    return PairFixture(PATCH_ID, s1_name, values, encode_pair(PATCH_ID, s1_name, values), metadata)


@pytest.fixture(scope="session")
def sources(pair: PairFixture, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The pair as each kind of source (treat as read-only; copy before changing)."""
    base = tmp_path_factory.mktemp("sources")
    return {
        "folders": write_folders(base / "folders", pair.files, pair.metadata),
        "tar.zst": write_archives(base / "tarzst", pair.files, pair.metadata),
        "lmdb": write_lmdb(
            base / "lmdb", lmdb_entries(pair.patch_id, pair.s1_name, pair.values), pair.metadata
        ),
    }


# ---------------------------------------------------------------- the jobs' lake


@pytest.fixture(scope="session")
def jobs_built(build_lake: Callable[[LakeRecipe], TestLake]) -> TestLake:
    """48 synthetic pairs (with text) from folders, in shards of 2, ingested on 2 threads."""
    return build_lake(JOBS_LAKE)


@pytest.fixture(scope="session")
def jobs_source(jobs_built: TestLake) -> Path:
    """The jobs' synthetic source folder."""
    return jobs_built.source


@pytest.fixture(scope="session")
def jobs_lake_pristine(jobs_built: TestLake) -> Path:
    """The jobs' lake folder, never changed (copy it with :func:`jobs_lake`)."""
    return jobs_built.root


@pytest.fixture
def jobs_lake(jobs_built: TestLake, tmp_path: Path) -> StoreSpec:
    """A private copy of the jobs' lake (tests may amend or damage it)."""
    return copy_lake(jobs_built, tmp_path / "lake")
