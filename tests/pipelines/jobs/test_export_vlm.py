"""The VLM exports: llava (conversations + images + arrays), hf (loaded with Hugging Face
``datasets``), webdataset samples with their text rows; every box format against the lake's box
columns; deterministic bytes, resume, options recorded and checked; bad inputs."""

from __future__ import annotations

import gc
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from PIL import Image

from lake.config import StoreSpec, store_spec
from lake.errors import ConfigError, QueryError
from lake.reader import Release, open_lake
from lake.vlm.boxes import BOX_FORMATS, parse_box, parse_box_as, parse_point_as
from lake.vlm.rows import conversation_order, rows_of
from pipelines.cluster.spec import ClusterSpec
from pipelines.jobs import export_llava
from pipelines.jobs.export import export
from pipelines.jobs.export_vlm import VlmOptions, require_text, rgb_image, text_rows
from tests.pipelines.jobs.helpers import THREADS
from tests.support.lakes import LakeRecipe, TestLake

ALL = "SELECT patch_id FROM patches"
TRAIN = "SELECT patch_id FROM patches WHERE split = 'train'"
S2_10M = ("B02", "B03", "B04", "B08")
SYNC = ClusterSpec("sync")


def some_pairs(spec: StoreSpec, n: int) -> str:
    """A query selecting the first ``n`` pairs (by patch id) that have text rows."""
    ids = sorted(
        set(open_lake(spec).current.annotations(columns=["patch_id"])["patch_id"].to_pylist())
    )
    quoted = ", ".join(f"'{i}'" for i in ids[:n])
    return f"SELECT patch_id FROM patches WHERE patch_id IN ({quoted})"


def lake_rgb(rel: Release, patch_id: str, size: int) -> np.ndarray:
    """The reference image: the composite of the pair's s2_10m read straight from the lake."""
    pair = rel.patch(patch_id)
    return rgb_image(np.stack([pair[b] for b in S2_10M]), size)


def pair_rows(rel: Release, patch_id: str, types: tuple[str, ...] | None = None) -> list[Any]:
    table = rel.annotations()
    keep = pc.equal(table["patch_id"], patch_id)
    if types is not None:
        keep = pc.and_(keep, pc.is_in(table["type"], value_set=pa.array(types)))
    return conversation_order(rows_of(table.filter(keep)))


def files_digest(root: Path) -> dict[str, str]:
    """Every file under root (but the marker) -> its sha256."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# ---------------------------------------------------------------- llava


def test_llava_per_pair_conversations_and_images(jobs_lake, tmp_path):
    rel = open_lake(jobs_lake).current
    target = store_spec(str(tmp_path / "llava"), environ={})
    report = export(jobs_lake, target, sql=TRAIN, fmt="llava", per_shard=5, cluster=THREADS)
    root = tmp_path / "llava"
    convs = json.loads((root / "llava.json").read_text())
    lines = [json.loads(x) for x in (root / "llava.jsonl").read_text().splitlines()]
    assert convs == lines and len(convs) == report.conversations == report.patches > 0
    train = set(rel.patches(filter=pc.field("split") == "train")["patch_id"].to_pylist())
    assert {c["patch_id"] for c in convs} <= train
    assert report.annotations == sum(len(c["row_ids"]) for c in convs)
    mcq_seen = False
    for conv in convs:
        pid = conv["id"]
        assert conv["patch_id"] == pid and conv["image"] == f"images/{pid}.png"
        rows = pair_rows(rel, pid)
        turns = conv["conversations"]
        assert [t["from"] for t in turns] == ["human", "gpt"] * len(rows)
        assert conv["row_ids"] == [r["id"] for r in rows]
        assert turns[0]["value"] == "<image>\n" + rows[0]["input"]
        assert all("<image>" not in t["value"] for t in turns[1:])
        for row, human, gpt in zip(rows, turns[::2], turns[1::2], strict=True):
            assert human["value"].removeprefix("<image>\n") == row["input"]
            assert gpt["value"] == row["output"]
            if row["type"] == "mcq":
                mcq_seen = True
                assert all(
                    f"{'ABCD'[i]}. {o}" in human["value"] for i, o in enumerate(row["options"])
                )
    assert mcq_seen
    # The image is the lake's composite at 336 px, byte-identical pixels.
    for conv in convs[:3]:
        with Image.open(root / conv["image"]) as im:
            assert im.format == "PNG" and im.size == (336, 336) and im.mode == "RGB"
            pixels = np.asarray(im).transpose(2, 0, 1)
        np.testing.assert_array_equal(pixels, lake_rgb(rel, conv["id"], 336))
    index = json.loads((root / "index.json").read_text())
    assert index["pairs"] == report.patches and index["options"]["image_size"] == 336
    # Deterministic: a fresh export writes the same bytes; a rerun does nothing.
    again = store_spec(str(tmp_path / "again"), environ={})
    export(jobs_lake, again, sql=TRAIN, fmt="llava", per_shard=5, cluster=SYNC)
    first, second = files_digest(root), files_digest(tmp_path / "again")
    assert first.keys() == second.keys() and first == second
    assert export(
        jobs_lake, target, sql=TRAIN, fmt="llava", per_shard=5, cluster=THREADS
    ).already_done


def test_llava_per_row_jpeg_with_arrays(jobs_lake, tmp_path):
    rel = open_lake(jobs_lake).current
    sql = some_pairs(jobs_lake, 4)
    target = store_spec(str(tmp_path / "rows"), environ={})
    opts = VlmOptions(
        image_size=224, image_format="jpeg", per="row", tasks=("refexp",), with_arrays=True
    )
    report = export(jobs_lake, target, sql=sql, fmt="llava", vlm=opts, per_shard=3, cluster=THREADS)
    root = tmp_path / "rows"
    convs = json.loads((root / "llava.json").read_text())
    assert len(convs) == report.conversations == report.annotations > 0
    for conv in convs:
        pid = conv["patch_id"]
        (row,) = [r for r in pair_rows(rel, pid) if r["id"] == int(conv["id"])]
        assert row["type"] == "bounding box" and conv["row_ids"] == [row["id"]]
        assert [t["value"] for t in conv["conversations"]] == [
            "<image>\n" + row["input"],
            row["output"],
        ]
        assert conv["image"] == f"images/{pid}.jpg"
        with Image.open(root / conv["image"]) as im:
            assert im.format == "JPEG" and im.size == (224, 224)
        pair = rel.patch(pid)
        s2 = np.load(root / conv["arrays"]["s2_10m"])
        np.testing.assert_array_equal(s2, np.stack([pair[b] for b in S2_10M]))
        s1 = np.load(root / conv["arrays"]["s1"])
        assert s1.dtype == np.float32 and s1.shape == (2, 120, 120)
        np.testing.assert_array_equal(s1[1], pair["VH"])
        assert np.load(root / conv["arrays"]["s2_60m"]).shape == (2, 20, 20)


@pytest.mark.parametrize("fmt", BOX_FORMATS)
def test_box_formats_against_the_box_columns(jobs_lake, tmp_path, fmt):
    """Every refexp answer parses back, in its format, to the lake's box within quantisation;
    every point of an input to the lake's ``points`` column."""
    rel = open_lake(jobs_lake).current
    size = 224
    target = store_spec(str(tmp_path / fmt), environ={})
    opts = VlmOptions(image_size=size, per="row", tasks=("refexp",), box_format=fmt)
    export(jobs_lake, target, sql=some_pairs(jobs_lake, 6), fmt="llava", vlm=opts, cluster=THREADS)
    convs = json.loads((tmp_path / fmt / "llava.json").read_text())
    table = rel.annotations()
    by_id = {r["ID"]: r for r in table.to_pylist()}
    tol = {
        "unit": 1e-6,
        "pixel": 0.5 / size,
        "qwen": 0.5e-3,
        "internvl": 0.5e-3,
        "geochat": 0.5e-2,
    }[fmt]
    points = 0
    for conv in convs:
        src = by_id[int(conv["id"])]
        human, gpt = (t["value"] for t in conv["conversations"])
        box = parse_box_as(gpt, fmt, size=size)
        want = [src[f"box_{c}"] for c in ("x1", "y1", "x2", "y2")]
        assert box is not None, gpt
        np.testing.assert_allclose(box, want, atol=tol + 1e-6, err_msg=gpt)
        if fmt != "unit":
            assert parse_box(src["output"]) is not None and gpt != src["output"]
        for p in src["points"] or []:
            got = parse_point_as(human, fmt, size=size)
            assert got is not None, human
            np.testing.assert_allclose(got, (p["x"], p["y"]), atol=tol + 1e-6, err_msg=human)
            points += 1
    assert len(convs) > 0 and points > 0


# ---------------------------------------------------------------- hf


@pytest.fixture
def hf_offline(monkeypatch, tmp_path):
    """Hugging Face ``datasets`` offline, caching under tmp_path, without progress bars."""
    for name in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    import datasets

    datasets.disable_progress_bars()
    yield datasets
    gc.collect()


def test_hf_per_row_loads_with_datasets(jobs_lake, tmp_path, hf_offline):
    datasets = hf_offline
    rel = open_lake(jobs_lake).current
    target = store_spec(str(tmp_path / "hf"), environ={})
    opts = VlmOptions(per="row", box_format="qwen")
    report = export(jobs_lake, target, sql=ALL, fmt="hf", vlm=opts, per_shard=16, cluster=THREADS)
    loaded = datasets.load_dataset(str(tmp_path / "hf"), cache_dir=str(tmp_path / "cache"))
    table = rel.annotations()
    want = table.group_by("split").aggregate([("ID", "count")]).to_pylist()
    assert {d["split"]: d["ID_count"] for d in want} == {k: len(v) for k, v in loaded.items()}
    assert report.annotations == table.num_rows == sum(len(v) for v in loaded.values())
    split = "train"
    ds = loaded[split]
    assert isinstance(ds.features["image"], datasets.Image)
    by_id = {r["ID"]: r for r in table.to_pylist()}
    for i in (0, len(ds) // 2, len(ds) - 1):
        rec = ds[i]
        src = by_id[rec["id"]]
        assert rec["patch_id"] == src["patch_id"] and rec["split"] == src["split"] == split
        assert rec["type"] == src["type"] and rec["category"] == src["category"]
        assert rec["country"] == src["country"] and rec["season"] == src["season"]
        assert rec["options"] == (src["options"] or [])
        if src["type"] == "bounding box":
            box = parse_box_as(rec["output"], "qwen")
            np.testing.assert_allclose(box, rec["box"], atol=0.5e-3 + 1e-6)
        else:
            assert rec["box"] is None and rec["output"] == src["output"]
        image = rec["image"]
        assert image.size == (336, 336)
        np.testing.assert_array_equal(
            np.asarray(image.convert("RGB")).transpose(2, 0, 1),
            lake_rgb(rel, rec["patch_id"], 336),
        )
    # The plain parquet builder reads one split's files too.
    one = datasets.load_dataset(
        "parquet",
        data_files={split: str(tmp_path / "hf" / "data" / f"{split}-*.parquet")},
        cache_dir=str(tmp_path / "cache2"),
    )[split]
    assert len(one) == len(ds) and isinstance(one.features["image"], datasets.Image)
    del loaded, ds, one


def test_hf_per_pair_has_one_image_per_pair(jobs_lake, tmp_path, hf_offline):
    datasets = hf_offline
    rel = open_lake(jobs_lake).current
    target = store_spec(str(tmp_path / "hf"), environ={})
    report = export(jobs_lake, target, sql=TRAIN, fmt="hf", per_shard=7, cluster=THREADS)
    ds = datasets.load_dataset(str(tmp_path / "hf"), cache_dir=str(tmp_path / "cache"))["train"]
    assert len(ds) == report.patches == report.conversations
    rec = ds[0]
    want = pair_rows(rel, rec["id"])
    assert [r["id"] for r in rec["rows"]] == [r["id"] for r in want]
    assert [r["input"] for r in rec["rows"]] == [r["input"] for r in want]
    assert rec["labels"] == rel.patch(rec["id"])["metadata"]["labels"]
    del ds


# ---------------------------------------------------------------- webdataset


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_webdataset_samples_carry_their_text_rows(jobs_lake, tmp_path):
    import webdataset as wds

    rel = open_lake(jobs_lake).current
    target = store_spec(str(tmp_path / "wds"), environ={})
    opts = VlmOptions(tasks=("vqa", "caption"), box_format="geochat")
    report = export(
        jobs_lake, target, sql=TRAIN, fmt="webdataset", vlm=opts, per_shard=6, cluster=THREADS
    )
    index = json.loads((tmp_path / "wds" / "index.json").read_text())
    urls = [str(tmp_path / "wds" / s["name"]) for s in index["shards"]]
    seen = {s["__key__"]: s["json"] for s in wds.WebDataset(urls, shardshuffle=False).decode()}
    gc.collect()
    assert len(seen) == report.patches
    total = 0
    for pid, meta in seen.items():
        want = pair_rows(rel, pid, ("binary", "mcq", "captioning"))
        got = meta["rows"]
        assert [r["id"] for r in got] == [r["id"] for r in want]
        assert [r["output"] for r in got] == [r["output"] for r in want]
        assert all(r["type"] != "bounding box" for r in got)
        total += len(got)
    assert total == report.annotations > 0


# ---------------------------------------------------------------- resume, options, bad inputs


def test_a_failed_llava_export_resumes_to_the_same_bytes(jobs_lake, tmp_path, monkeypatch):
    sql = some_pairs(jobs_lake, 9)
    clean = store_spec(str(tmp_path / "clean"), environ={})
    export(jobs_lake, clean, sql=sql, fmt="llava", per_shard=3, cluster=SYNC)
    target = store_spec(str(tmp_path / "t"), environ={})
    real = export_llava.write_llava_part

    def dies_after_the_first(job: Any, *args: Any) -> dict[str, Any]:
        if job.part > 0:
            raise OSError("killed")
        return real(job, *args)

    monkeypatch.setattr(export_llava, "write_llava_part", dies_after_the_first)
    with pytest.raises(OSError, match="killed"):
        export(jobs_lake, target, sql=sql, fmt="llava", per_shard=3, cluster=SYNC)
    assert not (tmp_path / "t" / "index.json").exists()
    monkeypatch.setattr(export_llava, "write_llava_part", real)
    again = export(jobs_lake, target, sql=sql, fmt="llava", per_shard=3, cluster=SYNC)
    assert again.resumed == 1 and again.shards == 3
    assert files_digest(tmp_path / "t") == files_digest(tmp_path / "clean")
    # Other options on the same target are refused, naming what changed.
    with pytest.raises(
        ConfigError, match=r"not empty.*other options.*options.image_size: 336 there, 224 now"
    ):
        export(jobs_lake, target, sql=sql, fmt="llava", vlm=VlmOptions(image_size=224), per_shard=3)
    with pytest.raises(ConfigError, match=r"other options.*format: 'llava' there, 'hf' now"):
        export(jobs_lake, target, sql=sql, fmt="hf", per_shard=3)


@pytest.fixture(scope="module")
def textless(build_lake: Callable[[LakeRecipe], TestLake]) -> StoreSpec:
    """A small lake ingested without BigEarthNet.txt."""
    return build_lake(LakeRecipe(4, 3, per_shard=4, scan_batch=4, text=False)).spec


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        (
            {"fmt": "llava", "vlm": VlmOptions(box_format="yolo")},
            ConfigError,
            "--box-format 'yolo'",
        ),  # type: ignore[arg-type]
        ({"fmt": "hf", "vlm": VlmOptions(image_size=0)}, ConfigError, "--image-size.*got 0"),
        ({"fmt": "hf", "vlm": VlmOptions(image_size=-3)}, ConfigError, "--image-size.*got -3"),
        (
            {"fmt": "llava", "vlm": VlmOptions(image_format="gif")},
            ConfigError,
            "--image-format 'gif'",
        ),  # type: ignore[arg-type]
        ({"fmt": "llava", "vlm": VlmOptions(per="image")}, ConfigError, "--per 'image'"),  # type: ignore[arg-type]
        ({"fmt": "llava", "vlm": VlmOptions(tasks=())}, ConfigError, "--tasks is empty"),
        ({"fmt": "llava", "vlm": VlmOptions(tasks=("ocr",))}, ConfigError, "--tasks 'ocr'"),  # type: ignore[arg-type]
        ({"fmt": "llava", "split": "val"}, ConfigError, "--split 'val'.*validation"),
        ({"fmt": "lake", "vlm": VlmOptions(box_format="qwen")}, ConfigError, "lake format copies"),
        ({"fmt": "webdataset", "vlm": VlmOptions(image_size=224)}, ConfigError, "--image-size do"),
        ({"fmt": "parquet"}, ConfigError, "format 'parquet'"),
        ({"fmt": "hf", "vlm": VlmOptions(with_arrays=True)}, ConfigError, "llava format only"),
        (
            {"fmt": "llava", "split": "bench", "sql": TRAIN},
            QueryError,
            "none of the .* split 'bench'",
        ),
    ],
)
def test_bad_inputs(jobs_lake, tmp_path, kwargs, error, words):
    target = store_spec(str(tmp_path / "t"), environ={})
    args = {"sql": ALL, **kwargs}
    with pytest.raises(error, match=words):
        export(jobs_lake, target, cluster=SYNC, **args)
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("fmt", ["llava", "hf"])
def test_a_lake_without_text_is_refused(textless, tmp_path, fmt):
    target = store_spec(str(tmp_path / "t"), environ={})
    with pytest.raises(QueryError, match=r"no BigEarthNet.txt rows.*--format lake or webdataset"):
        export(textless, target, sql=ALL, fmt=fmt, cluster=SYNC)


def test_pairs_without_rows_of_the_tasks_are_refused(jobs_lake):
    rel = open_lake(jobs_lake).current
    none = text_rows(rel, ["no-such-pair"], ("refexp",), "test")
    assert none.num_rows == 0
    with pytest.raises(QueryError, match="no text rows of the tasks refexp of split 'test'"):
        require_text(none, rel, "llava", ("refexp",), "test")


def test_the_bench_split_as_hf_and_llava(build_lake, tmp_path, hf_offline):
    """The eval tests' lake has one bench pair: ``split="bench"`` exports it with its bench rows
    only, and ``datasets`` sees a ``bench`` split."""
    from tests.lake.eval.helpers import LAKE as EVAL_LAKE

    spec = build_lake(EVAL_LAKE).spec
    rel = open_lake(spec).current
    bench = rel.annotations(split="bench", columns=["ID", "patch_id"])
    assert bench.num_rows > 0
    target = store_spec(str(tmp_path / "hf"), environ={})
    report = export(spec, target, sql=ALL, split="bench", fmt="hf", vlm=VlmOptions(per="row"))
    assert report.patches == len(set(bench["patch_id"].to_pylist()))
    loaded = hf_offline.load_dataset(str(tmp_path / "hf"), cache_dir=str(tmp_path / "cache"))
    assert list(loaded) == ["bench"]
    assert sorted(loaded["bench"]["id"]) == sorted(bench["ID"].to_pylist())
    del loaded
    llava = store_spec(str(tmp_path / "llava"), environ={})
    export(spec, llava, sql=ALL, split="bench", fmt="llava", cluster=SYNC)
    convs = json.loads((tmp_path / "llava" / "llava.json").read_text())
    assert sorted(i for c in convs for i in c["row_ids"]) == sorted(bench["ID"].to_pylist())


@pytest.mark.s3
def test_llava_and_hf_to_s3(s3_server, jobs_lake):
    from lake.storage import filesystem
    from tests.conftest import s3_spec_for

    sql = some_pairs(jobs_lake, 3)
    for fmt in ("llava", "hf"):
        target = s3_spec_for(s3_server)
        report = export(jobs_lake, target, sql=sql, fmt=fmt, per_shard=2, cluster=THREADS)
        assert report.patches == 3 and report.target.startswith("s3://")
        fs = filesystem(target)
        index = json.loads(fs.cat_file(target.path("index.json")))
        assert index["pairs"] == 3 and not fs.exists(target.path("_export"))
        for name in report.files:
            assert fs.exists(target.path(name)), name
        if fmt == "llava":
            convs = json.loads(fs.cat_file(target.path("llava.json")))
            assert len(convs) == 3 and all(fs.exists(target.path(c["image"])) for c in convs)
