"""``make demo`` in miniature: endpoint up, synthetic source, ingest to S3, counts, a PNG, and
nothing left running afterwards."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import psutil
import pytest
from PIL import Image

from lake.render import PANEL
from pipelines.showcase.demo import main

THREADS = ["--cluster", "threads"]


def rclone_serving(folder: Path) -> list[psutil.Process]:
    """The live rclone processes serving something under ``folder``."""
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(p.info["cmdline"] or [])
        alive = p.info["status"] != psutil.STATUS_ZOMBIE
        if alive and "rclone" in cmdline and str(folder) in cmdline:
            found.append(p)
    return found


@pytest.mark.s3
def test_demo_builds_a_lake_on_s3_and_cleans_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo-output"
    status = main(["--patches", "30", "--format", "tar.zst", "--out", str(out), *THREADS])
    printed = capsys.readouterr().out

    assert status == 0, printed
    assert "source: 30 pairs" in printed
    assert re.search(r"lake: 30 pairs, \d+ annotation rows, [\d.]+ MB in s3://lake/demo", printed)
    assert '"patches_per_second"' in printed
    with Image.open(out / "patch.png") as im:
        assert im.format == "PNG" and im.width >= 3 * PANEL

    endpoint = re.search(r"S3 endpoint http://127\.0\.0\.1:(\d+)", printed)
    assert endpoint, printed
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", int(endpoint[1]))) != 0, "the endpoint still answers"
    assert rclone_serving(tmp_path) == []


def test_demo_refuses_to_empty_a_folder_it_did_not_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    precious = tmp_path / "thesis.tex"
    precious.write_text("years of work")
    assert main(["--patches", "2", "--out", str(tmp_path), *THREADS]) == 1
    assert "thesis.tex" in capsys.readouterr().err
    assert precious.read_text() == "years of work"


def test_demo_reports_bad_arguments_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--patches", "2", "--format", "zip", "--out", str(tmp_path / "d")]) == 1
    assert "'zip'" in capsys.readouterr().err
    assert rclone_serving(tmp_path) == []
