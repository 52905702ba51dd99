"""A release of a lake read back as an ingest source: how ``lake pipeline export`` makes a lake.

The selected pairs of a published release are yielded bit-exact from its Zarr group, with their
metadata rows from the ``patches`` table and, optionally, their BigEarthNet.txt rows staged as a
local Parquet file; the ordinary ingest then writes them as a release of another lake, with the
same checks, shards, tables, catalog and manifest as any source.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lake.bigearthnet import ARRAYS
from lake.config import StoreSpec
from lake.patchstore import array_of
from lake.reader import Release
from pipelines.sources.base import (
    METADATA_SCHEMA,
    CheckedMetadata,
    Pair,
    PairHeader,
    Rejected,
    TaskRunner,
)


class LakeSource:
    """Some pairs of a release, read back as an ingest source (picklable; opens per process).

    Args:
        spec: The source lake.
        release: The release.
        patch_ids: The pairs to yield.
        text_path: A local BigEarthNet.txt parquet of their rows (see :func:`stage_text`).
    """

    kind = "lake"

    def __init__(
        self,
        spec: StoreSpec,
        release: str,
        patch_ids: Sequence[str],
        text_path: str | None = None,
    ) -> None:
        self.spec = spec
        self.release = release
        self.patch_ids = tuple(sorted(patch_ids))
        self._text_path = text_path
        self._cache: dict[str, Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_cache": {}}

    @property
    def text_path(self) -> str | None:
        """The staged BigEarthNet.txt rows of the pairs, or None."""
        return self._text_path

    def fingerprint(self) -> str:
        """Source lake, release and the selected pairs (no credentials)."""
        digest = hashlib.sha256("\n".join(self.patch_ids).encode()).hexdigest()[:16]
        return f"{self.spec.url}#{self.release}:{len(self.patch_ids)}:{digest}"

    def prepare(self, progress: bool = False, runner: TaskRunner | None = None) -> None:
        """Nothing to stage."""

    def _rel(self) -> Release:
        if "rel" not in self._cache:
            self._cache["rel"] = Release(self.spec, self.release)
        rel: Release = self._cache["rel"]
        return rel

    def _rows(self) -> pa.Table:
        if "rows" not in self._cache:
            t = self._rel().patches()
            keep = pc.is_in(t["patch_id"], value_set=pa.array(self.patch_ids, pa.string()))
            self._cache["rows"] = t.filter(keep).sort_by("patch_id")
        rows: pa.Table = self._cache["rows"]
        return rows

    def metadata(self) -> pa.Table:
        """The selected pairs' metadata rows, sorted by patch id."""
        return self._rows().select(METADATA_SCHEMA.names).cast(METADATA_SCHEMA)

    def checked_metadata(self) -> CheckedMetadata:
        """The selected rows, all valid: they come from a published release."""
        rows = self.metadata()
        return CheckedMetadata(rows, (), rows.slice(0, 0))

    def scan_pair(self, patch_id: str, s1_name: str) -> PairHeader:
        """A stored pair's georeference, from the release's table (nothing is decoded)."""
        _, epsg, transform = self._georef()[patch_id]
        return PairHeader(patch_id, epsg, transform)

    def _georef(self) -> dict[str, tuple[int, int, tuple[float, ...]]]:
        """``patch_id -> (sample_index, epsg, transform)`` of the release, read once."""
        if "georef" not in self._cache:
            t = self._rows()
            self._cache["georef"] = {
                pid: (idx, int(e), tuple(tf))
                for pid, idx, e, tf in zip(
                    t["patch_id"].to_pylist(),
                    t["sample_index"].to_pylist(),
                    t["epsg"].to_pylist(),
                    t["transform"].to_pylist(),
                    strict=True,
                )
            }
        return self._cache["georef"]

    def read_pair(self, patch_id: str, s1_name: str) -> Pair:
        """One pair, as stored in the release (bit-exact)."""
        index, epsg, transform = self._georef()[patch_id]
        group = self._rel().group
        bands: dict[str, np.ndarray] = {}
        for a in ARRAYS:
            values = np.asarray(array_of(group, a.name)[index])
            if a.bands:
                bands.update({b: values[i] for i, b in enumerate(a.bands)})
            else:
                bands[a.name] = values
        return Pair(patch_id, s1_name, bands, epsg, transform)

    def orphans(self, known_patch_ids: set[str], known_s1_names: set[str]) -> list[Rejected]:
        """A release has no stray files."""
        return []
