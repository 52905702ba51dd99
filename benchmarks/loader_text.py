"""The loader's text tasks: rows/s and decodes per delivered row, before and after decode-once.

Usage::

    python benchmarks/loader_text.py [--pairs 2000] [--lake DIR] [--out DIR] [--keep]
        [--cases labels,caption,vqa,refexp,pair] [--batch-size 64] [--workers 0]
        [--modalities s2_10m,s2_20m,s1,labels] [--image-size N] [--max-batches N]
        [--repeat N] [--json] [--json-out FILE]

    # what a VLM reads: the RGB composite at 224 px (uint8) and the text
    python benchmarks/loader_text.py --modalities rgb --image-size 224

What it does:

1. **data**: unless ``--lake`` names a lake, ``lake synth`` writes ``--pairs`` synthetic pairs
   with their BigEarthNet.txt rows (about 21 per pair) and ``lake ingest`` builds a local lake.
2. **epochs**: for each case (``labels``; the text tasks ``caption``, ``vqa``, ``refexp``, one
   sample per row; ``pair``: ``group="pair"`` over the three text tasks, one sample per pair)
   one shuffled epoch through :class:`lake.loader.LakeDataLoader` (same batch size, workers and
   modalities), twice in the same process and on the same lake: **before**, with
   ``ReadOptions(decode_cache_bytes=0)`` (today's behaviour: every row decodes its pair again),
   and **after**, with the per-run decode cache (the default). Reported per run: samples
   (rows or pairs) delivered, seconds, samples/s, pairs decoded (``dataset.decoded_samples``)
   and decodes per delivered sample; per case the speed-up. A short warm-up epoch runs first
   so that neither side pays for a cold page cache. On a shared machine use ``--repeat 3``:
   the sides alternate and each keeps its best epoch.

JSON goes to stdout with ``--json`` (and to ``--json-out``), a markdown table otherwise;
progress to stderr.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RELEASE = "r1"
CASES = ("labels", "caption", "vqa", "refexp", "pair")


def log(msg: str) -> None:
    """Progress on stderr."""
    print(f"[loader_text] {msg}", file=sys.stderr, flush=True)


def build_lake(base: Path, pairs: int, workers: int) -> Path:
    """Synthesize ``pairs`` pairs with text and ingest them into ``base/lake`` (reused if there)."""
    lake_dir = base / "lake"
    if (lake_dir / "lake.json").exists():
        log(f"reusing the lake in {lake_dir}")
        return lake_dir
    src = base / "src"
    py = sys.executable
    t = time.perf_counter()
    subprocess.run(
        [py, "-m", "pipelines.cli", "synth", "--out", str(src), "--patches", str(pairs)],
        check=True,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    log(f"synth: {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    subprocess.run(
        [
            py,
            "-m",
            "pipelines.cli",
            "ingest",
            str(src),
            "--lake",
            str(lake_dir),
            "--release",
            RELEASE,
            "--workers",
            str(max(1, workers)),
            "--json",
        ],
        check=True,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    log(f"ingest: {time.perf_counter() - t:.1f} s")
    return lake_dir


def run_case(lake_dir: Path, case: str, cache: bool, args: argparse.Namespace) -> dict[str, Any]:
    """One epoch of a case; its numbers."""
    from lake.loader import LakeDataLoader, LakeDataset, ReadOptions

    read = ReadOptions() if cache else ReadOptions(decode_cache_bytes=0)
    kw: dict[str, Any] = {"task": case}
    if case == "pair":
        kw = {"tasks": ["caption", "vqa", "refexp"], "group": "pair"}
    t0 = time.perf_counter()
    ds = LakeDataset(
        str(lake_dir),
        modalities=args.modalities,
        image_size=args.image_size,
        dtype=args.dtype,
        seed=0,
        shuffle=True,
        read=read,
        **kw,
    )
    dl = LakeDataLoader(ds, batch_size=args.batch_size, num_workers=args.workers)
    t1 = time.perf_counter()
    delivered = rows = 0
    for k, batch in enumerate(dl):
        delivered += len(batch["patch_id"])
        rows += sum(len(c) for c in batch["conversation"]) if case == "pair" else 0
        if args.max_batches and k + 1 >= args.max_batches:
            break
    seconds = time.perf_counter() - t1
    ds.close()
    decoded = ds.decoded_samples
    out = {
        "case": case,
        "decode_cache": cache,
        "samples": delivered,
        "seconds": round(seconds, 2),
        "open_s": round(t1 - t0, 2),
        "samples_per_s": round(delivered / seconds, 1),
        "decoded_pairs": decoded,
        "decodes_per_sample": round(decoded / max(delivered, 1), 3),
    }
    if case == "pair":
        out["rows"] = rows
        out["rows_per_s"] = round(rows / seconds, 1)
    log(json.dumps(out))
    return out


def markdown(report: dict[str, Any]) -> str:
    """The report as a markdown table."""
    lines = [
        f"{report['pairs']} pairs, batch {report['batch_size']}, {report['workers']} workers, "
        f"modalities {', '.join(report['modalities'])}, image size {report['image_size']} "
        f"({report['machine']})",
        "",
        "| case | samples | before: samples/s | decodes/sample | after: samples/s | "
        "decodes/sample | speed-up |",
        "|---|---|---|---|---|---|---|",
    ]
    for case, r in report["cases"].items():
        b, a = r["before"], r["after"]
        lines.append(
            f"| {case} | {a['samples']:,} | {b['samples_per_s']:,} | {b['decodes_per_sample']} | "
            f"{a['samples_per_s']:,} | {a['decodes_per_sample']} | {r['speedup']}x |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--pairs", type=int, default=2000, help="synthetic pairs (default 2,000)")
    ap.add_argument("--lake", type=Path, default=None, help="an existing lake (no synthesis)")
    ap.add_argument("--out", type=Path, default=None, help="data folder (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the data folder")
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated subset")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers (0: in process)")
    ap.add_argument("--modalities", default="s2_10m,s2_20m,s1,labels")
    ap.add_argument("--image-size", type=int, default=None, help="side of rgb / s1_rgb")
    ap.add_argument(
        "--dtype", choices=("float32", "native"), default="float32", help="LakeDataset(dtype=)"
    )
    ap.add_argument("--max-batches", type=int, default=0, help="stop each epoch after N (0: all)")
    ap.add_argument(
        "--repeat", type=int, default=1, help="epochs per side, alternating; the best is kept"
    )
    ap.add_argument("--json", action="store_true", help="JSON on stdout instead of markdown")
    ap.add_argument("--json-out", type=Path, default=None)
    args = ap.parse_args()
    args.modalities = [m for m in args.modalities.split(",") if m]
    cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        ap.error(f"--cases: unknown {unknown}; use {', '.join(CASES)}")
    base = args.out or Path(tempfile.mkdtemp(prefix="loader-text-"))
    try:
        lake_dir = args.lake or build_lake(base, args.pairs, max(1, args.workers))
        import lake

        rel = lake.open_lake(str(lake_dir)).current
        report: dict[str, Any] = {
            "pairs": len(rel),
            "batch_size": args.batch_size,
            "workers": args.workers,
            "modalities": args.modalities,
            "image_size": args.image_size,
            "dtype": args.dtype,
            "machine": f"{platform.machine()}, {platform.python_version()}",
            "cases": {},
        }
        warm = argparse.Namespace(**{**vars(args), "max_batches": 4})
        run_case(lake_dir, "labels", True, warm)  # page cache and imports warm for both
        for case in cases:
            runs = [(run_case(lake_dir, case, False, args), run_case(lake_dir, case, True, args))]
            runs += [
                (run_case(lake_dir, case, False, args), run_case(lake_dir, case, True, args))
                for _ in range(args.repeat - 1)
            ]
            before = max((b for b, _ in runs), key=lambda r: r["samples_per_s"])
            after = max((a for _, a in runs), key=lambda r: r["samples_per_s"])
            report["cases"][case] = {
                "before": before,
                "after": after,
                "speedup": round(after["samples_per_s"] / before["samples_per_s"], 2),
            }
    finally:
        if args.out is None and not args.keep and args.lake is None:
            shutil.rmtree(base, ignore_errors=True)
    text = json.dumps(report, indent=2)
    if args.json_out:
        args.json_out.write_text(text + "\n")
    print(text if args.json else markdown(report))


if __name__ == "__main__":
    main()
