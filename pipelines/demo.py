"""``make demo``: from nothing to a lake on a local S3 endpoint, in a few minutes.

Starts the embedded S3 endpoint on 127.0.0.1, writes a synthetic BigEarthNet source of a few
thousand pairs, ingests it into ``s3://lake/demo``, prints what was built, renders one pair to
``demo-output/patch.png`` and stops the endpoint.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from lake.config import store_spec
from lake.reader import open_lake
from lake.render import render_patch
from pipelines.cluster import ClusterSpec
from pipelines.embedded_s3 import EmbeddedS3
from pipelines.ingest import IngestOptions, ingest
from pipelines.sources.open import open_source
from pipelines.synth import synthesize


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.demo", description=__doc__)
    parser.add_argument(
        "--patches", type=int, default=2000, help="pairs to synthesize (default 2000)"
    )
    parser.add_argument(
        "--format", default="tar.zst", help="source format: folders | tar.zst | lmdb"
    )
    parser.add_argument("--out", type=Path, default=Path("demo-output"), help="working folder")
    parser.add_argument("--cluster", default="local", help="local | threads | sync | tcp://...")
    args = parser.parse_args(argv)

    out: Path = args.out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    with EmbeddedS3(out / "s3", buckets=["lake"]) as s3:
        e = s3.endpoint
        print(f"S3 endpoint {e.endpoint_url} serving {s3.directory}")
        t0 = time.perf_counter()
        rep = synthesize(args.patches, out / "source", fmt=args.format, seed=0, progress=True)
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
            IngestOptions(release="v1"),
            ClusterSpec(args.cluster),
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
