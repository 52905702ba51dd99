"""Build a release's STAC catalog: ``catalog.json``, ``collection.json``, ``items.parquet``.

Inputs are what the release already holds: its ``patches`` and ``annotations`` tables and the
sizes/checksums of its objects. The output is a pure function of them (sorted Items, sorted JSON
keys, no time of building, hrefs relative to ``stac/<release>/``), so building twice gives the
same bytes. Ingest builds the catalog before it publishes, so the catalog is in the manifest;
:func:`verify_catalog` rebuilds a published release's catalog and refuses to touch it when the
bytes would differ (releases are immutable).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

from catalog.collection import catalog_dict, collection_dict
from catalog.items import PATCH_COLUMNS, items_table
from lake.config import StoreSpec
from lake.errors import LayoutError, PublishConflict
from lake.layout import (
    annotations_table_path,
    band_stats_path,
    patches_table_path,
    stac_items_path,
    stac_path,
)
from lake.release import ObjectEntry, hash_objects, list_objects, read_manifest
from lake.storage import filesystem, sha256_bytes, write_bytes_atomic
from lake.tables import read_parquet

#: Items per Parquet row group: small enough that bbox, datetime and id statistics prune well.
ROW_GROUP = 8192


@dataclass(frozen=True)
class BuiltCatalog:
    """The files of a release's catalog, rendered but not yet written.

    Attributes:
        release: The release name.
        files: Path (relative to the lake) -> bytes, for the three files.
        n_items: Number of Items.
    """

    release: str
    files: Mapping[str, bytes]
    n_items: int

    def entries(self) -> dict[str, ObjectEntry]:
        """Size and checksum of each file, as the release manifest lists them."""
        return {p: ObjectEntry(p, len(b), sha256_bytes(b)) for p, b in self.files.items()}


def catalog_path(release: str) -> str:
    """The root catalog of a release."""
    return f"{stac_path(release)}/catalog.json"


def collection_path(release: str) -> str:
    """The collection of a release."""
    return f"{stac_path(release)}/collection.json"


def _json(obj: Any) -> bytes:
    return (json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()


def items_parquet(table: pa.Table) -> bytes:
    """The Items as stac-geoparquet bytes (written by ``stac_geoparquet.arrow.to_parquet``).

    Row groups of :data:`ROW_GROUP` Items, zstd, a Bloom filter on ``id``, and the sort order
    (``id``) declared in the row groups' ``sorting_columns`` (search relies on it for its
    default order).
    """
    import pyarrow.parquet as pq
    from stac_geoparquet.arrow import to_parquet

    reader = pa.RecordBatchReader.from_batches(
        table.schema, table.to_batches(max_chunksize=ROW_GROUP)
    )
    fd, tmp = tempfile.mkstemp(suffix=".parquet", prefix="items-")
    os.close(fd)
    try:
        to_parquet(
            reader,
            tmp,
            compression="zstd",
            bloom_filter_options={"id": {"ndv": max(table.num_rows, 1), "fpp": 0.01}},
            sorting_columns=[pq.SortingColumn(table.schema.get_field_index("id"))],
        )
        with open(tmp, "rb") as f:
            return f.read()
    finally:
        os.unlink(tmp)


def read_inputs(spec: StoreSpec, release: str) -> tuple[pa.Table, pa.Table | None]:
    """The ``patches`` table and the ``annotations`` (``patch_id``, ``type``) of a release.

    Reads the tables directly (they may belong to a release that is not yet published).
    """
    fs = filesystem(spec)
    patches = ds.dataset(spec.path(patches_table_path(release)), filesystem=fs, format="parquet")
    columns = [c for c in PATCH_COLUMNS if c in patches.schema.names]
    table = patches.to_table(columns=columns)
    base = spec.path(annotations_table_path(release))
    if not fs.exists(base):
        return table, None
    text = ds.dataset(base, filesystem=fs, format="parquet", partitioning="hive")
    return table, text.to_table(columns=["patch_id", "type"])


def read_band_stats(
    spec: StoreSpec, release: str, objects: Mapping[str, ObjectEntry] | None
) -> pa.Table | None:
    """The release's band statistics, when its objects list them (a derived product)."""
    path = band_stats_path(release)
    if not objects or path not in objects:
        return None
    return read_parquet(filesystem(spec), spec.path(path))  # Arrow-owned: see lake.tables


def render_catalog(
    spec: StoreSpec,
    release: str,
    objects: Mapping[str, ObjectEntry] | None,
    *,
    patches: pa.Table | None = None,
    annotations: pa.Table | None = None,
) -> BuiltCatalog:
    """Render the catalog of a release without writing it.

    Args:
        spec: The lake.
        release: The release name.
        objects: Every object of the release that the catalog describes (shards and tables),
            by path; None for a catalog without file sizes and checksums.
        patches: The ``patches`` table (read from the lake when None).
        annotations: The ``annotations`` table, at least ``patch_id`` and ``type`` (read from
            the lake when ``patches`` is None).
    """
    if patches is None:
        patches, annotations = read_inputs(spec, release)
    items = items_table(patches, release, annotations=annotations, objects=objects)
    body = items_parquet(items)
    items_entry = ObjectEntry(stac_items_path(release), len(body), sha256_bytes(body))
    collection = collection_dict(
        items,
        release,
        objects=objects,
        items_entry=items_entry,
        band_stats=read_band_stats(spec, release, objects),
    )
    files = {
        stac_items_path(release): body,
        collection_path(release): _json(collection),
        catalog_path(release): _json(catalog_dict(release)),
    }
    return BuiltCatalog(release, files, items.num_rows)


def build_catalog(
    spec: StoreSpec, release: str, shards: Mapping[str, ObjectEntry]
) -> dict[str, ObjectEntry]:
    """Write the catalog of a release being ingested (before its manifest is built).

    Args:
        spec: The lake.
        release: The release name.
        shards: The shard objects already written and hashed by ingest.

    Returns:
        Size and checksum of every object this step read or wrote (the tables and the three
        catalog files), for the manifest, so that nothing is hashed twice.
    """
    tables = {e.path: e for e in hash_objects(spec, list_objects(spec, f"tables/{release}"))}
    built = render_catalog(spec, release, {**shards, **tables})
    fs = filesystem(spec)
    for path, body in built.files.items():
        write_bytes_atomic(fs, spec.path(path), body)
    return {**tables, **built.entries()}


@dataclass(frozen=True)
class CatalogCheck:
    """The outcome of rebuilding a published release's catalog.

    Attributes:
        release: The release name.
        n_items: Items in the catalog.
        files: The catalog's files (paths relative to the lake) with their sizes.
    """

    release: str
    n_items: int
    files: Mapping[str, int]


def verify_catalog(spec: StoreSpec, release: str) -> CatalogCheck:
    """Rebuild the catalog of a published release and check it has the same bytes.

    A release is immutable: the catalog is never rewritten. Rebuilding it is a check that it
    is exactly what the release's tables and manifest give.

    Raises:
        ReleaseNotFound: The release is not published.
        PublishConflict: The rebuilt catalog differs from the one in the manifest, or the
            release has no catalog (published before catalogs were built).
        LayoutError: A stored catalog file differs from the manifest (edited or damaged).
    """
    manifest = read_manifest(spec, release)
    objects = {
        o["path"]: ObjectEntry(o["path"], o["size"], o["sha256"]) for o in manifest["objects"]
    }
    built = render_catalog(spec, release, objects)
    differ = []
    for path, entry in built.entries().items():
        stored = objects.get(path)
        if stored is None:
            differ.append(f"{path} (not in the release)")
        elif (stored.size, stored.sha256) != (entry.size, entry.sha256):
            differ.append(
                f"{path} (stored sha256 {stored.sha256[:12]}, rebuilt {entry.sha256[:12]})"
            )
    if differ:
        raise PublishConflict(
            f"the catalog of release {release!r} in {spec.url} would change: {'; '.join(differ)}. "
            "Releases are immutable, so it was left as it is; ingest the source again under a "
            "new --release name to get a catalog built by this version"
        )
    fs = filesystem(spec)
    for path, body in built.files.items():
        if fs.cat_file(spec.path(path)) != body:
            raise LayoutError(
                f"{spec.url}/{path} does not match the manifest of release {release!r} (edited "
                "or damaged after publishing); it was left as it is: restore it from a copy, or "
                "ingest again under a new --release name"
            )
    return CatalogCheck(release, built.n_items, {p: len(b) for p, b in built.files.items()})
