"""``make demo``: from nothing to a lake on a local S3 endpoint, in a few minutes.

Starts the embedded S3 endpoint on 127.0.0.1, writes a synthetic BigEarthNet source of a few
thousand pairs, ingests it into ``s3://lake/demo``, prints what was built, renders one pair to
``demo-output/patch.png`` and stops the endpoint.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from lake.config import store_spec
from lake.errors import LakeError
from lake.reader import open_lake
from lake.render import render_patch
from pipelines.cluster.spec import ClusterSpec
from pipelines.jobs.ingest import IngestOptions, ingest
from pipelines.local.processes import signals_interrupt
from pipelines.local.s3 import EmbeddedS3
from pipelines.sources.open import open_source
from pipelines.synth import synthesize

#: Progress bars only on a terminal (not in CI logs or a captured run).
PROGRESS = sys.stderr.isatty()
#: What a demo run leaves in its folder; a folder holding anything else is not removed.
DEMO_ENTRIES = ("s3", "source", "patch.png")


def _fresh_folder(out: Path) -> None:
    """Empty ``out`` if it is a previous demo's folder; refuse to touch anything else."""
    if out.exists():
        foreign = [
            p.name
            for p in out.iterdir()
            if p.name not in DEMO_ENTRIES and not p.name.startswith(".rclone-")
        ]
        if foreign:
            raise LakeError(
                f"--out {out}: the folder holds {sorted(foreign)[:5]}, which a demo did not "
                "write; choose a new or empty folder (the demo empties it first)"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True)


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.showcase.demo", description=__doc__)
    parser.add_argument(
        "--patches", type=int, default=2000, help="pairs to synthesize (default 2000)"
    )
    parser.add_argument(
        "--format", default="tar.zst", help="source format: folders | tar.zst | lmdb"
    )
    parser.add_argument("--out", type=Path, default=Path("demo-output"), help="working folder")
    parser.add_argument("--cluster", default="local", help="local | threads | sync | tcp://...")
    args = parser.parse_args(argv)
    try:
        with signals_interrupt():  # a kill stops the endpoint too, as Ctrl-C does
            return _run(args.out, args.patches, args.format, args.cluster)
    except LakeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _run(out: Path, patches: int, fmt: str, cluster: str) -> int:
    _fresh_folder(out)
    with EmbeddedS3(out / "s3", buckets=["lake"]) as s3:
        e = s3.endpoint
        print(f"S3 endpoint {e.endpoint_url} serving {s3.directory}")
        t0 = time.perf_counter()
        rep = synthesize(patches, out / "source", fmt=fmt, seed=0, progress=PROGRESS)
        print(
            f"source: {rep.n_patches} pairs, {rep.n_text_rows} text rows, "
            f"{rep.bytes_written / 1e6:.1f} MB ({rep.fmt}) in {rep.seconds:.1f} s"
        )
        spec = store_spec(
            "s3://lake/demo",
            endpoint_url=e.endpoint_url,
            key=e.key,
            secret=e.secret,
            region=e.region,
            environ={},
        )
        report = ingest(
            open_source(out / "source"),
            spec,
            IngestOptions(release="v1", progress=PROGRESS),
            ClusterSpec(cluster),
        )
        print("ingest:", json.dumps(report.to_dict(), indent=1))
        release = open_lake(spec).current
        first = release.patches(columns=["patch_id"]).column("patch_id")[0].as_py()
        png = render_patch(release.patch(first), out / "patch.png")
        print(
            f"lake: {len(release)} pairs, {report.annotations} annotation rows, "
            f"{report.bytes / 1e6:.1f} MB in s3://lake/demo; rendered {first} to {png}"
        )
        print(f"demo finished in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
