"""The pack stage's compact index (sorted arrays searched by bisection) finds every run the
former dict of lists found, in the same order, and nothing for a folder that was not staged;
a pack stage on a folder reads back what was staged, names who staged it, and names a damaged
or missing index."""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lake.config import store_spec
from lake.errors import SourceError
from pipelines.sources.location import SourceFiles
from pipelines.sources.packs import INDEX_SCHEMA, PackIndex, PackStage, _fixed_width
from tests.support.packs import dict_index

ARCHIVE = "BigEarthNet-S2.tar.zst"


def synthetic_runs(n: int, seed: int = 5) -> list[tuple[str, int, int, int]]:
    """``(folder, pack, offset, length)`` of ``n`` runs in archive order: BigEarthNet-like
    names of several lengths, a non-ASCII one, a name that is a prefix of another, and
    folders whose members were split over two or three runs."""
    rng = random.Random(seed)
    names = [
        f"BigEarthNet-S2/S2A_MSIL2A_2017_T{t:02d}UUP/S2A_MSIL2A_2017_T{t:02d}UUP_{x}_{y}"
        for t in range(3)
        for x in range(0, 90, 7)
        for y in range(rng.randint(1, 30))
    ]
    names += ["BigEarthNet-S2/tile/ü-名", "BigEarthNet-S2/tile/a", "BigEarthNet-S2/tile/a_b"]
    folders = names + rng.sample(names, 40) + rng.sample(names, 10)  # split folders
    rng.shuffle(folders)
    runs, pack, offset = [], 0, 0
    for folder in folders[:n]:
        length = rng.randint(1, 5000)
        runs.append((folder, pack, offset, length))
        offset += length
        if offset > 50_000:
            pack, offset = pack + 1, 0
    return runs


def as_table(runs: list[tuple[str, int, int, int]]) -> pa.Table:
    cols = list(zip(*runs, strict=True)) if runs else [[], [], [], []]
    return pa.table(dict(zip(INDEX_SCHEMA.names, cols, strict=True)), schema=INDEX_SCHEMA)


def test_the_compact_index_finds_every_run_the_dicts_found():
    table = as_table(synthetic_runs(10_000))
    want = dict_index(table)
    assert any(len(r) > 1 for r in want.values()) and len(want) > 500
    index = PackIndex.from_table(table)
    assert len(index) == table.num_rows and index.names.dtype.kind == "S"
    for folder, runs in want.items():
        assert index.runs([folder]) == [(folder, *r) for r in runs], folder
    everything = list(want)
    assert index.runs(everything) == [(f, *r) for f in everything for r in want[f]]
    assert index.folders() == sorted(want)
    # A folder that was not staged has no run: a prefix, a longer name, before and after all.
    absent = ["", "A", "BigEarthNet-S2/tile/a_", "BigEarthNet-S2/tile/a_b_c", "zzz", "ü"]
    assert all(f not in want for f in absent)
    assert index.runs(absent) == []
    assert index.runs(["zzz", "BigEarthNet-S2/tile/a", "zzz"]) == [
        ("BigEarthNet-S2/tile/a", *r) for r in want["BigEarthNet-S2/tile/a"]
    ]


def test_the_compact_index_of_a_sliced_chunked_table():
    """Folder strings taken from their Arrow buffers honour chunks and slice offsets."""
    runs = synthetic_runs(600, seed=9)
    table = pa.concat_tables([as_table(runs[:250]), as_table(runs[250:])]).slice(17, 500)
    assert table["folder"].num_chunks == 2
    index = PackIndex.from_table(table)
    want = dict_index(table)
    assert index.runs(list(want)) == [(f, *r) for f in want for r in want[f]]
    names = pa.array(["", "ab", "ü-名", "abc", "x"]).slice(1, 3)
    for block in (1, 2, 64):  # rows are copied block by block
        assert _fixed_width(names, block).tolist() == [b"ab", "ü-名".encode(), b"abc"]


def test_an_empty_index_finds_nothing():
    index = PackIndex.from_table(as_table([]))
    assert (len(index), index.runs(["a"]), index.folders()) == (0, [], [])


def test_a_table_that_is_not_an_index_is_named():
    with pytest.raises(SourceError, match=r"s3://b/st/index\.parquet: not a staging index"):
        PackIndex.from_table(pa.table({"folder": ["a"], "pack": [0]}), "s3://b/st/index.parquet")
    nulls = as_table([("a", 0, 0, 1)]).set_column(0, "folder", pa.array([None], pa.string()))
    with pytest.raises(SourceError, match=r"x\.parquet: damaged staging index \(a null folder"):
        PackIndex.from_table(nulls, "x.parquet")


def members() -> list[tuple[str, bytes]]:
    """Members in archive order; folder ``T/a`` comes back after ``T/b`` (two runs)."""
    return [
        ("BigEarthNet-S2/T/a/B02.tif", b"a2" * 300),
        ("BigEarthNet-S2/T/a/B03.tif", b"a3" * 300),
        ("BigEarthNet-S2/T/b/B02.tif", b"b2" * 300),
        ("BigEarthNet-S2/T/a/B04.tif", b"a4" * 300),
    ]


def test_a_stage_reads_back_by_folder_and_says_who_staged_it(tmp_path):
    stage = PackStage(SourceFiles(store_spec(str(tmp_path / "staging"), environ={})))
    report = stage.stage(ARCHIVE, iter(members()), "fp-1")
    assert (report.members, report.complete) == (4, True)
    marker = stage.marker(ARCHIVE)
    assert marker is not None and marker["staged_by"]["pid"] == os.getpid()
    assert marker["seconds"] >= 0 and marker["cpu_seconds"] >= 0 and stage.staged(ARCHIVE, "fp-1")
    got = stage.read_folders(ARCHIVE, ["BigEarthNet-S2/T/a", "BigEarthNet-S2/T/c"])
    assert got["BigEarthNet-S2/T/a"] == {
        n.rsplit("/", 1)[1]: d for n, d in members() if n.startswith("BigEarthNet-S2/T/a/")
    }
    assert got["BigEarthNet-S2/T/c"] == {}  # not staged
    assert stage.folders(ARCHIVE) == ["BigEarthNet-S2/T/a", "BigEarthNet-S2/T/b"]


def test_a_missing_or_damaged_index_is_named(tmp_path):
    root = tmp_path / "staging"
    stage = PackStage(SourceFiles(store_spec(str(root), environ={})))
    with pytest.raises(SourceError, match=f"{ARCHIVE} is not staged there; run prepare"):
        stage.read_folders(ARCHIVE, ["BigEarthNet-S2/T/a"])
    stage.stage(ARCHIVE, iter(members()), "fp-1")
    stage.forget(ARCHIVE)
    (root / ARCHIVE / "index.parquet").write_bytes(b"PAR1 not a parquet file")
    with pytest.raises(SourceError, match=r"index\.parquet: damaged staging index"):
        stage.folders(ARCHIVE)
    stage.forget(ARCHIVE)
    pq.write_table(pa.table({"folder": ["x"]}), root / ARCHIVE / "index.parquet")
    with pytest.raises(SourceError, match=r"index\.parquet: not a staging index"):
        stage.folders(ARCHIVE)
    assert json.loads((root / ARCHIVE / "stage.json").read_text())["complete"]


class FailingFirstWrite:
    """A real filesystem whose first ``pipe_file`` fails (a write that the network drops)."""

    def __init__(self, fs: Any) -> None:
        self.fs, self.failed = fs, False

    def pipe_file(self, path: str, data: bytes) -> None:
        if not self.failed:
            self.failed = True
            raise ConnectionResetError(f"{path}: connection reset")
        self.fs.pipe_file(path, data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fs, name)


@dataclass(frozen=True)
class FlakyFiles(SourceFiles):
    def fs(self) -> Any:
        return FailingFirstWrite(super().fs())


def test_a_failed_write_is_not_taken_for_a_damaged_archive(tmp_path, monkeypatch):
    """A pack that cannot be written mid-stream raises the write's error; the archive is not
    recorded as truncated."""
    monkeypatch.setattr("pipelines.sources.packs.PACK_BYTES", 1)  # a pack per run
    stage = PackStage(FlakyFiles(store_spec(str(tmp_path / "staging"), environ={})))
    with pytest.raises(ConnectionResetError, match=r"pack-000000\.bin: connection reset"):
        stage.stage(ARCHIVE, iter(members()), "fp-1")
    assert stage.marker(ARCHIVE) is None and not stage.staged(ARCHIVE, "fp-1")
