"""The release index: one object that opens a release with one GET.

Opening a release the long way costs a reader (the training loader above all) about 20-40 small
sequential requests: the manifest, the ``patches`` table (a listing, a footer, column chunks)
and one ``zarr.json`` per array. With 20 ms per request on S3 that is most of a second before
the first byte of a shard. Publish therefore writes ``releases/<r>/index.parquet``
(:func:`write_index`), a plain Parquet object holding

* the columns that select and label pairs, one row per pair in storage order: ``patch_id``,
  ``sample_index``, ``split`` and ``labels`` (the class names, as in the ``patches`` table);
* in its key-value metadata under ``lake.index`` (JSON, :class:`IndexDocument`): the group's
  and every array's ``zarr.json`` (so the shard layout: samples per shard, codecs, key
  encoding), the counts of the release, and where the full tables are (the pointers text tasks
  follow to their annotation rows).

:func:`read_index` reads it with one GET (no HEAD first) and returns a
:class:`ReleaseIndex`, or None for a release published before the index existed, which readers
then open the old way. The object is listed in the release's manifest like every other, and it
is derived from the release's own objects, so it never disagrees with them
(``tests/lake/test_index.py`` checks it against the tables and the group).

Example:
    >>> from lake.index import read_index
    >>> index = read_index(spec, "v1")  # doctest: +SKIP
    >>> index.patches(["patch_id", "split"]).num_rows  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypedDict

import pyarrow as pa
import pyarrow.parquet as pq

from lake.config import StoreSpec
from lake.errors import LayoutError
from lake.layout import (
    LAYOUT_VERSION,
    annotations_table_path,
    patches_path,
    patches_table_path,
    release_index_path,
)
from lake.storage import filesystem, one_get, write_bytes_atomic
from lake.tables import arrow_buffer

__all__ = [
    "INDEX_COLUMNS",
    "INDEX_VERSION",
    "IndexDocument",
    "ReleaseIndex",
    "read_index",
    "write_index",
]

#: The version of the index object this code writes and reads.
INDEX_VERSION: Final = 1
#: The key of the JSON document in the Parquet key-value metadata.
METADATA_KEY: Final = b"lake.index"
#: The per-pair columns of the index (a projection of the ``patches`` table).
INDEX_COLUMNS: Final = ("patch_id", "sample_index", "split", "labels")


class IndexDocument(TypedDict):
    """The JSON document of an index (Parquet metadata key ``lake.index``).

    Attributes:
        index_version: :data:`INDEX_VERSION`.
        layout_version: The lake layout of the release.
        release: The release name.
        group: The patch group's ``zarr.json``.
        arrays: ``array name -> its zarr.json``, every array of the group.
        counts: What the manifest counts will say: ``patches``, ``annotations`` (per split and
            ``total``), ``quarantined``.
        tables: Lake-relative paths of the ``patches`` table and the ``annotations`` folder.
    """

    index_version: int
    layout_version: int
    release: str
    group: dict[str, Any]
    arrays: dict[str, dict[str, Any]]
    counts: dict[str, Any]
    tables: dict[str, str]


@dataclass(frozen=True)
class ReleaseIndex:
    """A release's index, read (:func:`read_index`).

    Offers the part of :class:`lake.reader.Release` that opening a loader needs (``name``,
    :meth:`patches`, :meth:`annotations`), so it can stand in for one.

    Attributes:
        spec: The lake.
        name: The release.
        document: The JSON document (array metadata, counts, table paths).
        table: One row per pair: :data:`INDEX_COLUMNS`, in storage order.
    """

    spec: StoreSpec
    name: str
    document: IndexDocument
    table: pa.Table

    def array_meta(self, name: str) -> dict[str, Any]:
        """The ``zarr.json`` of an array of the patch group.

        Raises:
            LayoutError: The group has no such array.
        """
        try:
            return self.document["arrays"][name]
        except KeyError:
            raise LayoutError(
                f"release {self.name!r} of {self.spec.url} has no array {name!r} (its index "
                f"lists {', '.join(sorted(self.document['arrays']))})"
            ) from None

    def patches(self, columns: Sequence[str] | None = None) -> pa.Table:
        """The index's per-pair columns (all of :data:`INDEX_COLUMNS` when None).

        Raises:
            LayoutError: A column the index does not hold (read the ``patches`` table for it:
                ``lake.open_lake(url).release(name).patches(columns)``).
        """
        wanted = list(INDEX_COLUMNS if columns is None else columns)
        missing = [c for c in wanted if c not in self.table.column_names]
        if missing:
            raise LayoutError(
                f"the index of release {self.name!r} has no column(s) {missing} (it holds "
                f"{list(self.table.column_names)}); read them from the patches table with "
                "lake.open_lake(url).release(name).patches(columns)"
            )
        return self.table.select(wanted)

    def annotations(self, split: str | None = None, columns: list[str] | None = None) -> pa.Table:
        """The ``annotations`` table (or one split), followed from the index's pointer.

        An empty table when the release has no annotation rows (known from the counts, without
        a request).
        """
        if not self.document["counts"].get("annotations", {}).get("total"):
            return pa.table({})
        from lake.reader import Release

        return Release(self.spec, self.name).annotations(split=split, columns=columns)


def write_index(spec: StoreSpec, release: str, counts: Mapping[str, Any]) -> str:
    """Write the index of a release from its patch group and ``patches`` table.

    Call it at publish, after the group and the tables are complete and before the manifest is
    built (so the manifest lists it).

    Args:
        spec: The lake.
        release: The release being published.
        counts: The counts the manifest will carry (``patches``, ``annotations``, ...).

    Returns:
        The index object's lake-relative path.

    Raises:
        LayoutError: The group or the ``patches`` table is missing or disagrees with
            ``counts`` (the message names which).
    """
    fs = filesystem(spec)
    group = patches_path(release)
    try:
        group_meta = json.loads(fs.cat_file(spec.path(f"{group}/zarr.json")))
    except FileNotFoundError:
        raise LayoutError(
            f"cannot write the index of release {release!r}: {spec.url}/{group} has no "
            "zarr.json (write the patch group first)"
        ) from None
    found = sorted(fs.glob(spec.path(f"{group}/*/zarr.json")))
    raw = fs.cat(found) if found else {}
    arrays = {path.rsplit("/", 2)[-2]: json.loads(raw[path]) for path in found}
    from lake.reader import Release

    try:
        table = Release(spec, release).patches(columns=list(INDEX_COLUMNS))
    except LayoutError as exc:
        raise LayoutError(f"cannot write the index of release {release!r}: {exc}") from None
    table = table.sort_by("sample_index")
    n = counts.get("patches")
    if n is not None and table.num_rows != int(n):
        raise LayoutError(
            f"cannot write the index of release {release!r}: the patches table has "
            f"{table.num_rows} rows, the counts say {n}"
        )
    document: IndexDocument = {
        "index_version": INDEX_VERSION,
        "layout_version": LAYOUT_VERSION,
        "release": release,
        "group": group_meta,
        "arrays": arrays,
        "counts": json.loads(json.dumps(dict(counts))),
        "tables": {
            "patches": patches_table_path(release),
            "annotations": annotations_table_path(release),
        },
    }
    metadata = {METADATA_KEY: json.dumps(document, sort_keys=True).encode()}
    sink = pa.BufferOutputStream()
    pq.write_table(table.replace_schema_metadata(metadata), sink, compression="zstd")
    path = release_index_path(release)
    write_bytes_atomic(fs, spec.path(path), sink.getvalue().to_pybytes())
    return path


def read_index(spec: StoreSpec, release: str) -> ReleaseIndex | None:
    """Read a release's index with one GET; None when the release has none (published before).

    Args:
        spec: The lake.
        release: A published release (see :func:`lake.release.resolve_release`).

    Raises:
        LayoutError: The object is there but is not an index this version reads.
    """
    path = release_index_path(release)
    fs = filesystem(spec)
    try:
        raw = fs.cat_file(spec.path(path), **one_get(fs))
    except FileNotFoundError:
        return None
    # ParquetFile, not pq.read_table: that imports pyarrow.dataset and with it pandas, 0.35 s
    # of a cold process's first batch.
    table = pq.ParquetFile(pa.BufferReader(arrow_buffer(raw))).read()
    where = f"{spec.url}/{path}"
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise LayoutError(f"{where} has no {METADATA_KEY.decode()!r} metadata: not a release index")
    document: IndexDocument = json.loads(raw)
    version = document.get("index_version")
    if version != INDEX_VERSION:
        raise LayoutError(
            f"{where}: index version {version!r} is not {INDEX_VERSION} (this version reads "
            f"version {INDEX_VERSION}); upgrade the lake package"
        )
    if document.get("release") != release:
        raise LayoutError(f"{where} is the index of release {document.get('release')!r}")
    return ReleaseIndex(spec, release, document, table.replace_schema_metadata(None))
