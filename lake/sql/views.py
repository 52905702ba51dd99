"""The views of a SQL session over one release, and the documentation of each column.

Every view reads the release's Parquet objects directly (``read_parquet`` over an explicit list
of files, so DuckDB prunes the ``split=`` partitions and reads only the columns a query uses);
the derived views (``captions``, ``vqa``, ``refexp``, ``labels``) are plain SQL over
``annotations`` and ``patches``. :func:`schema_markdown` renders the documented schema from the
live views (``lake sql --schema`` and ``docs/sql.md``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Pixels along a patch side at 10 m (boxes in pixels are the 0..1 box times this).
PATCH_PIXELS = 120


@dataclass(frozen=True)
class ReleaseFiles:
    """Where a release's tables are, as paths or URLs DuckDB opens.

    Attributes:
        patches: The ``patches`` Parquet files.
        annotations: The ``annotations`` Parquet files (``.../split=<s>/part-0.parquet``).
        items: The STAC items (stac-geoparquet), or None when the release has none yet.
        text_index: The persisted text index (``docs``, ``terms``, ``postings``, ``rows``,
            ``stats``), or None when it was not built.
    """

    patches: Sequence[str]
    annotations: Sequence[str]
    items: str | None = None
    text_index: Mapping[str, str] | None = None

    def all_paths(self) -> list[str]:
        """Every file of the release the session may read."""
        out = [*self.patches, *self.annotations]
        if self.items:
            out.append(self.items)
        out.extend((self.text_index or {}).values())
        return out


@dataclass(frozen=True)
class ViewDoc:
    """The documentation of one view.

    Attributes:
        name: The view's name.
        summary: What one row is.
        columns: ``column -> description`` in view order (None: columns come from the data).
    """

    name: str
    summary: str
    columns: Mapping[str, str] | None = field(default=None)


def _sql_list(paths: Sequence[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


#: DuckDB types of the ``annotations`` columns (used when a release has no text rows).
ANNOTATION_TYPES: Mapping[str, str] = {
    "ID": "BIGINT",
    "s1_name": "VARCHAR",
    "patch_id": "VARCHAR",
    "input": "VARCHAR",
    "output": "VARCHAR",
    "type": "VARCHAR",
    "category": "VARCHAR",
    "split": "VARCHAR",
    "latitude": "DOUBLE",
    "longitude": "DOUBLE",
    "country": "VARCHAR",
    "season": "VARCHAR",
    "climate_zone": "VARCHAR",
    "box_x1": "FLOAT",
    "box_y1": "FLOAT",
    "box_x2": "FLOAT",
    "box_y2": "FLOAT",
    "options": "VARCHAR[]",
    "answer_index": "TINYINT",
    "answer_bool": "BOOLEAN",
    "refs": "VARCHAR[]",
    "points": "STRUCT(x FLOAT, y FLOAT)[]",
    "sample_index": "BIGINT",
}

_PAIR_COLUMNS = '"ID", patch_id, split'
_PLACE_COLUMNS = "country, season, climate_zone, latitude, longitude, sample_index"


def view_statements(files: ReleaseFiles, release: str) -> list[str]:
    """The ``CREATE VIEW`` statements of a release's views (``items`` only when present)."""
    if files.annotations:
        annotations = (
            f"SELECT * FROM read_parquet({_sql_list(files.annotations)}, hive_partitioning = true)"
        )
    else:
        cols = ", ".join(f'NULL::{t} AS "{c}"' for c, t in ANNOTATION_TYPES.items())
        annotations = f"SELECT {cols} WHERE false"
    px = PATCH_PIXELS
    pixels = ", ".join(
        f"round(box_{c}::DOUBLE * {px}, 4) AS px_{c}" for c in ("x1", "y1", "x2", "y2")
    )
    out = [
        f"CREATE VIEW patches AS SELECT * FROM read_parquet({_sql_list(files.patches)})",
        f"CREATE VIEW annotations AS {annotations}",
        f"""CREATE VIEW captions AS
            SELECT {_PAIR_COLUMNS}, output AS caption, {_PLACE_COLUMNS}
            FROM annotations WHERE type = 'captioning'""",
        f"""CREATE VIEW vqa AS
            SELECT {_PAIR_COLUMNS}, type, category, input AS question, options,
                   output AS answer, answer_index, answer_bool,
                   CASE WHEN type = 'mcq' THEN options[answer_index + 1]
                        WHEN answer_bool THEN 'yes' WHEN NOT answer_bool THEN 'no' END
                       AS answer_text,
                   refs, points, {_PLACE_COLUMNS}
            FROM annotations WHERE type IN ('binary', 'mcq')""",
        f"""CREATE VIEW refexp AS
            SELECT {_PAIR_COLUMNS}, category, input AS expression, refs, points,
                   output AS answer, box_x1 AS x1, box_y1 AS y1, box_x2 AS x2, box_y2 AS y2,
                   {pixels},
                   round((box_x2::DOUBLE - box_x1) * (box_y2::DOUBLE - box_y1), 6) AS area,
                   {_PLACE_COLUMNS}
            FROM annotations WHERE type = 'bounding box'""",
        """CREATE VIEW labels AS
            SELECT patch_id, unnest(labels) AS label, split, country, season, sample_index
            FROM patches""",
    ]
    if files.items:
        out.append(f"CREATE VIEW items AS SELECT * FROM read_parquet({_sql_list([files.items])})")
    else:
        message = (
            f"view items: release {release!r} has no STAC items yet "
            f"(stac/{release}/items.parquet is missing); build the release's STAC catalog first"
        )
        quoted = message.replace("'", "''")
        out.append(
            "CREATE VIEW items AS SELECT NULL::INTEGER AS missing FROM range(1) "
            f"WHERE error('{quoted}') IS NULL"
        )
    return out


_BOX = "the referred region's box, normalised to 0..1 (x: column / 120, y: row / 120)"
_PAIR = {
    "ID": "annotation row ID (BigEarthNet.txt `ID`, unique in the release)",
    "patch_id": "S2 patch id of the pair (joins `patches.patch_id`)",
    "split": "train, validation, test or bench (hive partition of `annotations`)",
}
_PLACE = {
    "country": "country of the patch",
    "season": "Spring, Summer, Fall or Winter (of the S2 acquisition)",
    "climate_zone": "Koeppen-Geiger climate zone",
    "latitude": "patch centre latitude (WGS 84)",
    "longitude": "patch centre longitude (WGS 84)",
    "sample_index": "position of the pair in the release's Zarr group (`sample` axis)",
}

VIEW_DOCS: tuple[ViewDoc, ...] = (
    ViewDoc(
        "patches",
        "one row per S1/S2 pair: the metadata, the georeference and the WGS 84 footprint",
        {
            "patch_id": "S2 patch id (`S2x_MSIL2A_<datetime>_N9999_R<orbit>_T<tile>_<x>_<y>`)",
            "labels": "the pair's CLC classes (19-class nomenclature)",
            "split": "train, validation or test",
            "country": "country of the patch",
            "s1_name": "the paired S1 patch name",
            "s2v1_name": "the pair's name in BigEarthNet v1 (null when new in v2)",
            "contains_seasonal_snow": "seasonal snow in the S2 patch",
            "contains_cloud_or_shadow": "clouds or cloud shadow in the S2 patch",
            "sample_index": "position of the pair in the release's Zarr group",
            "shard": "Zarr shard holding the pair",
            "tile": "MGRS tile (`33UUP`)",
            "patch_x": "column of the patch in its tile's 1200 m grid",
            "patch_y": "row of the patch in its tile's 1200 m grid",
            "s2_platform": "S2A or S2B",
            "s1_platform": "S1A or S1B",
            "s2_datetime": "S2 acquisition time (UTC)",
            "s1_datetime": "S1 acquisition time (UTC)",
            "season": "Spring, Summer, Fall or Winter (of the S2 acquisition)",
            "epsg": "EPSG code of the patch's UTM zone",
            "transform": (
                "affine transform of the 10 m grid, affine/rasterio order (a, b, c, d, e, f)"
            ),
            "centre_lon": "footprint centre longitude (WGS 84)",
            "centre_lat": "footprint centre latitude (WGS 84)",
            "bbox": "footprint bounds in WGS 84 (GeoParquet covering column)",
            "geometry": "footprint polygon (GEOMETRY, OGC:CRS84): use the ST_ functions",
        },
    ),
    ViewDoc(
        "annotations",
        "one row per BigEarthNet.txt row: the official columns unchanged, then parsed ones",
        {
            "ID": "annotation row ID (official)",
            "s1_name": "the paired S1 patch name (official)",
            "patch_id": "S2 patch id (official; joins `patches.patch_id`)",
            "input": "instruction or question, with `<ref>`/`<point>` markup (official)",
            "output": "reference answer (official)",
            "type": "binary, mcq, bounding box or captioning (official)",
            "category": "fine task: presence, area, counting, adjacency... (official)",
            "split": "train, validation, test or bench (official; hive partition)",
            "latitude": "patch centre latitude (official)",
            "longitude": "patch centre longitude (official)",
            "country": "country (official)",
            "season": "Spring, Summer, Fall or Winter (official)",
            "climate_zone": "Koeppen-Geiger climate zone (official)",
            "box_x1": "parsed box, left edge 0..1 (bounding box rows)",
            "box_y1": "parsed box, top edge 0..1 (bounding box rows)",
            "box_x2": "parsed box, right edge 0..1 (bounding box rows)",
            "box_y2": "parsed box, bottom edge 0..1 (bounding box rows)",
            "options": "parsed option texts, without their letters (mcq rows)",
            "answer_index": "0-based index of the answer in `options` (mcq rows)",
            "answer_bool": "parsed yes/no answer (binary rows)",
            "refs": "texts inside `<ref>..</ref>` of the input",
            "points": "`<point>(x, y)</point>` coordinates of the input, 0..1",
            "sample_index": "position of the pair in the release's Zarr group",
        },
    ),
    ViewDoc(
        "captions",
        "one row per caption (annotations of type `captioning`)",
        {**_PAIR, "caption": "the caption (official `output`)", **_PLACE},
    ),
    ViewDoc(
        "vqa",
        "one row per question (annotations of type `binary` or `mcq`)",
        {
            **_PAIR,
            "type": "binary or mcq",
            "category": "fine task (presence, area, counting, country, season...)",
            "question": "the question (official `input`; mcq options included)",
            "options": "mcq option texts, without their letters (null for binary)",
            "answer": "the official answer string (`yes`/`no`, or an option letter)",
            "answer_index": "0-based index of the answer in `options` (mcq)",
            "answer_bool": "the parsed yes/no answer (binary)",
            "answer_text": "the answer as text: the chosen option, or `yes`/`no`",
            "refs": "texts inside `<ref>..</ref>` of the question",
            "points": "`<point>(x, y)</point>` coordinates of the question, 0..1",
            **_PLACE,
        },
    ),
    ViewDoc(
        "refexp",
        "one row per referring expression (annotations of type `bounding box`)",
        {
            **_PAIR,
            "category": "fine task (reference, point...)",
            "expression": "the referring expression (official `input`)",
            "refs": "texts inside `<ref>..</ref>` of the expression",
            "points": "`<point>(x, y)</point>` coordinates of the expression, 0..1",
            "answer": "the official box string `[x1 y1, x2 y2]`",
            "x1": f"left edge, 0..1 ({_BOX})",
            "y1": "top edge, 0..1",
            "x2": "right edge, 0..1",
            "y2": "bottom edge, 0..1",
            "px_x1": f"left edge in pixels, 0..{PATCH_PIXELS} (first column)",
            "px_y1": f"top edge in pixels, 0..{PATCH_PIXELS} (first row)",
            "px_x2": f"right edge in pixels, 0..{PATCH_PIXELS} (last column + 1)",
            "px_y2": f"bottom edge in pixels, 0..{PATCH_PIXELS} (last row + 1)",
            "area": "box area as a fraction of the patch, 0..1",
            **_PLACE,
        },
    ),
    ViewDoc(
        "labels",
        "one row per pair and CLC class (the `labels` list of `patches`, unnested)",
        {
            "patch_id": "S2 patch id of the pair",
            "label": "one CLC class of the pair (19-class nomenclature)",
            "split": "train, validation or test",
            "country": "country of the patch",
            "season": "Spring, Summer, Fall or Winter",
            "sample_index": "position of the pair in the release's Zarr group",
        },
    ),
    ViewDoc(
        "items",
        "one row per STAC Item of the release (stac-geoparquet: `id`, `geometry`, `bbox`, "
        "the Item properties as columns, `assets`, `links`); present once the release's STAC "
        "catalog is built, otherwise querying it raises an error saying so",
        None,
    ),
)


def describe(con: Any, view: str) -> list[tuple[str, str]]:
    """``(column, type)`` of a view, as DuckDB sees it."""
    rows = con.execute(f'DESCRIBE "{view}"').fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def schemas(con: Any) -> dict[str, list[dict[str, str]]]:
    """Every view's columns with type and description (``items`` only when present)."""
    out: dict[str, list[dict[str, str]]] = {}
    for doc in VIEW_DOCS:
        columns = describe(con, doc.name)
        if doc.columns is None and [c for c, _ in columns] == ["missing"]:
            continue
        notes = doc.columns or {}
        out[doc.name] = [
            {"column": c, "type": t, "description": notes.get(c, "")} for c, t in columns
        ]
    return out


def schema_markdown(con: Any) -> str:
    """The documented schema of the views, as Markdown (``docs/sql.md`` embeds it)."""
    live = schemas(con)
    lines: list[str] = []
    for doc in VIEW_DOCS:
        lines += [f"### `{doc.name}`", "", doc.summary[0].upper() + doc.summary[1:] + ".", ""]
        if doc.columns is None:
            continue
        lines += ["| column | type | description |", "|---|---|---|"]
        for col in live[doc.name]:
            lines.append(f"| `{col['column']}` | `{col['type']}` | {col['description']} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def schema_text(con: Any) -> str:
    """The schema as plain text for a terminal (``lake sql --schema``)."""
    live = schemas(con)
    lines: list[str] = []
    for doc in VIEW_DOCS:
        lines.append(f"{doc.name}: {doc.summary}")
        if doc.name not in live:
            continue
        width = max(len(c["column"]) for c in live[doc.name])
        type_width = min(26, max(len(c["type"]) for c in live[doc.name]))
        for col in live[doc.name]:
            desc = f"  {col['description']}" if col["description"] else ""
            lines.append(f"  {col['column']:<{width}}  {col['type']:<{type_width}}{desc}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
