"""lake.codecs: both codec sets round-trip the real sample bit for bit; portable is core-only."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import rasterio
import zarr

from lake.codecs import (
    CODEC_SETS,
    CORE_CODECS,
    DEFAULT_CODECS,
    check_codec_set,
    codecs_for,
    string_codecs,
)
from lake.errors import ConfigError
from tests.conftest import SAMPLE

BANDS = {
    "s2_10m": ("B02", "B03", "B04", "B08"),
    "s2_20m": ("B05", "B06", "B07", "B8A", "B11", "B12"),
    "s2_60m": ("B01", "B09"),
    "s1": ("VV", "VH"),
    "reference_map": ("reference_map",),
}


def sample(array: str) -> np.ndarray:
    """The real sample's values of one patch array (bands, y, x), as released."""
    planes = []
    for band in BANDS[array]:
        with rasterio.open(next(SAMPLE.rglob(f"*_{band}.tif"))) as ds:
            planes.append(ds.read(1))
    stacked = np.stack(planes)
    return stacked[0] if array == "reference_map" else stacked


def names(codecs: list[dict[str, Any]]) -> set[str]:
    out: set[str] = set()
    for c in codecs:
        out.add(c["name"])
        conf = c.get("configuration") or {}
        out |= names(conf.get("codecs", [])) | names(conf.get("index_codecs", []))
    return out


def stored(data: np.ndarray, kwargs: dict[str, Any]) -> tuple[zarr.Array, set[str]]:
    """``data`` as sample 0 of a sharded array written with ``kwargs``; the codec names used."""
    store = zarr.storage.MemoryStore()
    shape = (2, *data.shape)
    array = zarr.create_array(
        store, shape=shape, chunks=(1, *data.shape), shards=shape, dtype=data.dtype, **kwargs
    )
    array[0] = data
    meta = json.loads(store._store_dict["zarr.json"].to_bytes())
    return array, names(meta["codecs"])


@pytest.mark.parametrize("array", sorted(BANDS))
@pytest.mark.parametrize("portable", [False, True])
def test_every_pipeline_round_trips_the_real_sample(array: str, portable: bool) -> None:
    data = sample(array)
    z, used = stored(data, codecs_for(array, portable=portable))
    got = z[0]
    assert got.dtype == data.dtype and np.array_equal(got, data)
    assert "crc32c" in used
    if portable:
        assert used <= CORE_CODECS, used
    elif array != "reference_map":
        assert "numcodecs.pcodec" in used


def test_portable_strings_use_gzip_not_zstd() -> None:
    for portable, compressor in ((True, "gzip"), (False, "zstd")):
        store = zarr.storage.MemoryStore()
        a = zarr.create_array(store, shape=(3,), dtype=str, **string_codecs(portable=portable))
        a[:] = np.array(["S2A_x", "", "é"])
        assert list(a[:]) == ["S2A_x", "", "é"]
        used = names(json.loads(store._store_dict["zarr.json"].to_bytes())["codecs"])
        assert used == {"vlen-utf8", compressor, "crc32c"}


def test_the_default_is_pcodec() -> None:
    assert DEFAULT_CODECS == "pcodec" and CODEC_SETS == ("pcodec", "portable")
    assert check_codec_set("portable") == "portable"


@pytest.mark.parametrize("bad", ["", "zstd", "Portable", "pcodec "])
def test_an_unknown_codec_set_is_named(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_codec_set(bad)
    assert f"--codecs {bad!r}" in str(info.value) and "pcodec, portable" in str(info.value)


def test_an_unknown_array_is_named() -> None:
    with pytest.raises(ValueError, match="'s2_5m'"):
        codecs_for("s2_5m", portable=True)
