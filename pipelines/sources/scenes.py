"""Sentinel-2 L2A scenes from any STAC API: the search, the asset keys, the harmonisation.

What the time-series job (:mod:`pipelines.jobs.timeseries`) needs to know about the public
catalogues users point it at, kept apart from the cutting:

* **Asset keys.** Earth Search (``earth-search.aws.element84.com/v1``) names the band assets by
  their common names (``coastal, blue, green, red, rededge1..3, nir, nir08, nir09, swir16,
  swir22, scl``); the Planetary Computer (``planetarycomputer.microsoft.com/api/stac/v1``) by the
  ESA band (``B01..B12, B8A, SCL``). :func:`canonical_item` renames either to the ESA names, so one
  ``stackstac.stack`` call reads items of both.
* **Harmonisation.** From processing baseline 04.00 (25 January 2022) ESA adds 1000 to every L2A
  reflectance DN (``BOA_ADD_OFFSET = -1000``). :func:`harmonise` brings such DNs back to the old
  scale the way the Planetary Computer's ``harmonize_to_old`` does (clip at 1000, subtract 1000;
  see its "Sentinel-2 baseline change" example notebook), so a series spanning 2022 stays
  comparable and matches BigEarthNet's values. Items whose offset was already removed
  (Earth Search's ``earthsearch:boa_offset_applied: true``) are left alone.
* **Signing.** Planetary Computer assets need a SAS token: when the optional
  ``planetary-computer`` package is importable, :func:`sign_item` signs the items of that API
  (no hard dependency; other catalogues are left unsigned).
* **Cloud filter.** ``--max-cloud`` goes to the server as the STAC ``query`` extension
  (``eo:cloud_cover < N``) when the server conforms to it (Earth Search and the Planetary
  Computer do) and is always applied again here, so a server without the extension cannot hand
  back cloudy scenes silently.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import numpy as np

from lake.bigearthnet import S2_BANDS
from lake.errors import ConfigError, LakeError

Catalogue = Literal["earth-search", "planetary-computer"]

#: Earth Search's asset key of each ESA band (and of the scene classification).
EARTH_SEARCH_KEYS: Mapping[str, str] = {
    "B01": "coastal",
    "B02": "blue",
    "B03": "green",
    "B04": "red",
    "B05": "rededge1",
    "B06": "rededge2",
    "B07": "rededge3",
    "B08": "nir",
    "B8A": "nir08",
    "B09": "nir09",
    "B11": "swir16",
    "B12": "swir22",
    "SCL": "scl",
}
#: The Planetary Computer's asset keys are the ESA band names themselves.
PLANETARY_COMPUTER_KEYS: Mapping[str, str] = {b: b for b in (*S2_BANDS, "SCL")}
ASSET_KEYS: Mapping[Catalogue, Mapping[str, str]] = {
    "earth-search": EARTH_SEARCH_KEYS,
    "planetary-computer": PLANETARY_COMPUTER_KEYS,
}
#: The processing baseline from which L2A DNs carry the +1000 offset.
OFFSET_BASELINE = (4, 0)
BOA_OFFSET = 1000
#: Scene classification (SCL) classes: no data, saturated or defective, cloud shadow, cloud of
#: medium and high probability, thin cirrus (ESA's Sentinel-2 L2A product definition).
SCL_NODATA = 0
SCL_CLOUDY: frozenset[int] = frozenset({3, 8, 9, 10})
SCL_INVALID: frozenset[int] = frozenset({0, 1, 3, 8, 9, 10})


class SceneSearchError(LakeError, ValueError):
    """The scene search could not run or found nothing usable (the message says what to do)."""


def catalogue_of(item: Any) -> Catalogue:
    """Which naming an item's assets follow.

    Raises:
        SceneSearchError: The item has neither naming's blue band (the message lists its assets).
    """
    assets = item.assets
    if "B02" in assets:
        return "planetary-computer"
    if "blue" in assets:
        return "earth-search"
    raise SceneSearchError(
        f"scene {item.id!r} has neither Earth Search nor Planetary Computer band assets "
        f"(it has {sorted(assets)[:20]}): point --stac at a Sentinel-2 L2A collection"
    )


def canonical_item(item: Any, bands: Sequence[str]) -> Any:
    """A copy of a pystac Item whose assets are the ESA band names ``bands`` (and nothing else).

    Raises:
        SceneSearchError: A band's asset is missing from the item.
    """
    keys = ASSET_KEYS[catalogue_of(item)]
    out = item.clone()
    missing = [b for b in bands if keys[b] not in item.assets]
    if missing:
        raise SceneSearchError(
            f"scene {item.id!r} has no asset for band(s) {missing} "
            f"(looked for {[keys[b] for b in missing]})"
        )
    out.assets = {}
    for b in bands:
        asset = item.assets[keys[b]].clone()
        asset.owner = out
        out.assets[b] = asset
    return out


def baseline_of(item: Any) -> tuple[int, int] | None:
    """The item's ``s2:processing_baseline`` as ``(major, minor)``, None when it has none."""
    text = item.properties.get("s2:processing_baseline")
    m = re.fullmatch(r"\s*(\d+)\.(\d+)\s*", str(text)) if text is not None else None
    return (int(m.group(1)), int(m.group(2))) if m else None


def needs_harmonising(item: Any) -> bool:
    """Whether the item's reflectance DNs carry the +1000 offset of baseline 04.00 and later.

    Items without a baseline are taken as older (unchanged); Earth Search's
    ``earthsearch:boa_offset_applied: true`` says the offset was removed already.
    """
    if item.properties.get("earthsearch:boa_offset_applied") is True:
        return False
    baseline = baseline_of(item)
    return baseline is not None and baseline >= OFFSET_BASELINE


def harmonise(values: np.ndarray) -> np.ndarray:
    """Remove the baseline-04.00 offset: ``clip(v, 1000) - 1000`` (nodata 0 stays 0), uint16."""
    return (np.maximum(values, BOA_OFFSET) - BOA_OFFSET).astype(np.uint16)


def sign_item(item: Any, stac_url: str) -> Any:
    """Sign a Planetary Computer item's asset hrefs when ``planetary-computer`` is installed.

    Items of other APIs, or without the package, come back unchanged.
    """
    if "planetarycomputer" not in stac_url:
        return item
    try:
        import planetary_computer  # type: ignore[import-not-found]
    except ImportError:
        return item
    return planetary_computer.sign(item)


# ---------------------------------------------------------------- the time range


@dataclass(frozen=True)
class TimeRange:
    """A closed UTC interval, as given to ``--datetime``.

    Attributes:
        start: First instant.
        end: Last instant (inclusive).
        text: The interval as the user wrote it.
    """

    start: datetime
    end: datetime
    text: str

    @property
    def stac(self) -> str:
        """As a STAC API ``datetime`` parameter (RFC 3339 interval)."""
        fmt = "%Y-%m-%dT%H:%M:%SZ"
        return f"{self.start.strftime(fmt)}/{self.end.strftime(fmt)}"


def _bound(text: str, end: bool) -> datetime:
    """One end of an interval: ``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD`` or a full ISO instant."""
    m = re.fullmatch(r"(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?", text)
    if m:
        y, mo, d = int(m.group(1)), m.group(2), m.group(3)
        if d is not None:
            first = date(y, int(mo), int(d))
            last = first
        elif mo is not None:
            first = date(y, int(mo), 1)
            nxt = date(y + (int(mo) == 12), int(mo) % 12 + 1, 1)
            last = nxt - timedelta(days=1)
        else:
            first, last = date(y, 1, 1), date(y, 12, 31)
        day = last if end else first
        t = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return t + timedelta(days=1, seconds=-1) if end else t
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_datetime(text: str) -> TimeRange:
    """Parse ``--datetime``: ``2019``, ``2019-01/2019-12``, ``2019-03-01/2019-03-31``, ISO times.

    Raises:
        ConfigError: Not one of these forms, an open end (``..``), or the end before the start.
    """
    parts = text.split("/")
    try:
        if len(parts) == 1:
            start, end = _bound(parts[0], False), _bound(parts[0], True)
        elif len(parts) == 2 and ".." not in parts and all(parts):
            start, end = _bound(parts[0], False), _bound(parts[1], True)
        else:
            raise ValueError("not one date or a closed interval start/end")
    except ValueError as exc:
        raise ConfigError(
            f"--datetime {text!r} is not a date or a closed interval ({exc}): use e.g. "
            "2019-01/2019-12, 2019-06-01/2019-06-30 or 2019"
        ) from None
    if end < start:
        raise ConfigError(f"--datetime {text!r}: the end is before the start")
    return TimeRange(start, end, text)


# ---------------------------------------------------------------- the search


def search_scenes(
    stac_url: str,
    collection: str,
    when: TimeRange,
    bbox: Sequence[float],
    *,
    max_cloud: float | None = None,
    max_items: int = 10_000,
    timeout: float = 60.0,
) -> list[Any]:
    """Search a STAC API for the scenes of a collection over ``bbox`` in a time range.

    Args:
        stac_url: The API's landing page.
        collection: The collection id (``sentinel-2-l2a`` on both public catalogues).
        when: The time range.
        bbox: ``[west, south, east, north]`` in WGS 84.
        max_cloud: Keep scenes with ``eo:cloud_cover`` below this (percent); None: all.
        max_items: At most this many scenes.
        timeout: Seconds to wait for each answer of the API (pystac-client's default waits
            forever).

    Returns:
        pystac Items, by datetime then id.

    Raises:
        SceneSearchError: The API does not answer, the collection does not exist there, or no
            scene matches.
    """
    import pystac_client
    from pystac_client.conformance import ConformanceClasses
    from pystac_client.exceptions import APIError

    try:
        client = pystac_client.Client.open(stac_url, timeout=timeout)
    except (APIError, OSError, ValueError) as exc:
        raise SceneSearchError(f"--stac {stac_url}: no STAC API answers there ({exc})") from None
    try:
        found = client.get_collection(collection)
    except (APIError, OSError, KeyError, ValueError):
        found = None
    if found is None or found.id != collection:
        known = sorted(c.id for c in client.get_collections())
        raise SceneSearchError(
            f"--collection {collection!r} is not a collection of {stac_url}; "
            f"it has: {', '.join(known[:20]) or 'none'}"
        )
    kwargs: dict[str, Any] = {
        "collections": [collection],
        "datetime": when.stac,
        "bbox": list(bbox),
        "max_items": max_items,
    }
    if max_cloud is not None and client.conforms_to(ConformanceClasses.QUERY):
        kwargs["query"] = {"eo:cloud_cover": {"lt": max_cloud}}
    try:
        with warnings.catch_warnings():
            # pystac-client warns when a server does not declare item-search conformance.
            warnings.simplefilter("ignore")
            items = list(client.search(**kwargs).items())
    except (APIError, OSError) as exc:
        raise SceneSearchError(f"--stac {stac_url}: the search failed ({exc})") from None
    if max_cloud is not None:
        items = [i for i in items if float(i.properties.get("eo:cloud_cover", 0.0)) < max_cloud]
    if not items:
        cloud = f" with eo:cloud_cover < {max_cloud}" if max_cloud is not None else ""
        raise SceneSearchError(
            f"no scene of {collection!r} at {stac_url} over bbox {list(bbox)} in "
            f"{when.text}{cloud}: widen --datetime or --max-cloud, or check the selection"
        )
    return sorted(items, key=lambda i: (i.datetime or datetime.min.replace(tzinfo=UTC), i.id))
