"""What every source yields: metadata rows and decoded pairs, with bad input named and explained.

A source is a picklable description (paths and options, no open handles): Dask workers receive it
and each process opens what it needs. Sources differ in how bytes are found; decoding and checks
are shared (:mod:`pipelines.sources.geotiff`, :func:`check_pair`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lake.bigearthnet import (
    ARRAYS,
    CLASS_CODES,
    METADATA_COLUMNS,
    REFERENCE_MAP,
    S1_BANDS,
    S2_BANDS,
    SPLITS,
)
from lake.errors import BadInput, SourceError
from lake.names import S1_PATTERN, S2_PATTERN

#: Every band of a pair, by name: 12 S2 bands, VV/VH, the reference map.
PAIR_BANDS: tuple[str, ...] = (*S2_BANDS, *S1_BANDS, REFERENCE_MAP.name)

METADATA_SCHEMA = pa.schema(
    [
        ("patch_id", pa.string()),
        ("labels", pa.list_(pa.string())),
        ("split", pa.string()),
        ("country", pa.string()),
        ("s1_name", pa.string()),
        ("s2v1_name", pa.string()),
        ("contains_seasonal_snow", pa.bool_()),
        ("contains_cloud_or_shadow", pa.bool_()),
    ]
)


@dataclass(frozen=True)
class Pair:
    """One decoded S1/S2 pair with its reference map.

    Attributes:
        patch_id: The S2 patch id (the pair's key).
        s1_name: The S1 patch name, from the metadata.
        bands: Native arrays by band name (``B01``..``B12``, ``B8A``, ``VV``, ``VH``,
            ``reference_map``).
        epsg: EPSG code of the pair's UTM zone.
        transform: Affine transform of the 10 m grid (from band B02).
    """

    patch_id: str
    s1_name: str
    bands: dict[str, np.ndarray]
    epsg: int
    transform: tuple[float, ...]

    def stacked(self) -> dict[str, np.ndarray]:
        """The pair as the lake's arrays (``s2_10m``, ..., ``s1``, ``reference_map``)."""
        out: dict[str, np.ndarray] = {}
        for spec in ARRAYS:
            if spec.bands:
                out[spec.name] = np.stack([self.bands[b] for b in spec.bands])
            else:
                out[spec.name] = self.bands[spec.name]
        return out


@dataclass(frozen=True)
class Rejected:
    """A record a source could not turn into valid data: who, why, what exactly.

    Attributes:
        subject: The file path, patch id, or annotation row ID.
        reason: Short code (``missing_file``, ``truncated``, ``wrong_shape``, ``no_metadata``...).
        detail: The explanation a person reads.
        patch_id: The pair it concerns, when known.
    """

    subject: str
    reason: str
    detail: str
    patch_id: str | None = None

    @classmethod
    def of(cls, error: BadInput, patch_id: str | None = None) -> Rejected:
        """From a :class:`BadInput` error."""
        return cls(error.subject, error.reason, error.detail, patch_id)


@runtime_checkable
class Source(Protocol):
    """A BigEarthNet source the ingest can read.

    Attributes:
        kind: ``folders``, ``tar.zst`` or ``lmdb``.
        text_path: The BigEarthNet.txt parquet that comes with the source, or None.
    """

    @property
    def kind(self) -> str:
        """``folders``, ``tar.zst`` or ``lmdb``."""
        ...

    @property
    def text_path(self) -> str | None:
        """The BigEarthNet.txt parquet that comes with the source, or None."""
        ...

    def fingerprint(self) -> str:
        """A string that changes when the source's content may have changed (for resume)."""
        ...

    def prepare(self, progress: bool = False) -> None:
        """One-off work before random access (e.g. staging an archive); idempotent."""
        ...

    def metadata(self) -> pa.Table:
        """The metadata rows (``METADATA_SCHEMA``), sorted by patch_id."""
        ...

    def read_pair(self, patch_id: str, s1_name: str) -> Pair:
        """Decode one pair.

        Raises:
            BadInput: A file is missing, truncated, unreadable or not the expected band.
        """
        ...

    def orphans(self, known_patch_ids: set[str], known_s1_names: set[str]) -> list[Rejected]:
        """Files in the source that belong to no metadata row."""
        ...


def assemble_pair(
    patch_id: str, s1_name: str, bands: dict[str, tuple[np.ndarray, int, tuple[float, ...]]]
) -> Pair:
    """Build a :class:`Pair` from decoded bands and check that it is whole and consistent.

    Args:
        patch_id: The pair's key.
        s1_name: Its S1 name.
        bands: ``band -> (array, epsg, transform)`` as decoded.

    Raises:
        BadInput: A band is missing or the bands disagree on the CRS.
    """
    missing = [b for b in PAIR_BANDS if b not in bands]
    if missing:
        raise BadInput(patch_id, "missing_band", f"no data for band(s) {', '.join(missing)}")
    epsgs = {b: e for b, (_, e, _) in bands.items()}
    if len(set(epsgs.values())) != 1:
        raise BadInput(patch_id, "crs_mismatch", f"bands disagree on the CRS: {epsgs}")
    ref = bands["B02"]
    return Pair(
        patch_id=patch_id,
        s1_name=s1_name,
        bands={b: bands[b][0] for b in PAIR_BANDS},
        epsg=ref[1],
        transform=ref[2],
    )


def read_metadata(path: str | Path, extra: Sequence[str | Path] = ()) -> pa.Table:
    """Read ``metadata.parquet`` (plus optional snow/cloud parquets) and check it.

    Rows are checked for a valid patch id and S1 name, a known split, and known, non-empty labels.
    Invalid rows are not dropped silently: they raise, naming the file and the first bad rows,
    because a metadata file with bad rows is not the official one.

    Raises:
        SourceError: A file is missing, lacks columns, or has invalid or duplicate rows.
    """
    tables = []
    for p in (path, *extra):
        p = Path(p)
        if not p.exists():
            raise SourceError(f"{p}: metadata parquet does not exist")
        try:
            t = pq.read_table(p)
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise SourceError(f"{p}: not a readable parquet file ({exc})") from None
        missing = [c for c in METADATA_COLUMNS if c not in t.column_names]
        if missing:
            raise SourceError(f"{p}: missing metadata column(s) {', '.join(missing)}")
        try:
            t = t.select(list(METADATA_COLUMNS)).cast(METADATA_SCHEMA)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise SourceError(f"{p}: metadata columns have the wrong types ({exc})") from None
        _check_metadata(t, p)
        tables.append(t)
    table = pa.concat_tables(tables)
    ids = table.column("patch_id")
    if pc.count_distinct(ids).as_py() != len(ids):
        counts = pc.value_counts(ids)
        dup = [v["values"].as_py() for v in counts if v["counts"].as_py() > 1][:5]
        raise SourceError(f"{path}: duplicate patch_id(s) {dup}")
    return table.sort_by("patch_id")


def _check_metadata(t: pa.Table, path: Path) -> None:
    """Vectorised row checks (480,038 rows in well under a second)."""
    ok_id = pc.fill_null(pc.match_substring_regex(t["patch_id"], S2_PATTERN.pattern), False)
    ok_s1 = pc.fill_null(pc.match_substring_regex(t["s1_name"], S1_PATTERN.pattern), False)
    ok_split = pc.fill_null(pc.is_in(t["split"], value_set=pa.array(SPLITS)), False)
    labels = t["labels"]
    n_labels = pc.fill_null(pc.list_value_length(labels), 0)
    flat_ok = pc.is_in(pc.list_flatten(labels), value_set=pa.array(sorted(CLASS_CODES)))
    parents = pc.list_parent_indices(labels)
    bad_label_rows = set(pc.filter(parents, pc.invert(pc.fill_null(flat_ok, False))).to_pylist())
    ok = pc.and_(pc.and_(ok_id, ok_s1), pc.and_(ok_split, pc.greater(n_labels, 0)))
    bad = sorted(set(pc.indices_nonzero(pc.invert(ok)).to_pylist()) | bad_label_rows)
    if not bad:
        return
    rows = t.take(pa.array(bad[:5])).select(["patch_id", "s1_name", "labels", "split"]).to_pylist()
    shown = "; ".join(f"row {i}: {r}" for i, r in zip(bad, rows, strict=False))
    raise SourceError(
        f"{path}: {len(bad)} invalid metadata row(s) (bad patch_id or s1_name, split not in "
        f"{SPLITS}, or labels empty or not among the 19 classes), first: {shown}"
    )


def iter_rows(table: pa.Table, batch_size: int = 4096) -> Iterator[dict[str, object]]:
    """Rows of a table as dicts, a batch at a time."""
    for batch in table.to_batches(batch_size):
        yield from batch.to_pylist()


def no_metadata(subject: str, name: str) -> Rejected:
    """The rejection of data whose patch id or S1 name is in no metadata row.

    Args:
        subject: Where the data is (a folder, an archive member folder, an LMDB key).
        name: The patch id or S1 name it belongs to.
    """
    return Rejected(
        subject,
        "no_metadata",
        f"{name!r} is in no metadata row (if it is a snow/cloud patch, pass "
        "metadata_for_patches_with_snow_cloud_or_shadow.parquet as extra metadata)",
        patch_id=name if S2_PATTERN.match(name) else None,
    )


def stamp(path: str | Path) -> str:
    """A cheap change detector for one file: ``size:mtime_ns``, or ``missing``."""
    try:
        st = os.stat(path)
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}"


@dataclass
class RejectLog:
    """Collects rejections in order, for the quarantine report."""

    items: list[Rejected] = field(default_factory=list)

    def add(self, item: Rejected) -> None:
        """Record one rejection."""
        self.items.append(item)
