"""Search benchmark: the catalog of all 480,038 real BigEarthNet v2.0 pairs, six query shapes.

It builds the release's catalog without rasters: the ``patches`` table straight from the official
metadata.parquet (georeference from the MGRS grid, ``lake.grid``), written into a lake folder,
then the catalog builder that ingest uses (``catalog.build.render_catalog``). Then it times six
query shapes, each with several variants (different boxes, labels, countries, id draws):

1. bbox only, 2. bbox + datetime, 3. CQL2 on labels, 4. CQL2 on country + season (pages of
100 Items), 5. ids lookup of 100 random ids, 6. a fields-restricted page of 1,000.

through ``catalog.search`` (pystac ItemCollection, and Arrow table), through the STAC API
(``lake serve`` in a subprocess, POST /search), through rustac's ``DuckdbClient.search`` over
the same stac-geoparquet, and through pystac-client against stac-fastapi-geoparquet if that
package is installed. Prints JSON (stdout), progress on stderr; ``--markdown`` prints the table.

Run: ``.venv/bin/python benchmarks/search.py [--out bench-output/search] [--rounds 5]
[--json-out FILE] [--markdown]``. About 3 minutes on 2 cores (half of it the build).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
METADATA = ROOT.parent / "shared" / "data" / "bigearthnet-v2" / "metadata.parquet"
RELEASE = "full"
PAGE = 100


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- building the catalog


def build(out: Path) -> dict[str, Any]:
    """Write a lake with the patches table and the catalog of every pair of metadata.parquet."""
    from catalog.build import render_catalog
    from lake.config import store_spec
    from lake.grid import tile_grid
    from lake.layout import LAYOUT_VERSION, patches_table_path
    from lake.names import parse_patch_id
    from lake.storage import filesystem, write_bytes_atomic
    from lake.tables import write_patches_table
    from pipelines.jobs.ingest import plan_order

    spec = store_spec(str(out / "lake"), environ={})
    t0 = time.perf_counter()
    meta = pq.read_table(METADATA)
    ids = meta["patch_id"].to_pylist()
    georef: dict[str, tuple[int, tuple[float, ...]]] = {}
    for patch_id in ids:
        name = parse_patch_id(patch_id)
        grid = tile_grid(name.tile)
        a = grid.patch_transform(name.x, name.y, 10)
        georef[patch_id] = (grid.epsg, (a.a, a.b, a.c, a.d, a.e, a.f))
    order = plan_order(ids, seed=0)
    sample_index = {ids[i]: k for k, i in enumerate(order)}
    write_patches_table(spec, RELEASE, meta, sample_index, georef, samples_per_shard=256)
    t_table = time.perf_counter()
    built = render_catalog(spec, RELEASE, None)
    t_catalog = time.perf_counter()
    fs = filesystem(spec)
    for path, body in built.files.items():
        write_bytes_atomic(fs, spec.path(path), body)
    root = {
        "layout_version": LAYOUT_VERSION,
        "releases": {RELEASE: {"manifest": f"releases/{RELEASE}/manifest.json"}},
        "current": RELEASE,
    }
    write_bytes_atomic(fs, spec.path("lake.json"), json.dumps(root).encode())
    items = spec.path(f"stac/{RELEASE}/items.parquet")
    md = pq.ParquetFile(items).metadata
    return {
        "pairs": len(ids),
        "patches_table_s": round(t_table - t0, 1),
        "catalog_s": round(t_catalog - t_table, 1),
        "items_parquet_mb": round(os.path.getsize(items) / 1e6, 1),
        "row_groups": md.num_row_groups,
        "patches_table": patches_table_path(RELEASE),
        "lake": spec.url,
    }


# ---------------------------------------------------------------- the query shapes


def shapes(ids: list[str], variants: int) -> dict[str, list[dict[str, Any]]]:
    """Each shape's variants as STAC search parameters (POST body form)."""
    rng = random.Random(7)
    corners = [(-9.0, 38.5), (14.0, 47.0), (24.0, 60.5), (-8.0, 53.0), (20.0, 44.5)]
    labels = [
        ("Pastures", "Coniferous forest"),
        ("Arable land", "Urban fabric"),
        ("Mixed forest", "Inland waters"),
        ("Broad-leaved forest", "Transitional woodland, shrub"),
        ("Marine waters", "Beaches, dunes, sands"),
    ]
    places = [
        ("Portugal", "Summer"),
        ("Finland", "Winter"),
        ("Austria", "Fall"),
        ("Serbia", "Spring"),
        ("Ireland", "Summer"),
    ]
    out: dict[str, list[dict[str, Any]]] = {
        "bbox": [{"bbox": [x, y, x + 0.5, y + 0.5], "limit": PAGE} for x, y in corners],
        "bbox+datetime": [
            {"bbox": [x - 1, y - 1, x + 1, y + 1], "datetime": "2017-06/2017-09", "limit": PAGE}
            for x, y in corners
        ],
        "cql2 labels": [
            {"filter": f"a_contains(labels, ('{a}', '{b}'))", "limit": PAGE} for a, b in labels
        ],
        "cql2 country+season": [
            {"filter": f"country = '{c}' AND season = '{s}'", "limit": PAGE} for c, s in places
        ],
        "ids (100)": [{"ids": rng.sample(ids, 100), "limit": 100} for _ in corners],
        "fields page (1000)": [
            {
                "filter": f"country = '{c}'",
                "fields": {
                    "include": ["country", "labels"],
                    "exclude": ["assets", "geometry", "links"],
                },
                "limit": 1000,
            }
            for c, _ in places
        ],
    }
    return {k: v[:variants] for k, v in out.items()}


def _rustac_args(query: dict[str, Any]) -> dict[str, Any]:
    args = {k: v for k, v in query.items() if k != "fields"}
    if "fields" in query:
        # rustac reads include names without the default set and does not accept "properties."
        f = query["fields"]
        args["fields"] = ",".join(["id", *f["include"], *(f"-{e}" for e in f["exclude"])])
    return args


def _ids(result: Any) -> list[str]:
    if hasattr(result, "items") and not isinstance(result, dict | list):
        return [i.id for i in result.items]
    if hasattr(result, "column_names"):
        return list(result["id"].to_pylist())
    features = result["features"] if isinstance(result, dict) else result
    return [f["id"] for f in features]


# ---------------------------------------------------------------- engines


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``lake serve`` in a subprocess."""

    def __init__(self, lake: str) -> None:
        self.port = _free_port()
        cmd = [sys.executable, "-m", "pipelines.cli", "serve", "--lake", lake]
        cmd += ["--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        import requests

        self.session = requests.Session()
        deadline = time.monotonic() + 120
        while True:
            try:
                self.session.get(f"{self.url}/conformance", timeout=5)
                return
            except requests.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("lake serve did not start") from None
                time.sleep(0.2)

    def search(self, query: dict[str, Any]) -> dict[str, Any]:
        r = self.session.post(f"{self.url}/search", json=query, timeout=120)
        r.raise_for_status()
        doc: dict[str, Any] = r.json()
        return doc

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def _rustac_client() -> Any:
    """rustac's DuckDB client on the project's extension folder (no downloads)."""
    import rustac

    from lake.duck import install_duckdb_extensions

    directory = install_duckdb_extensions()
    return rustac.DuckdbClient(extension_directory=directory, install_extensions=False)


def _time(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn()
    return (time.perf_counter() - t0) * 1000, result


def run(args: argparse.Namespace) -> dict[str, Any]:
    import catalog
    from catalog.search import Catalog
    from lake.config import store_spec

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()
    if args.reuse and (out / "lake" / "lake.json").exists():
        built = {"reused": str(out / "lake")}
    else:
        log("building the catalog of every pair of metadata.parquet ...")
        built = build(out)
        log(f"built: {built}")
    spec = store_spec(str(out / "lake"), environ={})
    items_path = spec.path(f"stac/{RELEASE}/items.parquet")
    ids = pq.read_table(items_path, columns=["id"])["id"].to_pylist()
    queries = shapes(ids, args.variants)

    cat = Catalog(spec)
    server = Server(spec.url)
    engines: dict[str, Callable[[dict[str, Any]], Any]] = {
        "python (Arrow)": lambda q: catalog.search(cat, as_arrow=True, **q),
        "python (ItemCollection)": lambda q: catalog.search(cat, **q),
        "http (lake serve)": server.search,
    }
    notes = []
    try:
        client = _rustac_client()
        engines["rustac DuckdbClient"] = lambda q: client.search(items_path, **_rustac_args(q))
    except Exception as exc:
        notes.append(f"rustac not run: {exc}")
    try:
        import stac_fastapi.geoparquet  # type: ignore[import-not-found]  # noqa: F401

        notes.append("stac-fastapi-geoparquet is installed but not wired into this benchmark")
    except ImportError:
        notes.append("stac-fastapi-geoparquet is not installed: pystac-client against it not run")

    results: dict[str, Any] = {}
    try:
        for shape, variants in queries.items():
            results[shape] = {}
            reference: dict[str, list[str]] = {}
            for engine, fn in engines.items():
                try:
                    fn(variants[0])  # warm-up
                except Exception as exc:
                    results[shape][engine] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
                    log(f"{shape:22s} {engine:24s} cannot run it: {exc}")
                    continue
                samples: list[float] = []
                counts: list[int] = []
                for _ in range(args.rounds):
                    for i, query in enumerate(variants):
                        ms, result = _time(lambda q=query, f=fn: f(q))
                        samples.append(ms)
                        got = _ids(result)
                        counts.append(len(got))
                        if i == 0:
                            reference[engine] = sorted(got)
                results[shape][engine] = {
                    "p50_ms": round(statistics.median(samples), 1),
                    "p95_ms": round(float(np.percentile(samples, 95)), 1),
                    "n": len(samples),
                    "items_per_query": round(statistics.mean(counts), 1),
                }
                log(f"{shape:22s} {engine:24s} {results[shape][engine]}")
            first = reference["python (Arrow)"]
            results[shape]["same_items_as_python"] = {e: r == first for e, r in reference.items()}
    finally:
        server.close()
        cat.close()
    return {
        "benchmark": "search",
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_start": load_start,
            "loadavg_end": os.getloadavg(),
        },
        "build": built,
        "page": PAGE,
        "variants": args.variants,
        "rounds": args.rounds,
        "results": results,
        "notes": notes,
    }


def markdown(doc: dict[str, Any]) -> str:
    """The results as a markdown table (p50 / p95 in ms)."""
    engines = [e for e in next(iter(doc["results"].values())) if e != "same_items_as_python"]
    lines = [
        "| shape | " + " | ".join(engines) + " |",
        "|---|" + "---|" * len(engines),
    ]
    for shape, by_engine in doc["results"].items():
        cells = [
            f"{by_engine[e]['p50_ms']:.0f} / {by_engine[e]['p95_ms']:.0f}"
            if "p50_ms" in by_engine[e]
            else "n/a"
            for e in engines
        ]
        lines.append(f"| {shape} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "bench-output" / "search"))
    parser.add_argument("--rounds", type=int, default=4, help="Rounds over the variants.")
    parser.add_argument("--variants", type=int, default=5, help="Variants per shape (max 5).")
    parser.add_argument("--reuse", action="store_true", help="Reuse a lake built before.")
    parser.add_argument("--json-out", help="Also write the JSON here.")
    parser.add_argument("--markdown", action="store_true", help="Print the table on stderr.")
    args = parser.parse_args()
    doc = run(args)
    text = json.dumps(doc, indent=1)
    print(text)
    if args.json_out:
        Path(args.json_out).write_text(text + "\n")
    if args.markdown:
        log(markdown(doc))


if __name__ == "__main__":
    main()
