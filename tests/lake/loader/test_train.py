"""``lake train``: average precision, the CLI, and learning on a synthetic lake (local and S3)."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lake.config import StoreSpec
from pipelines.cli import app
from pipelines.local.s3 import EmbeddedS3
from pipelines.showcase.train import average_precision, mean_average_precision, train
from tests.conftest import s3_spec_for
from tests.support.lakes import LakeRecipe, TestLake


def test_average_precision_by_hand():
    # ranks: 1 pos, 2 neg, 3 pos -> precision 1 at recall .5, 2/3 at recall 1
    assert average_precision(np.array([0.9, 0.8, 0.7]), np.array([1, 0, 1])) == pytest.approx(
        0.5 * 1 + 0.5 * 2 / 3
    )
    # tied scores form one threshold: a constant score has AP = prevalence
    assert average_precision(np.full(8, 0.3), np.array([1, 0, 0, 1, 0, 0, 0, 0])) == 0.25
    assert np.isnan(average_precision(np.array([0.1, 0.2]), np.array([0, 0])))
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.4]])
    targets = np.array([[1, 0], [0, 1], [0, 0]])
    m, per = mean_average_precision(scores, targets)
    assert m == 1.0 and per == [1.0, 1.0]


def test_cli_trains_and_reports_json(loader_lake):
    res = CliRunner().invoke(
        app,
        [
            "train",
            "--lake",
            loader_lake.spec.url,
            "--epochs",
            "1",
            "--workers",
            "0",
            "--batch-size",
            "16",
            "--device",
            "cpu",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    assert rep["device"] == "cpu" and rep["train_samples"] > 0
    assert 0 <= rep["val_map"] <= 1 and 0 <= rep["baseline_map"] <= 1
    assert len(rep["per_class_ap"]) == 19


def test_cli_refuses_other_tasks_and_devices(loader_lake):
    res = CliRunner().invoke(app, ["train", "--lake", loader_lake.spec.url, "--task", "vqa"])
    assert res.exit_code == 1 and "lake train trains the multi-label classifier" in res.output
    res = CliRunner().invoke(app, ["train", "--lake", loader_lake.spec.url, "--device", "tpu"])
    assert res.exit_code == 1 and "--device 'tpu'" in res.output


@pytest.fixture(scope="module")
def big_lake(build_lake: Callable[..., TestLake]) -> tuple[StoreSpec, Path]:
    lake = build_lake(LakeRecipe(800, 31, per_shard=64, scan_batch=128, text=False))
    return lake.spec, lake.root


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_training_learns_on_a_local_lake(big_lake):
    rep = train(big_lake[0], epochs=3, workers=2, device="cpu", progress=False, log=print)
    print(rep.to_dict())
    assert rep.val_map > rep.baseline_map + 0.1


@pytest.mark.slow
@pytest.mark.s3
@pytest.mark.timeout(900)
def test_training_learns_on_s3(big_lake, s3_server: EmbeddedS3):
    prefix = f"train-{uuid.uuid4().hex[:8]}"
    shutil.copytree(big_lake[1], s3_server.directory / "lake" / prefix)
    rep = train(s3_spec_for(s3_server, prefix), epochs=3, workers=2, device="cpu", progress=False)
    print(rep.to_dict())
    assert rep.val_map > rep.baseline_map + 0.1
