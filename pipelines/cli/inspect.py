"""``lake info`` and ``lake show``: what a lake holds, and one pair as a picture."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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


def info(
    lake: LakeOpt = None,
    endpoint_url: EndpointOpt = None,
    key: KeyOpt = None,
    secret: SecretOpt = None,
    region: RegionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the lake's releases and what each holds."""
    from lake.reader import open_lake

    spec = spec_of(lake, endpoint_url, key, secret, region)
    with errors(spec):
        lk = open_lake(spec)
        rels: dict[str, dict[str, Any]] = {}
        for name in lk.releases:
            m = lk.release(name).manifest
            rels[name] = {
                "counts": m["counts"],
                "bytes": m["total_bytes"],
                "objects": len(m["objects"]),
                "source": m["source"],
            }
        doc = {"lake": lk.spec.url, "current": lk.root.get("current"), "releases": rels}
    lines = [f"lake {doc['lake']} (current release: {doc['current']})"]
    for name, r in rels.items():
        c = r["counts"]
        lines.append(
            f"  {name}: {c['patches']} pairs, {c['annotations'].get('total', 0)} annotation "
            f"rows, {r['objects']} objects, {r['bytes'] / 1e6:.1f} MB; "
            f"quarantined {c.get('quarantined') or 0}"
        )
    emit(doc, as_json, "\n".join(lines))


def show(
    patch_id: Annotated[str, typer.Argument(help="The S2 patch id of the pair.")],
    out: Annotated[Path, typer.Option("--out", help="PNG to write.")] = Path("patch.png"),
    lake: LakeOpt = None,
    release: ReleaseOpt = None,
    endpoint_url: EndpointOpt = None,
    key: KeyOpt = None,
    secret: SecretOpt = None,
    region: RegionOpt = None,
) -> None:
    """Render a pair: true colour, SAR composite and reference map side by side."""
    from lake.reader import open_lake
    from lake.render import render_patch

    spec = spec_of(lake, endpoint_url, key, secret, region)
    with errors(spec):
        patch = open_lake(spec).release(release).patch(patch_id)
    with errors(None, OSError):
        path = render_patch(patch, out)
    typer.echo(path)
