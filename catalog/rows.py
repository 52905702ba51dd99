"""Rows of ``items.parquet`` back to STAC Item dicts.

A search reads only the columns that vary from Item to Item (the others are marked constant in
the file's schema, see :func:`catalog.items.constants_of`) and the asset fields that vary,
selected as ``assets.<key>.<field>``; this module puts the Item back together, turns WKB into
GeoJSON and timestamps into RFC 3339, and resolves relative hrefs against the catalog's folder.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa

from catalog.fields import TOP_LEVEL

#: Alias prefix of an asset field in a search's SELECT (``assets.s1.href``).
ASSET_PREFIX = "assets."


def rfc3339(value: datetime) -> str:
    """A UTC timestamp as RFC 3339 (``Z``; fraction only when there is one)."""
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "Z"


def resolve(href: str, base: str | None) -> str:
    """``href`` made absolute against ``base`` (a folder URL ending in ``/``) if relative."""
    if base is None or "://" in href or href.startswith("/"):
        return href
    path, sep, fragment = href.partition("#")
    scheme, _, root = base.partition("://")
    joined = posixpath.normpath(posixpath.join(root, path))
    return f"{scheme}://{joined}" + (sep + fragment if sep else "")


def _geojson(wkb: Sequence[bytes | None]) -> list[dict[str, Any] | None]:
    import shapely

    geoms = shapely.from_wkb(list(wkb))
    texts = shapely.to_geojson(geoms)
    return [json.loads(t) if t is not None else None for t in texts]


def _value(value: Any) -> Any:
    if isinstance(value, datetime):
        return rfc3339(value)
    return value


def _resolve_links(links: list[dict[str, Any]], base: str | None) -> list[dict[str, Any]]:
    return [{**link, "href": resolve(str(link["href"]), base)} for link in links]


def to_items(
    table: pa.Table,
    constants: Mapping[str, Any],
    *,
    base: str | None = None,
    keep: Callable[[str], bool] | None = None,
) -> list[dict[str, Any]]:
    """Build Item dicts from the rows of a search.

    Args:
        table: The selected columns: top-level Item keys, property names, and asset fields as
            ``assets.<key>.<field>``.
        constants: The constant columns (and ``assets`` fields) of the file.
        base: The URL of the catalog's folder (``.../stac/<release>/``) to resolve relative
            hrefs against; None keeps them relative.
        keep: Which constant top-level keys and properties (``properties.<name>``) to fill in
            (all when None); see :meth:`catalog.fields.Fields.needs`.

    Returns:
        One dict per row, keys in the usual STAC order, constants filled in.
    """
    wanted = keep or (lambda _: True)
    names = table.column_names
    rows = table.to_pylist()
    geometries = _geojson(table["geometry"].to_pylist()) if "geometry" in names else None
    asset_constants: Mapping[str, Mapping[str, Any]] = constants.get("assets", {})
    selected_assets = sorted({n.split(".")[1] for n in names if n.startswith(ASSET_PREFIX)})
    fixed_top: dict[str, Any] = {}
    fixed_props: dict[str, Any] = {}
    for key, value in constants.items():
        if key in TOP_LEVEL:
            if key != "assets" and wanted(key):
                fixed_top[key] = value
        elif wanted(f"properties.{key}"):
            fixed_props[key] = value
    if "links" in fixed_top:
        fixed_top["links"] = _resolve_links(fixed_top["links"], base)
    plain = [n for n in names if not n.startswith(ASSET_PREFIX) and n not in TOP_LEVEL]
    out = []
    for i, row in enumerate(rows):
        top = {**fixed_top, **{k: row[k] for k in TOP_LEVEL if k in row}}
        props = {k: _value(row[k]) for k in plain if row[k] is not None}
        for key, value in fixed_props.items():
            props.setdefault(key, value)
        item: dict[str, Any] = {}
        for key in ("type", "stac_version", "stac_extensions", "id", "collection"):
            if key in top:
                item[key] = top[key]
        if geometries is not None:
            item["geometry"] = geometries[i]
        if top.get("bbox") is not None:
            b = top["bbox"]
            item["bbox"] = [b["xmin"], b["ymin"], b["xmax"], b["ymax"]]
        item["properties"] = props
        if "links" in top:
            links = top["links"]
            if "links" not in fixed_top:
                links = _resolve_links(links, base)
            item["links"] = [dict(link) for link in links]
        if selected_assets:
            item["assets"] = _assets(row, selected_assets, asset_constants, base)
        out.append(item)
    return out


def _assets(
    row: Mapping[str, Any],
    keys: Sequence[str],
    constants: Mapping[str, Mapping[str, Any]],
    base: str | None,
) -> dict[str, dict[str, Any]]:
    assets: dict[str, dict[str, Any]] = {}
    for key in keys:
        asset: dict[str, Any] = {}
        prefix = f"{ASSET_PREFIX}{key}."
        varying = {n[len(prefix) :]: v for n, v in row.items() if n.startswith(prefix)}
        if "href" in varying:
            asset["href"] = resolve(str(varying.pop("href")), base)
        asset.update(constants.get(key, {}))
        asset.update({k: v for k, v in varying.items() if v is not None})
        if "bigearthnet:shard_object" in asset:
            asset["bigearthnet:shard_object"] = resolve(asset["bigearthnet:shard_object"], base)
        assets[key] = asset
    return assets


def _repeat(value: Any, kind: pa.DataType, n: int) -> pa.Array:
    return pa.array([value], type=kind).take(pa.array([0] * n, pa.int64()))


def to_table(
    table: pa.Table,
    schema: pa.Schema,
    constants: Mapping[str, Any],
    keep: Callable[[str], bool] | None = None,
) -> pa.Table:
    """The rows of a search in the file's own stac-geoparquet layout, constants filled in.

    Args:
        table: The selected columns (as for :func:`to_items`).
        schema: The schema of ``items.parquet``.
        constants: Its constant columns and asset fields.
        keep: Which top-level keys and properties (``properties.<name>``) to return (all when
            None); ``id`` is always returned.
    """
    wanted = keep or (lambda _: True)
    n = table.num_rows
    columns: list[pa.Array | pa.ChunkedArray] = []
    fields: list[pa.Field] = []
    for f in schema:
        key = f.name if f.name in TOP_LEVEL else f"properties.{f.name}"
        if f.name != "id" and not wanted(key):
            continue
        if f.name == "assets":
            column = _assets_column(table, f, constants.get("assets", {}), wanted)
            if column is None:
                continue
            columns.append(column)
            fields.append(pa.field(f.name, column.type, metadata=f.metadata))
            continue
        if f.name in table.column_names:
            columns.append(table[f.name].cast(f.type))
        elif f.name in constants:
            columns.append(_repeat(constants[f.name], f.type, n))
        else:
            continue
        fields.append(f)
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def _assets_column(
    table: pa.Table,
    field: pa.Field,
    constants: Mapping[str, Mapping[str, Any]],
    wanted: Callable[[str], bool],
) -> pa.StructArray | None:
    n = table.num_rows
    assets: list[pa.Array] = []
    asset_fields: list[pa.Field] = []
    for asset in field.type:
        if not wanted(f"assets.{asset.name}"):
            continue
        children: list[pa.Array] = []
        for leaf in asset.type:
            alias = f"{ASSET_PREFIX}{asset.name}.{leaf.name}"
            if alias in table.column_names:
                children.append(table[alias].combine_chunks().cast(leaf.type))
            else:
                children.append(_repeat(constants[asset.name][leaf.name], leaf.type, n))
        assets.append(pa.StructArray.from_arrays(children, fields=list(asset.type)))
        asset_fields.append(asset)
    if not assets:
        return None
    return pa.StructArray.from_arrays(assets, fields=asset_fields)
