"""Per-band statistics for normalisation: the official ones, or the lake's own.

``lake pipeline stats`` writes ``stats/<release>/band_stats.parquet`` (ADR 0006): one row per
(``group_by``, ``group``, ``band``) with ``mean`` and ``std`` (population, over every pixel).
The loader normalises with its ``split = train`` rows by default, like the reference loaders'
official statistics (:data:`lake.bigearthnet.BAND_STATS`), which are train-split statistics too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import pyarrow.compute as pc

from lake.bigearthnet import BAND_STATS
from lake.config import StoreSpec
from lake.errors import ConfigError, LayoutError
from lake.layout import band_stats_path
from lake.storage import filesystem
from lake.tables import read_parquet

#: ``band -> (mean, std)``.
BandStats = Mapping[str, tuple[float, float]]
#: What to normalise with: False (nothing), True or ``"official"`` (:data:`BAND_STATS`),
#: ``"lake"`` (the release's own statistics), or explicit :data:`BandStats`.
Normalize = bool | Literal["official", "lake"] | BandStats


def lake_band_stats(
    spec: StoreSpec, release: str, group_by: str = "split", group: str = "train"
) -> dict[str, tuple[float, float]]:
    """The release's own per-band ``(mean, std)`` of one group (default: the train split).

    Falls back to the ``all`` rows when the release has no pairs in the group.

    Raises:
        LayoutError: The release has no statistics (run ``lake pipeline stats``).
    """
    fs = filesystem(spec)
    path = spec.path(band_stats_path(release))
    if not fs.exists(path):
        raise LayoutError(
            f"release {release!r} of {spec.url} has no band statistics "
            f"({band_stats_path(release)}): run `lake pipeline stats --release {release}` "
            "or use normalize='official'"
        )
    table = read_parquet(fs, path, ["group_by", "group", "band", "count", "mean", "std"])
    for by, value in ((group_by, group), ("all", "all")):
        mask = pc.and_(pc.equal(table["group_by"], by), pc.equal(table["group"], value))
        rows = [r for r in table.filter(mask).to_pylist() if r["count"]]
        if rows:
            return {r["band"]: (float(r["mean"]), float(r["std"])) for r in rows}
    raise LayoutError(f"the band statistics of release {release!r} of {spec.url} are empty")


def resolve_stats(normalize: Normalize, spec: StoreSpec, release: str) -> BandStats | None:
    """What ``normalize`` asks for: None (no normalisation) or ``band -> (mean, std)``.

    Args:
        normalize: False (off), True or ``"official"`` (:data:`BAND_STATS`), ``"lake"`` (the
            release's own train-split statistics), or a mapping ``band -> (mean, std)``.
        spec: The lake.
        release: The release.

    Raises:
        ConfigError: An unknown value, or a mapping without a std > 0 for some band.
        LayoutError: ``"lake"`` but the release has no statistics.
    """
    if normalize == "lake":
        return lake_band_stats(spec, release)
    return given_stats(normalize, lake_option=True)


def given_stats(normalize: object, *, lake_option: bool = False) -> BandStats | None:
    """What ``normalize`` asks for when the lake is not at hand (everything but ``"lake"``).

    Args:
        normalize: False, True or ``"official"``, or a mapping ``band -> (mean, std)``.
        lake_option: Whether the caller takes ``"lake"`` too (the error then offers it).

    Raises:
        ConfigError: An unknown value, or a mapping without a std > 0 for some band.
    """
    if normalize is False:
        return None
    if normalize is True or normalize == "official":
        return BAND_STATS
    if isinstance(normalize, Mapping):
        bad = [b for b, (_, std) in normalize.items() if not std > 0]
        if bad:
            raise ConfigError(f"normalize: the std of band(s) {bad} must be > 0")
        return normalize
    if lake_option:
        raise ConfigError(
            f"normalize={normalize!r}: use False, True/'official', 'lake' or a mapping "
            "band -> (mean, std)"
        )
    raise ConfigError(
        f"normalize={normalize!r}: use False, True/'official' or a mapping band -> (mean, std) "
        "(the lake's own: lake.loader.stats.lake_band_stats(spec, release))"
    )
