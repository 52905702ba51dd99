"""Where each object of a lake lives (layout version 2); no I/O here.

```
lake.json                                root: layout version, releases, the current release
releases/<name>/manifest.json            every object of the release: path, size, sha256, counts
releases/<name>/quarantine.jsonl         what ingest rejected, one record per line
releases/<name>/index.parquet            the release index: array metadata + selection columns
patches/<name>.zarr/                     Zarr v3 group, one row per S1/S2 pair along `sample`
tables/<name>/patches/part-0.parquet     one row per pair (metadata, georeference, geometry)
tables/<name>/annotations/split=<s>/     BigEarthNet.txt rows + parsed columns
stac/<name>/catalog.json                 the STAC catalog of the release (root catalog)
stac/<name>/collection.json              the collection of S1/S2 pairs
stac/<name>/items.parquet                one Item per pair, as stac-geoparquet
stats/<name>/band_stats.parquet          derived: per-band statistics (``lake pipeline stats``)
timeseries/<name>/<part>/                derived: a time series cut from new scenes
                                         (``lake pipeline timeseries``): timeseries.json,
                                         series.zarr/, acquisitions.parquet, items.parquet
lake.json.lock                           held while lake.json is rewritten (lake/lock.py)
_work/<name>.lock                        held by the one ingest of a release that may run
_work/<name>/                            ingest's resumable state (never read by readers)
_work/<name>/stats/                      the stats job's per-shard partial sums (resumable)
_work/<name>/timeseries/<part>/          the time-series job's plan and finished tasks
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


def release_index_path(release: str) -> str:
    """The release index: one object a reader opens the release with (:mod:`lake.index`)."""
    return f"releases/{release}/index.parquet"


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


def timeseries_path(release: str, part: str) -> str:
    """The folder of one time-series part of a release (a derived product)."""
    return f"timeseries/{release}/{part}"


def timeseries_document_path(release: str, part: str) -> str:
    """A time-series part's document: parameters, bands, composite times, counts."""
    return f"{timeseries_path(release, part)}/timeseries.json"


def timeseries_group_path(release: str, part: str) -> str:
    """A time-series part's Zarr group (raw acquisitions and composites)."""
    return f"{timeseries_path(release, part)}/series.zarr"


def timeseries_acquisitions_path(release: str, part: str) -> str:
    """A time-series part's table of acquisitions (one row per patch and scene)."""
    return f"{timeseries_path(release, part)}/acquisitions.parquet"


def timeseries_items_path(release: str, part: str) -> str:
    """A time-series part's STAC Items (one per patch) as stac-geoparquet."""
    return f"{timeseries_path(release, part)}/items.parquet"


def timeseries_work_path(release: str, part: str) -> str:
    """The time-series job's resumable state for one part."""
    return f"{work_path(release)}/timeseries/{part}"


def release_prefixes(release: str) -> tuple[str, ...]:
    """Every prefix whose objects belong to the release (what the manifest lists)."""
    return (
        patches_path(release),
        f"tables/{release}",
        stac_path(release),
        quarantine_path(release),
        release_index_path(release),
        stats_path(release),
        f"timeseries/{release}",
    )
