"""Reading a time-series part of a release (written by ``lake pipeline timeseries``).

A part lives under ``timeseries/<release>/<part>/`` (:mod:`lake.layout`) and holds:

* ``timeseries.json`` (:class:`~lake.documents.TimeSeriesDocument`): how it was made, the
  patches in series order, the composite periods;
* ``acquisitions.parquet``: one row per patch and scene (ragged), with ``patch_id``,
  ``sample_index`` (the pair's index in the release), ``series`` (the patch's row in the
  composites), ``datetime``, ``scene_id``, ``cloud_fraction``, ``nodata_fraction`` (from the
  scene classification) and ``position`` (the row of the raw arrays);
* ``series.zarr/``: the raw acquisitions ``s2_10m (A, 4, 120, 120)``, ``s2_20m (A, 6, 60, 60)``,
  ``s2_60m (A, 2, 20, 20)`` uint16 and ``scl (A, 60, 60)`` uint8, one chunk per acquisition; with
  composites, ``composite_10m (N, T, 4, 120, 120)``, ``composite_20m``, ``composite_60m``
  (``sample, time, band, y, x``), one chunk per patch. Dimension names are unique per band stack
  and grid (``s2_10m_band``, ``y_10m``...), so ``xarray.open_dataset(..., engine="zarr")`` opens
  the group as one Dataset;
* ``items.parquet``: one STAC Item per patch (stac-geoparquet) with its footprint, time span,
  ``proj:epsg`` / ``proj:code`` / ``proj:transform`` and the group as an asset with
  ``xarray:open_kwargs``.

Plain zarr and pyarrow: no torch here (``lake.loader`` builds on this).

Example:
    >>> ts = TimeSeries.open("s3://bucket/lake", part="s2-2019")  # doctest: +SKIP
    >>> series = ts.read(ts.indices_of(["S2A_MSIL2A_..._33UUP_75_43"]))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import zarr

from lake.config import StoreSpec, as_spec
from lake.documents import TimeSeriesDocument
from lake.errors import LayoutError, PatchNotFound
from lake.layout import (
    timeseries_acquisitions_path,
    timeseries_document_path,
    timeseries_group_path,
)
from lake.release import read_manifest, resolve_release
from lake.storage import filesystem, read_json, zarr_store
from lake.tables import read_parquet

#: The raw arrays of a part and the composite array of each resolution group.
RawArray = Literal["s2_10m", "s2_20m", "s2_60m", "scl"]
RAW_ARRAYS: tuple[RawArray, ...] = ("s2_10m", "s2_20m", "s2_60m", "scl")
COMPOSITE_OF: dict[str, str] = {
    "s2_10m": "composite_10m",
    "s2_20m": "composite_20m",
    "s2_60m": "composite_60m",
}
#: The prefix of a time-series part's key in the manifest's ``derived`` section.
DERIVED_PREFIX = "timeseries/"

ACQUISITIONS_SCHEMA = pa.schema(
    [
        ("patch_id", pa.string()),
        ("sample_index", pa.int64()),
        ("series", pa.int32()),
        ("datetime", pa.timestamp("s", tz="UTC")),
        ("scene_id", pa.string()),
        ("cloud_fraction", pa.float32()),
        ("nodata_fraction", pa.float32()),
        ("harmonised", pa.bool_()),
        ("position", pa.int64()),
    ]
)


def array_in(group: zarr.Group, name: str) -> zarr.Array:
    """The array ``name`` of a part's group.

    Raises:
        LayoutError: The group has no such array (the message names the group).
    """
    node = group.get(name)
    if not isinstance(node, zarr.Array):
        raise LayoutError(f"the time-series group {group.store_path} has no array {name!r}")
    return node


def parts_of(spec: StoreSpec, release: str | None = None) -> list[str]:
    """The time-series parts published in a release (by name)."""
    derived = read_manifest(spec, release).get("derived", {})
    return sorted(k[len(DERIVED_PREFIX) :] for k in derived if k.startswith(DERIVED_PREFIX))


@dataclass
class TimeSeries:
    """One published time-series part of a release.

    Attributes:
        spec: The lake.
        release: The release.
        part: The part's name.
        document: Its ``timeseries.json``.
    """

    spec: StoreSpec
    release: str
    part: str
    document: TimeSeriesDocument
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def open(
        cls, lake: str | StoreSpec | None, release: str | None = None, part: str | None = None
    ) -> TimeSeries:
        """Open a part of a published release.

        Args:
            lake: The lake URL or spec.
            release: The release (the current one when None).
            part: The part's name; None when the release has exactly one.

        Raises:
            ReleaseNotFound: No such release.
            LayoutError: The release has no such part (the message lists those it has).
        """
        spec = lake if isinstance(lake, StoreSpec) else as_spec(lake)
        name = resolve_release(spec, release)
        parts = parts_of(spec, name)
        if part is None and len(parts) == 1:
            part = parts[0]
        if part is None or part not in parts:
            raise LayoutError(
                f"release {name!r} of {spec.url} has no time-series part {part!r} "
                f"(it has: {', '.join(parts) or 'none'}); run `lake pipeline timeseries`"
                + ("" if part is not None or not parts else " and pass part=")
            )
        doc: TimeSeriesDocument = read_json(
            filesystem(spec), spec.path(timeseries_document_path(name, part))
        )
        return cls(spec, name, part, doc)

    def __len__(self) -> int:
        """Patches in the part (rows of the composites)."""
        return len(self.document["patches"])

    @property
    def patch_ids(self) -> list[str]:
        """The patches, in series order."""
        return list(self.document["patches"])

    @property
    def times(self) -> list[datetime]:
        """The start of each composite period (empty without composites)."""
        return [datetime.fromisoformat(t) for t in self.document["times"]]

    @cached_property
    def table(self) -> pa.Table:
        """Every acquisition (see the module docstring), by series then datetime."""
        path = self.spec.path(timeseries_acquisitions_path(self.release, self.part))
        return read_parquet(filesystem(self.spec), path)

    @property
    def group(self) -> zarr.Group:
        """The part's Zarr group, read-only."""
        if "group" not in self._cache:
            store = zarr_store(
                self.spec, timeseries_group_path(self.release, self.part), read_only=True
            )
            self._cache["group"] = zarr.open_group(store, mode="r", zarr_format=3)
        return self._cache["group"]

    def indices_of(self, patch_ids: Sequence[str]) -> list[int]:
        """The series index of each patch id.

        Raises:
            PatchNotFound: A patch is not in this part (the message names it).
        """
        index = {p: i for i, p in enumerate(self.document["patches"])}
        missing = [p for p in patch_ids if p not in index]
        if missing:
            raise PatchNotFound(
                f"patch(es) {missing[:5]} are not in time-series part {self.part!r} of release "
                f"{self.release!r} ({len(index)} patches); cut them with `lake pipeline timeseries`"
            )
        return [index[p] for p in patch_ids]

    def _check(self, series: Sequence[int]) -> list[int]:
        out = [int(i) for i in series]
        bad = [i for i in out if not 0 <= i < len(self)]
        if bad:
            raise IndexError(
                f"series index(es) {bad[:5]} out of range: part {self.part!r} has {len(self)} "
                "patches (use indices_of(patch_ids))"
            )
        return out

    def acquisitions(self, series: Sequence[int] | None = None) -> pa.Table:
        """The acquisitions of some patches (all when None), by series then datetime.

        Raises:
            IndexError: A series index is out of range.
        """
        if series is None:
            return self.table
        wanted = pa.array(self._check(series), pa.int32())
        return self.table.filter(pc.is_in(self.table["series"], value_set=wanted))

    def read(self, series: Sequence[int], array: RawArray = "s2_10m") -> list[np.ndarray]:
        """The raw acquisitions of some patches: one ``(time, band, y, x)`` array per patch.

        The time axis follows :meth:`acquisitions` (by datetime); ``scl`` has no band axis.

        Raises:
            IndexError: A series index is out of range.
            ValueError: ``array`` is not one of the raw arrays.
        """
        if array not in RAW_ARRAYS:
            raise ValueError(f"array={array!r}: use one of {list(RAW_ARRAYS)}")
        rows = self._check(series)
        positions = self.table["position"].to_numpy()
        of = self.table["series"].to_numpy()
        arr = array_in(self.group, array)
        out = []
        for i in rows:
            pos = np.sort(positions[of == i])
            if len(pos) and np.array_equal(pos, np.arange(pos[0], pos[0] + len(pos))):
                out.append(np.asarray(arr[int(pos[0]) : int(pos[-1]) + 1]))
            else:
                out.append(np.asarray(arr.get_orthogonal_selection((pos.astype(np.int64),))))
        return out

    def composite(self, series: Sequence[int], array: str = "s2_10m") -> np.ndarray:
        """The composites of some patches: ``(sample, time, band, y, x)`` over :attr:`times`.

        Raises:
            LayoutError: The part was written without composites (``--composite none``).
            IndexError: A series index is out of range.
            ValueError: ``array`` is not ``s2_10m``, ``s2_20m`` or ``s2_60m``.
        """
        if array not in COMPOSITE_OF:
            raise ValueError(f"array={array!r}: use one of {list(COMPOSITE_OF)}")
        if self.document["composite"] == "none":
            raise LayoutError(
                f"time-series part {self.part!r} of release {self.release!r} has no composites: "
                "cut it again with --composite 10D or month"
            )
        rows = self._check(series)
        arr = array_in(self.group, COMPOSITE_OF[array])
        return np.asarray(arr.get_orthogonal_selection((np.asarray(rows, dtype=np.int64),)))
