"""The shapes of a lake's JSON documents: the root document and the release manifest.

``lake.json`` (:class:`RootDocument`) lists the published releases and names the current one;
``releases/<r>/manifest.json`` (:class:`Manifest`) lists every object of release ``<r>`` with
its size and checksum. :mod:`lake.release` reads and writes them; ``docs/format.md`` describes
them for readers without the project. These are types only (no I/O): a document read from
storage has these keys because the lake's writers put them there.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class ReleaseRecord(TypedDict):
    """One published release in ``lake.json``.

    Attributes:
        manifest: The manifest's path relative to the lake root.
        published: When it was published (ISO 8601, UTC, seconds).
        patches: Its number of pairs.
    """

    manifest: str
    published: str
    patches: int | None


class RootDocument(TypedDict):
    """``lake.json``: the layout version, the published releases, the current one.

    Attributes:
        layout_version: The layout the lake follows (:data:`lake.layout.LAYOUT_VERSION`).
        releases: Release name -> its record (by name: the document is written with sorted
            keys; ``published`` says when).
        current: The release readers get by default (None before the first publish).
    """

    layout_version: int
    releases: dict[str, ReleaseRecord]
    current: str | None


class ObjectRecord(TypedDict):
    """One object of a release in its manifest.

    Attributes:
        path: Path relative to the lake root.
        size: Bytes.
        sha256: Hex SHA-256 of its content.
    """

    path: str
    size: int
    sha256: str


class ReplacedObject(TypedDict):
    """An object a derived product replaced, with the checksum it had before."""

    path: str
    sha256_before: str


class Amendment(TypedDict):
    """One change a derived product made to a published release's manifest.

    Attributes:
        time: When (ISO 8601, UTC, seconds).
        derived: The product's name (a key of the manifest's ``derived`` section).
        added: Paths of the objects it added.
        replaced: The objects it replaced.
    """

    time: str
    derived: str
    added: list[str]
    replaced: list[ReplacedObject]


class Manifest(TypedDict):
    """``releases/<r>/manifest.json``: every object of a release, and how it came to be.

    Attributes:
        layout_version: The layout the release was written in.
        release: The release name.
        source: The source's kind and fingerprint (a rerun from another source is refused).
        parameters: The ingest parameters.
        counts: Pairs (``patches``), text rows (``annotations``), quarantined records.
        objects: Every object of the release.
        total_bytes: The sum of the objects' sizes.
        derived: Derived products added later (name -> their parameters and counts).
        amendments: What each derived product added or replaced, in order.
    """

    layout_version: int
    release: str
    source: dict[str, Any]
    parameters: dict[str, Any]
    counts: dict[str, Any]
    objects: list[ObjectRecord]
    total_bytes: int
    derived: NotRequired[dict[str, dict[str, Any]]]
    amendments: NotRequired[list[Amendment]]


class TimeSeriesDocument(TypedDict):
    """``timeseries/<r>/<part>/timeseries.json``: one time-series part of a release.

    Attributes:
        part: The part's name.
        release: The release whose patches were cut.
        parameters: How it was made (STAC API, collection, datetime, cloud limit, composite).
        arrays: Array name -> its bands (``s2_10m``, ``s2_20m``, ``s2_60m``; ``scl`` has none).
        patches: Patch ids in series order (row ``i`` of the composites).
        acquisitions: Rows of the raw arrays (one per patch and scene).
        composite: ``none``, ``10D`` or ``month``.
        times: Start of each composite period (ISO 8601, UTC); empty without composites.
    """

    part: str
    release: str
    parameters: dict[str, Any]
    arrays: dict[str, list[str]]
    patches: list[str]
    acquisitions: int
    composite: str
    times: list[str]
