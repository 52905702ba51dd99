"""The header-only scan (``scan_pair``) and sources on object storage: the scan agrees with the
decode on every kind of source, reads no pixel, and names what a header shows is wrong; the same
real pair read from S3 (folders, and archives staged as compressed packs) is bit-exact."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import zstandard

from lake.errors import BadInput, SourceError
from lake.names import pair_files
from lake.storage import filesystem
from pipelines.sources import geotiff
from pipelines.sources.geotiff import HEADER_BYTES, HeaderIncomplete, read_band_header
from pipelines.sources.lmdb_source import tensor_headers
from pipelines.sources.open import open_source
from pipelines.sources.packs import decode_run, encode_run
from tests.conftest import s3_spec_for
from tests.pipelines.conftest import PairFixture

KINDS = ["folders", "tar.zst", "lmdb"]


@pytest.mark.parametrize("kind", KINDS)
def test_scan_agrees_with_the_decode_and_decodes_no_pixel(sources, pair, kind, monkeypatch):
    source = open_source(sources[kind])
    source.prepare()
    want = source.read_pair(pair.patch_id, pair.s1_name)

    def refuse(*args, **kwargs):
        raise AssertionError("the scan decoded pixels")

    for name in ("decode_pixels", "read_pixels"):
        monkeypatch.setattr(geotiff, name, refuse)
    monkeypatch.setattr("pipelines.sources.lmdb_source.load_tensors", refuse)
    header = source.scan_pair(pair.patch_id, pair.s1_name)
    assert (header.epsg, header.transform) == (want.epsg, want.transform)


def test_scan_names_a_wrong_band_and_a_missing_file(sources, pair: PairFixture, tmp_path):
    root = tmp_path / "folders"
    shutil.copytree(sources["folders"], root)
    files = pair_files(pair.patch_id, pair.s1_name)
    shutil.copy(root / files["B8A"], root / files["B02"])  # a 20 m band where a 10 m one goes
    (root / files["VH"]).unlink()
    source = open_source(root)
    with pytest.raises(BadInput) as err:
        source.scan_pair(pair.patch_id, pair.s1_name)
    assert err.value.subject == str(root / files["B02"]) and err.value.reason == "wrong_shape"
    shutil.copy(sources["folders"] / files["B02"], root / files["B02"])
    with pytest.raises(BadInput) as err:
        source.scan_pair(pair.patch_id, pair.s1_name)
    assert err.value.subject == str(root / files["VH"]) and err.value.reason == "missing_file"


def test_read_band_header_from_a_prefix(sources, pair):
    data = (sources["folders"] / pair_files(pair.patch_id, pair.s1_name)["B02"]).read_bytes()
    assert len(data) > HEADER_BYTES
    whole = read_band_header(data, "f.tif", "B02", len(data))
    assert read_band_header(data[:HEADER_BYTES], "f.tif", "B02") == whole
    with pytest.raises(HeaderIncomplete):  # a prefix too short for the header: read it all
        read_band_header(data[:16], "f.tif", "B02", len(data))
    with pytest.raises(BadInput, match="pixel data ends at byte") as err:
        read_band_header(data[:HEADER_BYTES], "f.tif", "B02", HEADER_BYTES)
    assert (err.value.subject, err.value.reason) == ("f.tif", "truncated")
    with pytest.raises(BadInput) as err:
        read_band_header(b"\x00garbage" * 40, "g.tif", "B02")
    assert (err.value.subject, err.value.reason) == ("g.tif", "unreadable")


def test_tensor_headers_name_a_damaged_blob():
    from safetensors.numpy import save

    blob = save({"VV": np.zeros((120, 120), np.float32)})
    assert tensor_headers(blob, "x") == {"VV": ((120, 120), "float32")}
    with pytest.raises(BadInput, match="ends at byte") as err:
        tensor_headers(blob[:-10], "lmdb:key")
    assert (err.value.subject, err.value.reason) == ("lmdb:key", "unreadable")
    with pytest.raises(BadInput, match="key not in the LMDB"):
        tensor_headers(None, "lmdb:key")


def test_a_run_round_trips_and_a_damaged_one_is_named():
    members = [("a.tif", b"x" * 1000), ("b.tif", bytes(range(256)))]
    blob = encode_run(members, zstandard.ZstdCompressor(level=3))
    assert decode_run(blob, "pack@0") == dict(members)
    with pytest.raises(SourceError, match=r"pack-000001\.bin@42: damaged staging run"):
        decode_run(blob[:-5], "pack-000001.bin@42")


@pytest.mark.s3
@pytest.mark.parametrize("kind", ["folders", "tar.zst"])
def test_the_real_pair_from_s3_is_bit_exact(sources, pair, kind, s3_server):
    spec = s3_spec_for(s3_server)
    fs = filesystem(spec)
    fs.put(str(sources[kind]), spec.path(kind), recursive=True)
    source = open_source(f"{spec.url}/{kind}", store=spec)
    assert source.kind == kind
    source.prepare()
    local = open_source(sources[kind])
    local.prepare()
    got = source.read_pair(pair.patch_id, pair.s1_name)
    want = local.read_pair(pair.patch_id, pair.s1_name)
    assert (got.epsg, got.transform) == (want.epsg, want.transform)
    for band, values in want.bands.items():
        assert (
            got.bands[band].tobytes() == values.tobytes() and got.bands[band].dtype == values.dtype
        )
    header = source.scan_pair(pair.patch_id, pair.s1_name)
    assert (header.epsg, header.transform) == (want.epsg, want.transform)
    assert source.checked_metadata().table.equals(local.checked_metadata().table)
    assert source.orphans(*local.checked_metadata().names()) == []
    assert source.fingerprint() != local.fingerprint()


@pytest.mark.s3
def test_a_missing_file_on_s3_is_named_by_url(sources, pair, s3_server):
    spec = s3_spec_for(s3_server)
    fs = filesystem(spec)
    fs.put(str(sources["folders"]), spec.path("f"), recursive=True)
    rel = pair_files(pair.patch_id, pair.s1_name)["VH"]
    fs.rm_file(spec.path(f"f/{rel}"))
    source = open_source(f"{spec.url}/f", store=spec)
    for read in (source.scan_pair, source.read_pair):
        with pytest.raises(BadInput) as err:
            read(pair.patch_id, pair.s1_name)
        assert (err.value.subject, err.value.reason) == (f"{spec.url}/f/{rel}", "missing_file")


def test_local_sources_are_unchanged_by_a_store(sources, tmp_path: Path):
    source = open_source(sources["folders"])
    assert getattr(source, "store", "absent") is None
