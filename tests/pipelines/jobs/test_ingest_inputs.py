"""Ingest front-door inputs: a relative source path, and a source with no valid pair."""

from __future__ import annotations

from pathlib import Path

import pytest

from lake.config import store_spec
from lake.errors import SourceError
from lake.release import read_root
from pipelines.cluster.spec import ClusterSpec
from pipelines.jobs.ingest import IngestOptions, ingest
from pipelines.sources.open import open_source
from pipelines.synth import synthesize


def test_a_relative_source_path_is_made_absolute(tmp_path, monkeypatch):
    """Workers may run in another folder: the source they get names absolute paths."""
    synthesize(3, tmp_path / "src", fmt="folders", seed=5)
    monkeypatch.chdir(tmp_path)
    source = open_source("src")
    assert Path(source.root).is_absolute() and Path(source.root) == tmp_path / "src"
    monkeypatch.chdir("/")
    spec = store_spec(str(tmp_path / "lake"), environ={})
    rep = ingest(source, spec, IngestOptions(progress=False), ClusterSpec("sync"))
    assert rep.patches == 3 and rep.n_quarantined == 0


def test_a_source_with_no_valid_pair_publishes_nothing(tmp_path):
    out = synthesize(2, tmp_path / "src", fmt="folders", seed=5).out
    for tif in Path(out, "BigEarthNet-S1").rglob("*_VH.tif"):
        tif.unlink()
    spec = store_spec(str(tmp_path / "lake"), environ={})
    with pytest.raises(SourceError) as err:
        ingest(open_source(out), spec, IngestOptions(progress=False), ClusterSpec("sync"))
    message = str(err.value)
    assert "no pair can be ingested" in message and "missing_file 2" in message
    assert "_VH.tif" in message and "nothing was published" in message
    assert read_root(spec)["releases"] == {}
