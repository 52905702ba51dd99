"""``lake pipeline export`` in the VLM formats: the options end to end, and each bad option failing
with one clear line naming it (exit 1, no traceback)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from lake.config import StoreSpec
from lake.vlm.boxes import parse_box_as
from tests.pipelines.cli.test_pipeline_commands import assert_clean_failure, lake, ok_json
from tests.support.lakes import LakeRecipe, TestLake

TRAIN = "SELECT patch_id FROM patches WHERE split = 'train'"


def export_args(target: Path, url: str, *extra: str) -> list[str]:
    return ["pipeline", "export", str(target), "--lake", url, "--sql", TRAIN, *extra]


def test_help_names_the_formats_and_options():
    result = lake("pipeline", "export", "--help")
    assert result.exit_code == 0, result.output
    for word in ("llava", "hf", "--box-format", "--image-size", "--per", "--tasks", "--split"):
        assert word in result.output, word


def test_llava_with_options(jobs_lake, tmp_path):
    target = tmp_path / "llava"
    args = ["--format", "llava", "--box-format", "pixel", "--image-size", "224", "--per", "row"]
    args += ["--tasks", "refexp", "--split", "train", "--image-format", "jpeg", "--with-arrays"]
    doc = ok_json(
        lake(*export_args(target, jobs_lake.root, *args, "--cluster", "threads", "--json"))
    )
    assert doc["format"] == "llava" and doc["conversations"] == doc["annotations"] > 0
    index = json.loads((target / "index.json").read_text())
    assert index["options"] == {
        "image_size": 224,
        "image_format": "jpeg",
        "box_format": "pixel",
        "per": "row",
        "tasks": ["refexp"],
        "with_arrays": True,
    }
    first = json.loads((target / "llava.jsonl").read_text().splitlines()[0])
    assert first["image"].endswith(".jpg") and (target / first["arrays"]["s1"]).is_file()
    box = parse_box_as(first["conversations"][1]["value"], "pixel", size=224)
    assert box is not None and all(0 <= v <= 1 for v in box)
    # The same command again is a finished export; with another size it is refused.
    again = lake(*export_args(target, jobs_lake.root, *args, "--cluster", "sync", "--json"))
    assert ok_json(again)["already_done"]
    other = [a if a != "224" else "448" for a in args]
    assert_clean_failure(
        lake(*export_args(target, jobs_lake.root, *other, "--cluster", "sync")),
        1,
        "options.image_size: 224 there, 448 now",
    )


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--format", "llava", "--box-format", "yolo"], ["--box-format 'yolo'", "qwen"]),
        (["--format", "hf", "--image-size", "0"], ["--image-size", "got 0"]),
        (["--format", "hf", "--image-size", "-8"], ["--image-size", "got -8"]),
        (["--format", "llava", "--image-format", "gif"], ["--image-format 'gif'", "jpeg"]),
        (["--format", "llava", "--per", "image"], ["--per 'image'", "pair, row"]),
        (["--format", "llava", "--tasks", "ocr,vqa"], ["--tasks 'ocr'", "caption, vqa, refexp"]),
        (["--format", "llava", "--tasks", ","], ["--tasks is empty"]),
        (["--format", "llava", "--split", "val"], ["--split 'val'", "validation"]),
        (["--format", "lake", "--box-format", "qwen"], ["lake format copies"]),
        (["--format", "webdataset", "--image-size", "224"], ["--image-size", "llava or hf"]),
        (["--format", "coco"], ["'coco'", "llava, hf"]),
    ],
)
def test_bad_options(jobs_lake, tmp_path, args, words):
    target = tmp_path / "t"
    result = lake(*export_args(target, jobs_lake.root, *args, "--cluster", "sync"))
    assert_clean_failure(result, 1, *words)
    assert not target.exists()


@pytest.fixture(scope="module")
def textless(build_lake: Callable[[LakeRecipe], TestLake]) -> StoreSpec:
    """A small lake ingested without BigEarthNet.txt (the jobs tests' recipe)."""
    return build_lake(LakeRecipe(4, 3, per_shard=4, scan_batch=4, text=False)).spec


def test_a_lake_without_text(textless, tmp_path):
    args = ["pipeline", "export", str(tmp_path / "t"), "--lake", textless.root]
    args += ["--sql", "SELECT patch_id FROM patches", "--cluster", "sync", "--format", "hf"]
    assert_clean_failure(lake(*args), 1, "no BigEarthNet.txt rows", "--format lake or webdataset")
