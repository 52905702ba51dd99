"""``lake ingest --codecs portable``: Zarr v3 core codecs only, read without pcodec, bit for bit.

The jobs' source is ingested again through the CLI with ``--codecs portable``; every array is
compared with the jobs' lake (the default pcodec set). A plain reader (zarr and xarray, nothing of
this project) runs in a subprocess where ``pcodec`` cannot be imported: it reads the portable lake,
and it fails on the pcodec lake with an error that names pcodec.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from typer.testing import CliRunner

from lake.codecs import CORE_CODECS
from lake.layout import patches_path
from lake.loader.decode import chunk_decoder
from lake.loader.fetch import read_layouts
from lake.reader import open_lake
from pipelines.cli import app
from tests.pipelines.jobs.helpers import RELEASE
from tests.support.lakes import TestLake

RASTERS = ("s2_10m", "s2_20m", "s2_60m", "s1", "reference_map")
STRINGS = ("patch_id", "s1_name", "s2_10m_band", "s2_20m_band", "s2_60m_band", "s1_band")

#: A plain zarr / xarray reader that cannot import pcodec (as on a machine without the package):
#: prints, per array, the sha256 of its values ordered by patch_id, read by zarr and by xarray.
PLAIN_READER = textwrap.dedent(
    """
    import hashlib, json, sys
    sys.modules["pcodec"] = None            # `import pcodec` raises ImportError
    sys.modules["numcodecs.pcodec"] = None  # and so does numcodecs' wrapper of it
    import numpy as np, xarray as xr, zarr

    path, names = sys.argv[1], sys.argv[2].split(",")
    group = zarr.open_group(path, mode="r")
    order = np.argsort(group["patch_id"][:])
    ds = xr.open_zarr(path, consolidated=False)
    out = {}
    for name in names:
        a = np.asarray(group[name][:])[order]
        b = ds[name].values[order]
        assert a.dtype == b.dtype and np.array_equal(a, b), name
        out[name] = hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()
    print(json.dumps(out))
    """
)


def plain_read(group: Path, names: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    """Run :data:`PLAIN_READER` on a patch group in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-c", PLAIN_READER, str(group), ",".join(names)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def values(group: zarr.Group, name: str) -> np.ndarray:
    """All values of one array of the group."""
    array = group[name]
    assert isinstance(array, zarr.Array)
    return np.asarray(array[...])


def digests_by_patch_id(group: zarr.Group, names: tuple[str, ...]) -> dict[str, str]:
    order = np.argsort(values(group, "patch_id"))
    return {
        n: hashlib.sha256(np.ascontiguousarray(values(group, n)[order]).tobytes()).hexdigest()
        for n in names
    }


def codec_names(codecs: list[dict[str, Any]]) -> set[str]:
    """Every codec name of a pipeline, the sharding codec's inner and index pipelines included."""
    names: set[str] = set()
    for c in codecs:
        names.add(c["name"])
        conf = c.get("configuration") or {}
        names |= codec_names(conf.get("codecs", [])) | codec_names(conf.get("index_codecs", []))
    return names


@pytest.fixture(scope="module")
def portable(jobs_built: TestLake, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The jobs' source ingested by ``lake ingest --codecs portable`` (the lake folder)."""
    where = tmp_path_factory.mktemp("portable") / "lake"
    args = ["ingest", str(jobs_built.source), "--lake", str(where), "--release", RELEASE]
    args += ["--codecs", "portable", "--cluster", "sync", "--samples-per-shard", "16", "--json"]
    res = CliRunner().invoke(app, args, prog_name="lake", env={"LAKE_URL": ""})
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["patches"] == 48
    return where


def test_portable_lake_uses_only_core_codecs(portable: Path, jobs_built: TestLake) -> None:
    group = portable / patches_path(RELEASE)
    for name in RASTERS:
        meta = json.loads((group / name / "zarr.json").read_text())
        assert codec_names(meta["codecs"]) <= CORE_CODECS, (name, meta["codecs"])
    for name in STRINGS:  # the string data type needs zarr's vlen-utf8 serializer (an extension)
        meta = json.loads((group / name / "zarr.json").read_text())
        assert codec_names(meta["codecs"]) - CORE_CODECS == {"vlen-utf8"}, (name, meta["codecs"])
    default = json.loads((jobs_built.root / patches_path(RELEASE) / "s2_10m/zarr.json").read_text())
    assert "numcodecs.pcodec" in codec_names(default["codecs"])  # the default is unchanged


def test_a_plain_reader_without_pcodec_reads_the_portable_lake_bit_for_bit(
    portable: Path, jobs_built: TestLake
) -> None:
    names = (*RASTERS, "patch_id", "s1_name")
    res = plain_read(portable / patches_path(RELEASE), names)
    assert res.returncode == 0, res.stderr
    want = digests_by_patch_id(zarr.open_group(jobs_built.root / patches_path(RELEASE)), names)
    assert json.loads(res.stdout) == want


def test_a_plain_reader_without_pcodec_fails_on_the_default_lake_naming_pcodec(
    jobs_built: TestLake,
) -> None:
    res = plain_read(jobs_built.root / patches_path(RELEASE), ("s2_10m",))
    assert res.returncode != 0
    # numcodecs.errors.UnknownCodecError: codec not available: ''pcodec'' (what README explains)
    errors = [line for line in res.stderr.splitlines() if "UnknownCodecError:" in line]
    assert errors and all("pcodec" in line for line in errors), res.stderr[-2000:]


def test_the_reader_and_the_loader_decode_the_portable_lake(
    portable: Path, jobs_built: TestLake
) -> None:
    from lake.config import store_spec

    spec = store_spec(str(portable), environ={})
    got, want = open_lake(spec).current, open_lake(jobs_built.spec).current
    for pid in want.patches(columns=["patch_id"]).column("patch_id").to_pylist()[:6]:
        a, b = got.patch(pid), want.patch(pid)
        for band in ("B02", "B8A", "B01", "VV", "reference_map"):
            assert a[band].dtype == b[band].dtype and np.array_equal(a[band], b[band]), band
    # the loader's own chunk decoder, on the stored bytes of shard 0
    group = zarr.open_group(portable / patches_path(RELEASE), mode="r")
    for name, layout in read_layouts(spec, RELEASE, RASTERS).items():
        raw = (portable / layout.key(patches_path(RELEASE), 0)).read_bytes()
        index = np.frombuffer(raw[-layout.index_nbytes : -4], dtype="<u8").reshape(-1, 2)
        decode = chunk_decoder(layout)
        for i, (offset, size) in enumerate(index[:3]):
            sample = decode(raw[int(offset) : int(offset + size)])
            assert np.array_equal(sample, values(group, name)[i]), (name, i)


@pytest.mark.parametrize("bad", ["zstd", "PORTABLE", ""])
def test_an_unknown_codec_set_is_refused_naming_it(bad: str, tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app,
        ["ingest", str(tmp_path), "--lake", str(tmp_path / "lake"), "--codecs", bad],
        prog_name="lake",
        env={"LAKE_URL": ""},
    )
    assert res.exit_code != 0
    assert f"--codecs {bad!r}" in res.output and "pcodec, portable" in res.output, res.output
    assert not (tmp_path / "lake").exists()


def test_ingest_options_refuse_an_unknown_codec_set() -> None:
    from lake.errors import ConfigError
    from pipelines.jobs.ingest import IngestOptions

    with pytest.raises(ConfigError, match="--codecs 'gzip'"):
        IngestOptions(codecs="gzip")  # type: ignore[arg-type]
