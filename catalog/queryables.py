"""What a search may filter and sort on: the allow-list of queryable properties.

A filter or a ``sortby`` names properties; each name is looked up here and mapped to a column of
``items.parquet``, quoted by us. A name that is not here is an error (never pasted into SQL).
The same list, as JSON Schema, is the API's ``/queryables`` document.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from catalog.items import ANNOTATION_COLUMNS
from catalog.stac import COLLECTION_ID
from lake.bigearthnet import CLASSES_SORTED, SEASONS, SPLITS
from lake.errors import QueryError

Kind = Literal["string", "number", "boolean", "timestamp", "geometry", "array"]


@dataclass(frozen=True)
class Queryable:
    """One property a filter may use.

    Attributes:
        name: The property name in CQL2 and ``sortby`` (``country``, ``proj:code``).
        column: The column of ``items.parquet`` holding it.
        kind: Its value kind (drives type checks of filters).
        schema: Its JSON Schema (for ``/queryables``).
        sortable: Whether ``sortby`` accepts it.
    """

    name: str
    column: str
    kind: Kind
    schema: dict[str, Any]
    sortable: bool = True

    @property
    def sql(self) -> str:
        """The quoted column (a constant of this module, never user text)."""
        return '"' + self.column.replace('"', '""') + '"'


def _string(description: str, enum: Iterable[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "string", "description": description}
    if enum is not None:
        out["enum"] = list(enum)
    return out


def _time(description: str) -> dict[str, Any]:
    return {"type": "string", "format": "date-time", "description": description}


def _int(description: str) -> dict[str, Any]:
    return {"type": "integer", "minimum": 0, "description": description}


_ALL: tuple[Queryable, ...] = (
    Queryable("id", "id", "string", _string("Item id: the S2 patch id")),
    Queryable("collection", "collection", "string", _string("Collection id", [COLLECTION_ID])),
    Queryable(
        "geometry",
        "geometry",
        "geometry",
        {"$ref": "https://geojson.org/schema/Geometry.json", "description": "Footprint"},
        sortable=False,
    ),
    Queryable("datetime", "datetime", "timestamp", _time("Sentinel-2 sensing time")),
    Queryable("start_datetime", "start_datetime", "timestamp", _time("First of S1 and S2")),
    Queryable("end_datetime", "end_datetime", "timestamp", _time("Last of S1 and S2")),
    Queryable("platform", "platform", "string", _string("Sentinel-2 platform")),
    Queryable("constellation", "constellation", "string", _string("Constellation")),
    Queryable("s1_platform", "s1_platform", "string", _string("Sentinel-1 platform")),
    Queryable("proj:code", "proj:code", "string", _string("UTM zone of the tile (EPSG:326zz)")),
    Queryable("split", "split", "string", _string("BigEarthNet split", SPLITS)),
    Queryable(
        "ml-aoi:split",
        "ml-aoi:split",
        "string",
        _string("ml-aoi split", ("train", "validate", "test")),
    ),
    Queryable(
        "labels",
        "labels",
        "array",
        {
            "type": "array",
            "items": {"type": "string", "enum": list(CLASSES_SORTED)},
            "description": "The 19-class labels of the pair",
        },
        sortable=False,
    ),
    Queryable("country", "country", "string", _string("Country of the patch")),
    Queryable("season", "season", "string", _string("Season of the S2 acquisition", SEASONS)),
    Queryable("tile", "tile", "string", _string("MGRS tile (e.g. 33UUP)")),
    Queryable("grid:code", "grid:code", "string", _string("MGRS tile as a grid code")),
    Queryable("s1_name", "s1_name", "string", _string("Sentinel-1 patch name")),
    Queryable("s2v1_name", "s2v1_name", "string", _string("BigEarthNet v1 patch name")),
    Queryable("sample_index", "sample_index", "number", _int("Row along the Zarr `sample`")),
    Queryable("shard", "shard", "number", _int("Zarr shard holding the pair")),
    Queryable(
        "contains_seasonal_snow",
        "contains_seasonal_snow",
        "boolean",
        {"type": "boolean", "description": "Seasonal snow in the patch"},
    ),
    Queryable(
        "contains_cloud_or_shadow",
        "contains_cloud_or_shadow",
        "boolean",
        {"type": "boolean", "description": "Cloud or shadow in the patch"},
    ),
    *(
        Queryable(c, c, "number", _int(f"BigEarthNet.txt rows of type {c[len('annotations_') :]}"))
        for c in ANNOTATION_COLUMNS
    ),
)


@dataclass(frozen=True)
class Queryables:
    """The queryables of one catalog (those of :data:`_ALL` whose column it has)."""

    by_name: dict[str, Queryable]

    @classmethod
    def for_columns(cls, columns: Iterable[str]) -> Queryables:
        """The queryables whose columns exist in a catalog with these columns."""
        have = set(columns)
        return cls({q.name: q for q in _ALL if q.column in have})

    def get(self, name: str) -> Queryable:
        """The queryable called ``name``.

        Raises:
            QueryError: It is not queryable here (the message lists what is).
        """
        q = self.by_name.get(name.removeprefix("properties."))
        if q is None:
            raise QueryError(
                f"unknown property {name!r}: queryable properties are "
                f"{', '.join(sorted(self.by_name))} (see /queryables)"
            )
        return q

    def json_schema(self, url: str, title: str) -> dict[str, Any]:
        """The ``/queryables`` document (JSON Schema 2019-09, as OGC API Features asks)."""
        return {
            "$schema": "https://json-schema.org/draft/2019-09/schema",
            "$id": url,
            "type": "object",
            "title": title,
            "properties": {n: dict(q.schema) for n, q in sorted(self.by_name.items())},
            "additionalProperties": False,
        }
