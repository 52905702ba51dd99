"""A local lake shared with other users: every file it writes follows the umask (issue 11, item 5).

``lake.json``, the manifests, ``quarantine.jsonl``, the STAC JSON, ``items.parquet`` and
``band_stats.parquet`` used to be created 0600 (``mkstemp`` + ``os.replace``), so another user or
a service account could not open a lake on a shared disk. The lake is built through the real
CLI, with umask 022, one pair made bad so that there is a quarantine report, and stats computed.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

#: The uid that reads the lake in the second test (``nobody`` on Debian).
OTHER_UID = 65534


def _lake_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=lambda: os.umask(0o022),
    )


@pytest.fixture(scope="module")
def shared_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("shared")
    source, lake = base / "src", base / "lake"
    done = _lake_cli("synth", "--out", str(source), "--patches", "6", "--seed", "3")
    assert done.returncode == 0, done.stderr
    # One broken pair: a truncated band file (quarantined, the rest ingested).
    victim = sorted(source.rglob("*_B02.tif"))[0]
    victim.write_bytes(victim.read_bytes()[:100])
    done = _lake_cli("ingest", str(source), "--lake", str(lake), "--release", "r1")
    assert done.returncode == 3, done.stdout + done.stderr  # exit 3: input was quarantined
    done = _lake_cli("pipeline", "stats", "--lake", str(lake), "--cluster", "sync")
    assert done.returncode == 0, done.stdout + done.stderr
    return lake


def test_every_file_follows_the_umask(shared_lake: Path) -> None:
    files = [p for p in shared_lake.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    for expected in ("lake.json", "quarantine.jsonl", "items.parquet", "band_stats.parquet"):
        assert expected in names, f"the test lake has no {expected}"
    private = {
        str(p.relative_to(shared_lake)): oct(stat.S_IMODE(p.stat().st_mode))
        for p in files
        if stat.S_IMODE(p.stat().st_mode) & 0o044 != 0o044
    }
    assert private == {}, f"files not readable by group and others under umask 022: {private}"
    closed = [
        str(p.relative_to(shared_lake))
        for p in [shared_lake, *shared_lake.rglob("*")]
        if p.is_dir() and stat.S_IMODE(p.stat().st_mode) & 0o055 != 0o055
    ]
    assert closed == [], f"folders other users cannot enter: {closed}"


def _read_everything(root: Path) -> str:
    """Read every file, then open the lake and decode a pair (what a reader does)."""
    import numpy as np

    import lake

    for path in sorted(root.rglob("*")):
        if path.is_file():
            path.read_bytes()  # a PermissionError names the file
    rel = lake.open_lake(str(root)).release()
    pair = rel.sample(0)
    assert np.asarray(pair["B02"]).shape == (120, 120)
    return f"read {len(rel.sample_index)} pairs"


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="switching uid needs root"
)
def test_another_user_reads_the_lake(shared_lake: Path) -> None:
    # Let the other uid reach the lake (pytest's temporary folders are 0700); the interpreter
    # may live where that uid cannot go (under /root), so the child is a fork of this one.
    for parent in [shared_lake, *shared_lake.parents]:
        if parent == Path("/"):
            break
        parent.chmod(parent.stat().st_mode | 0o005)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: become the other user, read, report, never return to pytest
        code = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(OTHER_UID)
            os.setuid(OTHER_UID)
            message = _read_everything(shared_lake)
            code = 0
        except BaseException as exc:
            message = f"{type(exc).__name__}: {exc}"
        finally:
            os.write(write_end, message.encode()[:4000])
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        message = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, message
    assert message == "read 5 pairs"
