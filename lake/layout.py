"""Where each object of a lake lives (layout version 2); no I/O here.

```
lake.json                                root: layout version, releases, the current release
releases/<name>/manifest.json            every object of the release: path, size, sha256, counts
releases/<name>/quarantine.jsonl         what ingest rejected, one record per line
patches/<name>.zarr/                     Zarr v3 group, one row per S1/S2 pair along `sample`
tables/<name>/patches/part-0.parquet     one row per pair (metadata, georeference, geometry)
tables/<name>/annotations/split=<s>/     BigEarthNet.txt rows + parsed columns
stac/<name>/catalog.json                 the STAC catalog of the release (root catalog)
stac/<name>/collection.json              the collection of S1/S2 pairs
stac/<name>/items.parquet                one Item per pair, as stac-geoparquet
stats/<name>/band_stats.parquet          derived: per-band statistics (``lake pipeline stats``)
lake.json.lock                           held while lake.json is rewritten (lake/lock.py)
_work/<name>.lock                        held by the one ingest of a release that may run
_work/<name>/                            ingest's resumable state (never read by readers)
_work/<name>/stats/                      the stats job's per-shard partial sums (resumable)
```
"""

from __future__ import annotations

import re

from lake.errors import ConfigError

#: The layout this version writes. Layout 2 (ADR 0008) ends the codec chain of every chunk of
#: the patch group with ``crc32c``; layout 1 had a checksum on the shard indexes only. The paths
#: are the same, and readers follow each array's ``zarr.json``, so both read the same way.
LAYOUT_VERSION = 2
#: The layouts this version reads (``lake.json`` and each release's manifest say which).
READABLE_LAYOUT_VERSIONS: frozenset[int] = frozenset({1, 2})
ROOT_DOCUMENT = "lake.json"
ROOT_LOCK = "lake.json.lock"
_RELEASE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_release_name(name: str) -> str:
    """Return ``name`` if it is a valid release name.

    Raises:
        ConfigError: It contains characters other than letters, digits, ``.``, ``_``, ``-``.
    """
    if not _RELEASE_NAME.match(name):
        raise ConfigError(
            f"release name {name!r} is invalid: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def manifest_path(release: str) -> str:
    """The release manifest."""
    return f"releases/{release}/manifest.json"


def quarantine_path(release: str) -> str:
    """The quarantine report of a release."""
    return f"releases/{release}/quarantine.jsonl"


def patches_path(release: str) -> str:
    """The Zarr group of a release."""
    return f"patches/{release}.zarr"


def patches_table_path(release: str) -> str:
    """The folder of the ``patches`` Parquet table."""
    return f"tables/{release}/patches"


def annotations_table_path(release: str) -> str:
    """The folder of the ``annotations`` Parquet dataset (hive-partitioned by split)."""
    return f"tables/{release}/annotations"


def stac_path(release: str) -> str:
    """The folder of the release's STAC catalog."""
    return f"stac/{release}"


def stac_items_path(release: str) -> str:
    """The release's STAC Items as stac-geoparquet."""
    return f"stac/{release}/items.parquet"


def work_path(release: str) -> str:
    """Ingest's resumable state for a release being built."""
    return f"_work/{release}"


def ingest_lock_path(release: str) -> str:
    """The lock held while a release is ingested (beside its state, which a restart removes)."""
    return f"_work/{release}.lock"


def stats_path(release: str) -> str:
    """The folder of a release's derived statistics."""
    return f"stats/{release}"


def band_stats_path(release: str) -> str:
    """The per-band statistics table of a release (a derived product, see ADR 0006)."""
    return f"{stats_path(release)}/band_stats.parquet"


def stats_work_path(release: str) -> str:
    """The stats job's resumable state: one partial-sums object per shard."""
    return f"{work_path(release)}/stats"


def release_prefixes(release: str) -> tuple[str, ...]:
    """Every prefix whose objects belong to the release (what the manifest lists)."""
    return (
        patches_path(release),
        f"tables/{release}",
        stac_path(release),
        quarantine_path(release),
        stats_path(release),
    )
