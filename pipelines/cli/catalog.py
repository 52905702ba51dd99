"""The catalog commands of the ``lake`` CLI: ``catalog build``, ``search`` and ``serve``.

``pipelines.cli`` registers them; this module does not import it (so either can be imported
first), and the few shared helpers are imported from it when a command runs.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer

from pipelines.cli.common import (
    EndpointOpt,
    JsonOpt,
    KeyOpt,
    LakeOpt,
    RegionOpt,
    ReleaseOpt,
    SecretOpt,
    emit,
    errors,
    spec_of,
)


def catalog_build(
    lake: LakeOpt = None,
    release: ReleaseOpt = None,
    endpoint_url: EndpointOpt = None,
    key: KeyOpt = None,
    secret: SecretOpt = None,
    region: RegionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Rebuild a release's STAC catalog and check it is byte for byte the stored one.

    Ingest builds the catalog of every release. A release is immutable, so this never rewrites
    it: it fails (exit 1) if the rebuilt catalog would differ.
    """
    from catalog.build import verify_catalog
    from lake.reader import open_lake

    spec = spec_of(lake, endpoint_url, key, secret, region)
    with errors(spec):
        name = open_lake(spec).release(release).name
        check = verify_catalog(spec, name)
    doc = {
        "lake": spec.url,
        "release": check.release,
        "items": check.n_items,
        "files": dict(check.files),
        "identical": True,
    }
    emit(
        doc,
        as_json,
        f"catalog of release {check.release} of {spec.url}: {check.n_items} items; rebuilt "
        f"{len(check.files)} files, identical to the stored ones",
    )


def search(
    lake: LakeOpt = None,
    release: ReleaseOpt = None,
    bbox: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--bbox", help="minx,miny,maxx,maxy in WGS 84 degrees"),
    ] = None,
    intersects: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--intersects", help="A GeoJSON geometry (JSON text)"),
    ] = None,
    datetime: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--datetime", help="Instant, date or interval: 2017-06/2017-09, ../2017-09"),
    ] = None,
    filter: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--filter", help="CQL2 filter, e.g. \"country = 'Portugal'\""),
    ] = None,
    filter_lang: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--filter-lang", help="cql2-text | cql2-json (default: guessed)"),
    ] = None,
    query: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--query", help='STAC query extension JSON, e.g. \'{"country": {"eq": "Austria"}}\''
        ),
    ] = None,
    ids: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--ids", help="Comma-separated item ids"),
    ] = None,
    collections: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--collections", help="Comma-separated collection ids"),
    ] = None,
    sortby: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--sortby", help="+field,-field (default: by id)"),
    ] = None,
    fields: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--fields", help="field,-field (with --json)"),
    ] = None,
    limit: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--limit", min=1, help="Items to print (default: every match)"),
    ] = None,
    token: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--token", help="Paging token printed by a previous --limit search"),
    ] = None,
    endpoint_url: EndpointOpt = None,
    key: KeyOpt = None,
    secret: SecretOpt = None,
    region: RegionOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the Items as a GeoJSON FeatureCollection.")
    ] = False,
) -> None:
    """Search the STAC Items of a release; prints matching ids (or GeoJSON with --json).

    With --limit, the token of the next page (if any) is printed on stderr.
    """
    from catalog.fields import DEFAULT, Fields
    from catalog.request import SearchRequest
    from catalog.search import Catalog

    given = {
        "bbox": bbox,
        "intersects": intersects,
        "datetime": datetime,
        "filter": filter,
        "filter_lang": filter_lang,
        "query": query,
        "ids": ids,
        "collections": collections,
        "sortby": sortby,
        "limit": limit,
        "token": token,
    }
    id_only = Fields(("id",), tuple(k for k in DEFAULT if k != "id"), given=True)

    spec = spec_of(lake, endpoint_url, key, secret, region)
    with errors(spec):
        params = {**given, "fields": fields if as_json else id_only}
        request = SearchRequest.from_params(params, default_limit=None)
        with Catalog(spec, release) as cat:
            page = cat.search(request)
            if as_json:
                doc = {
                    "type": "FeatureCollection",
                    "features": page.items(),
                    "numberReturned": page.table.num_rows,
                }
                if page.next_token:
                    doc["next_token"] = page.next_token
                typer.echo(json.dumps(doc))
            else:
                for item_id in page.table["id"].to_pylist():
                    sys.stdout.write(f"{item_id}\n")
    if page.next_token:
        typer.echo(f"more results: --token {page.next_token}", err=True)


def serve(
    lake: LakeOpt = None,
    release: ReleaseOpt = None,
    host: Annotated[
        str, typer.Option("--host", help="Interface to bind (0.0.0.0 exposes it to the network)")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port.")] = 8000,
    endpoint_url: EndpointOpt = None,
    key: KeyOpt = None,
    secret: SecretOpt = None,
    region: RegionOpt = None,
) -> None:
    """Serve a release's catalog as a STAC API (pystac-client opens it) until Ctrl-C."""
    from catalog.api import create_app
    from catalog.server import serve as run

    spec = spec_of(lake, endpoint_url, key, secret, region)
    with errors(spec):
        app = create_app(spec, release)
    typer.echo(
        f"# STAC API of release {app.state.catalog.release} of {spec.url} at http://{host}:{port}/"
        " (Ctrl-C stops)",
        err=True,
    )
    with errors():
        run(app, host, port)


catalog_app = typer.Typer(help="The STAC catalog of a release.", no_args_is_help=True)
catalog_app.command("build")(catalog_build)
