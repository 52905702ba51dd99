"""The one way the tests build a lake: a synthetic source of real metadata rows, ingested.

Each suite asks for the lake it needs (pairs, seed, source format, shard size) through the
session fixture ``build_lake`` of ``tests/conftest.py``, which builds each distinct lake once
per session and hands the same one to every suite that asks for it. A test that damages or
writes into its lake works on :func:`copy_lake`.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lake.config import StoreSpec, store_spec
from pipelines.cluster.spec import ClusterSpec
from pipelines.jobs.ingest import IngestOptions, ingest
from pipelines.sources.open import open_source
from pipelines.synth import synthesize

#: The release name every test lake is ingested under.
RELEASE = "r1"


@dataclass(frozen=True)
class TestLake:
    """A built test lake.

    Attributes:
        spec: The local lake (no credentials, no environment).
        root: Its folder.
        source: The synthetic source it was ingested from (with ``BigEarthNet.txt.parquet``
            unless built with ``text=False``).
    """

    __test__ = False  # not a test class, despite its name

    spec: StoreSpec
    root: Path
    source: Path


@dataclass(frozen=True)
class LakeRecipe:
    """What a test lake is made of (its identity: one lake per recipe per session).

    Attributes:
        pairs: Pairs drawn from the real metadata.
        seed: Seed of the synthetic source.
        fmt: The source's format.
        per_shard: Pairs per shard.
        scan_batch: Pairs per scan task.
        text: Also write and ingest BigEarthNet.txt rows.
        cluster: Where ingest runs (``sync``: in this process).
    """

    pairs: int
    seed: int
    fmt: Literal["folders", "tar.zst", "lmdb"] = "lmdb"
    per_shard: int = 16
    scan_batch: int = 16
    text: bool = True
    cluster: str = "sync"


def build(recipe: LakeRecipe, base: Path) -> TestLake:
    """Synthesize the recipe's source under ``base/src`` and ingest it into ``base/lake``."""
    synthesize(recipe.pairs, base / "src", fmt=recipe.fmt, seed=recipe.seed, text=recipe.text)
    spec = store_spec(str(base / "lake"), environ={})
    opts = IngestOptions(
        release=RELEASE,
        samples_per_shard=recipe.per_shard,
        scan_batch=recipe.scan_batch,
        progress=False,
    )
    workers = 2 if recipe.cluster == "threads" else None
    ingest(open_source(base / "src"), spec, opts, ClusterSpec(recipe.cluster, workers))
    return TestLake(spec, base / "lake", base / "src")


def copy_lake(lake: TestLake, dest: Path) -> StoreSpec:
    """A private copy of a test lake, for a test that damages it or writes into it."""
    shutil.copytree(lake.root, dest)
    return store_spec(str(dest), environ={})


def upload_lake(lake: TestLake, spec: StoreSpec) -> StoreSpec:
    """Copy a test lake to ``spec`` (an S3 prefix) through the storage API; returns ``spec``."""
    from lake.storage import filesystem

    filesystem(spec).put(f"{lake.root}/", spec.root, recursive=True)
    return spec


def ingest_command(source: Path, lake: Path, per_shard: int = 8) -> list[str]:
    """``lake ingest`` of ``source`` into release ``r1`` of ``lake`` in-process, as a new process.

    Small shards and scan batches, so a kill at a random moment finds work in every phase.
    """
    return [
        sys.executable,
        "-m",
        "pipelines.cli",
        "ingest",
        str(source),
        "--lake",
        str(lake),
        "--release",
        RELEASE,
        "--cluster",
        "sync",
        "--samples-per-shard",
        str(per_shard),
        "--scan-batch",
        str(per_shard),
        "--json",
    ]
