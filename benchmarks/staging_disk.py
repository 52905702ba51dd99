"""Disk taken by staging ``.tar.zst`` archives (``TarZstSource.prepare``), per pair and per archive.

Usage: ``python benchmarks/staging_disk.py [--pairs 200] [--out DIR] [--keep]``

Synthesizes a ``tar.zst`` source of ``--pairs`` pairs (their GeoTIFFs are encoded exactly as the
released ones: uncompressed S2 and S1, deflated maps), stages it into a fresh LMDB, and reports:

* ``member_bytes_per_pair``: the members' own bytes, per archive (what extraction would write);
* ``lmdb_bytes_per_pair``: the members' LMDB footprint (large values take whole 4 KiB overflow
  pages, small ones sit in leaf pages), per archive;
* ``data_mdb_bytes_per_pair``: the whole ``data.mdb`` file (tree pages included), the figure
  ``pipelines.sources.tarzst.STAGING_BYTES_PER_PAIR`` records;
* ``sample_bytes``: the real sample's files (``shared/data/bigearthnet-v2/sample``), per kind,
  to show that the synthetic members have the real sizes;
* ``full_set_bytes``: ``data_mdb_bytes_per_pair`` times the 549,488 pairs of the official set.

JSON goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lmdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lake.names import MAPS_ROOT, S1_ROOT, S2_ROOT
from pipelines.sources.open import open_source
from pipelines.sources.tarzst import FULL_SET_PAIRS
from pipelines.synth import synthesize

SAMPLE = Path(__file__).resolve().parents[1] / "shared/data/bigearthnet-v2/sample"
_PAGE = 4096


def _footprint(key: int, value: int) -> int:
    """LMDB bytes of one entry: small ones sit in a leaf page, large ones get overflow pages."""
    if key + value + 8 <= _PAGE // 2:
        return key + value + 8 + 2  # node header and its pointer in the leaf page
    return math.ceil((value + 16) / _PAGE) * _PAGE


def _sample_bytes() -> dict[str, int]:
    root = SAMPLE if SAMPLE.is_dir() else Path("/work/shared/data/bigearthnet-v2/sample")
    return {
        top: sum(p.stat().st_size for p in (root / top).rglob("*.tif"))
        for top in (S2_ROOT, S1_ROOT, MAPS_ROOT)
        if (root / top).is_dir()
    }


def measure(pairs: int, out: Path) -> dict[str, Any]:
    """Synthesize, stage and measure one source of ``pairs`` pairs under ``out``."""
    src, staging = out / "src", out / "staging"
    synthesize(pairs, src, fmt="tar.zst", seed=1, text=False)
    source = open_source(src, staging_dir=staging)
    started = time.perf_counter()
    source.prepare()
    seconds = time.perf_counter() - started
    member: dict[str, int] = {}
    footprint: dict[str, int] = {}
    env = lmdb.open(str(staging), readonly=True, lock=False)
    try:
        with env.begin() as txn:
            for key, value in txn.cursor():
                top = bytes(key).split(b"/", 1)[0].decode(errors="replace")
                if top not in (S2_ROOT, S1_ROOT, MAPS_ROOT):
                    continue  # the staged-archive markers
                member[top] = member.get(top, 0) + len(value)
                footprint[top] = footprint.get(top, 0) + _footprint(len(key), len(value))
    finally:
        env.close()
    data_mdb = os.path.getsize(staging / "data.mdb")
    archives = {p.name: p.stat().st_size for p in sorted(src.glob("*.tar.zst"))}
    return {
        "pairs": pairs,
        "archive_bytes": archives,
        "member_bytes_per_pair": {k: round(v / pairs) for k, v in sorted(member.items())},
        "lmdb_bytes_per_pair": {k: round(v / pairs) for k, v in sorted(footprint.items())},
        "data_mdb_bytes_per_pair": round(data_mdb / pairs),
        "sample_bytes": _sample_bytes(),
        "full_set_bytes": round(data_mdb / pairs * FULL_SET_PAIRS),
        "stage_seconds": round(seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-staging-"))
    try:
        print(json.dumps(measure(args.pairs, out), indent=1))
    finally:
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
