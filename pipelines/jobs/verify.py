"""Verify a release: re-read every object, check it against the manifest, check the counts.

Each task re-reads a batch of the manifest's objects and compares their size and sha256 with the
manifest; the driver then checks the patch counts (the manifest's ``counts.patches`` against the
Zarr arrays' first dimension, the ``patches`` table's rows and its ``sample_index`` range, and the
annotation rows) and lists objects under the release's prefixes that the manifest does not name.
The job only reads, so rerunning it (after a failure, or on a cluster that lost a worker) is safe.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from lake.bigearthnet import ARRAYS
from lake.config import StoreSpec
from lake.errors import LakeError
from lake.layout import release_prefixes
from lake.patchstore import array_of
from lake.reader import Lake, Release
from lake.release import list_objects
from lake.storage import filesystem, sha256_bytes
from pipelines.cluster.runner import Runner
from pipelines.cluster.spec import ClusterSpec

DEFAULT_CLUSTER = ClusterSpec()
#: Objects per task.
BATCH = 64


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a release.

    Attributes:
        path: The object (relative to the lake root), or what was counted.
        kind: ``missing``, ``size``, ``checksum``, ``unreadable`` or ``count``.
        detail: What was expected and what was found.
    """

    path: str
    kind: str
    detail: str


@dataclass
class VerifyReport:
    """The outcome of verifying a release.

    Attributes:
        release: The release.
        lake: The lake's URL.
        objects: Objects the manifest lists (all re-read).
        bytes: Bytes re-read.
        patches: The manifest's pair count.
        problems: Everything missing, corrupt or inconsistent (empty: the release is intact).
        unlisted: Objects under the release's prefixes that the manifest does not name
            (not an error: e.g. left by an interrupted job).
        seconds: Wall time.
        dashboard: The Dask dashboard link, when there was one.
    """

    release: str
    lake: str
    objects: int = 0
    bytes: int = 0
    patches: int = 0
    problems: list[Problem] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)
    seconds: float = 0.0
    dashboard: str | None = None

    @property
    def ok(self) -> bool:
        """Whether nothing is missing, corrupt or inconsistent."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        d = asdict(self)
        d["ok"] = self.ok
        return d

    def text(self) -> str:
        """The report as lines a person reads: one line per bad object."""
        head = (
            f"release {self.release} of {self.lake}: {self.objects} objects "
            f"({self.bytes / 1e6:.1f} MB), {self.patches} pairs re-read in {self.seconds:.1f} s: "
        )
        if self.ok:
            lines = [head + "OK"]
        else:
            lines = [head + f"{len(self.problems)} problem(s)"]
            lines += [f"  {p.kind:<10} {p.path}: {p.detail}" for p in self.problems]
        if self.unlisted:
            lines.append(
                f"  ({len(self.unlisted)} object(s) not in the manifest, e.g. {self.unlisted[0]})"
            )
        return "\n".join(lines)


# ---------------------------------------------------------------- tasks (run on workers)


def check_objects(batch: tuple[tuple[str, int, str], ...], spec: StoreSpec) -> dict[str, Any]:
    """Re-read objects ``(path, size, sha256)``; return the bytes read and the problems."""
    fs = filesystem(spec)
    problems: list[dict[str, str]] = []
    read = 0
    for path, size, sha in batch:
        try:
            data = fs.cat_file(spec.path(path))
        except FileNotFoundError:
            problems.append(asdict(Problem(path, "missing", "listed in the manifest, not found")))
            continue
        except OSError as exc:
            problems.append(asdict(Problem(path, "unreadable", f"{type(exc).__name__}: {exc}")))
            continue
        read += len(data)
        if len(data) != size:
            problems.append(
                asdict(Problem(path, "size", f"manifest {size} bytes, found {len(data)}"))
            )
            continue
        got = sha256_bytes(data)
        if got != sha:
            problems.append(
                asdict(
                    Problem(path, "checksum", f"manifest sha256 {sha[:16]}.., found {got[:16]}..")
                )
            )
    return {"bytes": read, "problems": problems}


# ---------------------------------------------------------------- the driver


def check_counts(rel: Release) -> list[Problem]:
    """The manifest's counts against the Zarr arrays and the tables."""
    n = int(rel.manifest["counts"]["patches"])
    out: list[Problem] = []
    try:
        group = rel.group
        for a in (*ARRAYS, None):
            name = a.name if a is not None else "patch_id"
            got = array_of(group, name).shape[0]
            if got != n:
                out.append(
                    Problem(
                        f"{rel.group.store_path}/{name}",
                        "count",
                        f"manifest {n} pairs, array has {got}",
                    )
                )
    except (LakeError, OSError, ValueError, KeyError) as exc:
        out.append(
            Problem("patches group", "count", f"cannot open it: {type(exc).__name__}: {exc}")
        )
    try:
        t = rel.patches(columns=["sample_index"])
        index = sorted(t["sample_index"].to_pylist())
        if t.num_rows != n or index != list(range(n)):
            out.append(
                Problem(
                    "patches table",
                    "count",
                    f"manifest {n} pairs, table has {t.num_rows} rows"
                    + ("" if t.num_rows != n else " with sample_index not 0..n-1"),
                )
            )
    except (LakeError, OSError, ValueError) as exc:
        out.append(
            Problem("patches table", "count", f"cannot read it: {type(exc).__name__}: {exc}")
        )
    want = int(rel.manifest["counts"].get("annotations", {}).get("total", 0) or 0)
    if want:
        try:
            got = rel.annotations(columns=["ID"]).num_rows
            if got != want:
                out.append(
                    Problem("annotations table", "count", f"manifest {want} rows, table has {got}")
                )
        except (LakeError, OSError, ValueError) as exc:
            out.append(
                Problem(
                    "annotations table", "count", f"cannot read it: {type(exc).__name__}: {exc}"
                )
            )
    return out


def verify_release(
    spec: StoreSpec,
    release: str | None = None,
    *,
    cluster: ClusterSpec = DEFAULT_CLUSTER,
    progress: bool = False,
    batch: int = BATCH,
    on_start: Callable[[Runner], None] | None = None,
) -> VerifyReport:
    """Re-read every object of a release and check it against the manifest and the counts.

    Args:
        spec: The lake.
        release: The release (the current one when None).
        cluster: Where the tasks run.
        progress: Show a progress bar.
        batch: Objects per task.
        on_start: Called with the runner once the cluster is up.

    Returns:
        The report; ``report.ok`` is False when anything is missing, corrupt or inconsistent.

    Raises:
        ReleaseNotFound: No such release.
    """
    t0 = time.perf_counter()
    rel = Lake(spec).release(release)
    manifest = rel.manifest
    listed = [(o["path"], int(o["size"]), o["sha256"]) for o in manifest["objects"]]
    report = VerifyReport(rel.name, spec.url, len(listed), patches=len(rel))
    batches = [tuple(listed[i : i + batch]) for i in range(0, len(listed), max(batch, 1))]
    problems: list[Problem] = []
    with Runner(cluster.with_store(spec)) as runner:
        report.dashboard = runner.dashboard
        if on_start is not None:
            on_start(runner)
        for result in runner.map(check_objects, batches, spec, desc="verify", progress=progress):
            report.bytes += result["bytes"]
            problems.extend(Problem(**p) for p in result["problems"])
    problems.sort(key=lambda p: p.path)
    problems.extend(check_counts(rel))
    report.problems = problems
    names = {p for p, _, _ in listed}
    present = [p for prefix in release_prefixes(rel.name) for p in list_objects(spec, prefix)]
    report.unlisted = sorted(p for p in present if p not in names)
    report.seconds = time.perf_counter() - t0
    return report
