"""kill -9 campaign: an ingest killed at a random moment, then rerun, equals an uninterrupted one.

Each trial starts ``lake ingest`` (the real CLI, a fresh process) into a new folder, SIGKILLs
it after a delay drawn uniformly from the clean run's duration, checks that no half-written
release is visible, reruns it to the end and compares the manifest (every object's path, size
and SHA-256, and the counts) with the clean run's. The figures go to ``docs/security.md``.

    python benchmarks/kill9.py --pairs 48 --trials 20 [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a script: benchmarks/ is then first on sys.path, and benchmarks/pipelines.py would hide
# the pipelines package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def manifest(lake: Path) -> dict[str, Any]:
    root = json.loads((lake / "lake.json").read_text())
    assert root["current"] == "r1", root
    doc = json.loads((lake / "releases" / "r1" / "manifest.json").read_text())
    return {"objects": doc["objects"], "counts": doc["counts"]}


def published(lake: Path) -> bool:
    root = lake / "lake.json"
    return root.exists() and "r1" in json.loads(root.read_text()).get("releases", {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=48, help="pairs in the synthetic source")
    parser.add_argument("--trials", type=int, default=20, help="kill -9 trials")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill times")
    parser.add_argument("--json", action="store_true", help="print a JSON report")
    args = parser.parse_args()

    from pipelines.synth import synthesize
    from tests.support.lakes import ingest_command

    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="kill9-"))
    try:
        source = work / "src"
        synthesize(args.pairs, source, seed=11)
        t0 = time.perf_counter()
        subprocess.run(ingest_command(source, work / "clean"), check=True, capture_output=True)
        clean_seconds = time.perf_counter() - t0
        reference = manifest(work / "clean")
        trials: list[dict[str, Any]] = []
        for i in range(args.trials):
            lake = work / f"t{i}"
            delay = rng.uniform(0.0, clean_seconds)
            proc = subprocess.Popen(
                ingest_command(source, lake), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            try:
                proc.wait(timeout=delay)
                killed = False
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                killed = True
            half_visible = killed and published(lake) and not _complete(lake)
            rerun = subprocess.run(ingest_command(source, lake), capture_output=True, text=True)
            got = manifest(lake) if rerun.returncode == 0 else {"objects": [], "counts": {}}
            identical = got == reference
            differs = _differences(reference, got)
            trials.append(
                {
                    "delay_s": round(delay, 2),
                    "killed": killed,
                    "half_written_visible": half_visible,
                    "rerun_exit": rerun.returncode,
                    "identical": identical,
                    "differs": differs,
                }
            )
            shutil.rmtree(lake, ignore_errors=True)
        report = {
            "pairs": args.pairs,
            "clean_run_s": round(clean_seconds, 1),
            "trials": len(trials),
            "killed_before_the_end": sum(t["killed"] for t in trials),
            "half_written_visible": sum(t["half_written_visible"] for t in trials),
            "identical_reruns": sum(t["identical"] for t in trials),
            "detail": trials,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(
            f"{report['trials']} trials ({report['killed_before_the_end']} killed before the "
            f"end), {report['identical_reruns']} reruns identical to the clean run, "
            f"{report['half_written_visible']} half-written releases visible"
        )
    if report["identical_reruns"] != report["trials"] or report["half_written_visible"]:
        sys.exit(1)


def _differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The objects (and counts) in which two manifests differ, named."""
    mine = {o["path"]: o for o in a["objects"]}
    theirs = {o["path"]: o for o in b["objects"]}
    out = sorted(p for p in mine.keys() | theirs.keys() if mine.get(p) != theirs.get(p))
    return out + (["counts"] if a["counts"] != b["counts"] else [])


def _complete(lake: Path) -> bool:
    """A published release whose manifest lists only objects that exist with their sizes."""
    try:
        doc = json.loads((lake / "releases" / "r1" / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return all(
        (lake / o["path"]).is_file() and (lake / o["path"]).stat().st_size == o["size"]
        for o in doc["objects"]
    )


if __name__ == "__main__":
    main()
