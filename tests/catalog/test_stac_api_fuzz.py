"""Fuzzing ``lake serve`` in a child process: no request kills it or gets a 5xx (issue 11, item 3).

Before the limits of :mod:`catalog.limits`, one GET with a CQL2 filter nested about 1,700
levels deep (10 KB) segfaulted the server inside the cql2 parser, and 500 stacked ``NOT`` or a
geometry of an unknown type were 500s. The server runs as ``python -m pipelines.cli serve`` on
127.0.0.1 so that a crash shows up as a dead process instead of killing pytest. The quick test
sends the requests that broke it; the fuzz run (deep and long filters, text and JSON, GET and
POST, depths up to 5,000, sizes up to 1.1 MB, random junk and bad geometries) is bounded in
count (2,000 requests) and time (120 s). Both take about 10 s, so they run by default.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from catalog.limits import MAX_BODY_BYTES, MAX_FILTER_CHARS, MAX_HEAD_BYTES
from lake.config import StoreSpec
from tests.catalog.test_request_limits import (
    BAD_GEOMETRIES,
    TEXT_KINDS,
    nested_json_text,
    nested_text,
)

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"  # the fuzz never leaves this machine
#: Bounds of the fuzz run.
MAX_REQUESTS = 2_000
MAX_SECONDS = 120.0
DEPTHS = (60, 500, 1_000, 1_700, 2_500, 5_000)
SIZES = (10_000, MAX_FILTER_CHARS, MAX_FILTER_CHARS + 1, 200_000, 1_000_000, 1_100_000)


@dataclass
class Served:
    """``lake serve`` running in a child process."""

    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def alive(self) -> bool:
        return self.proc.poll() is None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(lake_spec: StoreSpec, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``lake serve`` of the test lake on a free loopback port, in a child process."""
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    cmd = [sys.executable, "-m", "pipelines.cli", "serve", "--lake", lake_spec.url]
    cmd += ["--host", HOST, "--port", str(port)]
    env = {**os.environ, "LAKE_URL": ""}
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Served(proc, f"http://{HOST}:{port}", log)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{server.url}/conformance", timeout=5)
                break
            except requests.ConnectionError:
                assert server.alive(), log.read_text()
                assert time.monotonic() < deadline, "lake serve did not start"
                time.sleep(0.2)
        yield server
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _still_serves(server: Served) -> None:
    assert server.alive(), f"lake serve died (exit {server.proc.returncode}): {server.log}"
    r = requests.get(f"{server.url}/search", params={"limit": 3, "filter": "sample_index >= 0"})
    assert r.status_code == 200 and len(r.json()["features"]) == 3


def test_deep_filters_are_400s_and_the_server_lives(served: Served) -> None:
    text = nested_text("parentheses", 1_700)  # the 10 KB GET that segfaulted the server
    r = requests.get(f"{served.url}/search", params={"filter": text}, timeout=30)
    assert r.status_code == 400 and "MAX_FILTER_DEPTH" in r.json()["description"], r.text
    r = requests.get(f"{served.url}/search", params={"filter": nested_text("not", 500)})
    assert r.status_code == 400 and "MAX_FILTER_DEPTH" in r.json()["description"], r.text
    body = '{"filter-lang": "cql2-json", "filter": ' + nested_json_text(2_500) + "}"
    headers = {"content-type": "application/json"}
    r = requests.post(f"{served.url}/search", data=body, headers=headers, timeout=30)
    assert r.status_code == 400 and "MAX_JSON_DEPTH" in r.json()["description"], r.text
    bad = json.dumps({"type": "Nope", "coordinates": []})
    r = requests.get(f"{served.url}/search", params={"intersects": bad}, timeout=30)
    assert r.status_code == 400 and "Nope" in r.json()["description"], r.text
    _still_serves(served)


# ---------------------------------------------------------------------- the fuzz run


@dataclass(frozen=True)
class Case:
    """One request of the fuzz run."""

    kind: str
    method: str
    path: str
    params: dict[str, str] | None = None
    body: bytes | None = None


_TOKENS = [
    "(",
    ")",
    "NOT ",
    " AND ",
    " OR ",
    " = ",
    " <> ",
    " < ",
    "'",
    '"',
    ", ",
    "-",
    "+",
    "*",
    "casei(",
    "accenti(",
    "country",
    "labels",
    "sample_index",
    "datetime",
    "geometry",
    "1",
    "1e999",
    "-0",
    "NaN",
    "\x00",
    "\uff08",
    "\uff09",
    "é",
    "ß",
    " ",
    "S_INTERSECTS(",
    "POLYGON((",
    "POINT(",
    "BBOX(",
    "TIMESTAMP(",
    "DATE(",
    "INTERVAL(",
    "A_CONTAINS(",
    "%",
    "\\",
    "{",
    "[",
    "]",
    "}",
    ":",
    " IS NULL",
    " LIKE ",
    " BETWEEN ",
    " IN (",
    "'2017-06-01'",
    "true",
    "false",
    "NULL",
    "..",
    "\n",
    "\t",
    "/*",
    "*/",
    "--",
    ";",
    "DROP TABLE items",
]
_KEYS = [
    "op",
    "args",
    "property",
    "type",
    "coordinates",
    "bbox",
    "interval",
    "timestamp",
    "date",
    "geometries",
    "filter",
    "x",
]
_OPS = [
    "and",
    "or",
    "not",
    "=",
    "<",
    "like",
    "between",
    "in",
    "casei",
    "s_intersects",
    "t_after",
    "a_contains",
    "+",
    "isNull",
    "nope",
    "div",
    "^",
]


def _junk_text(rng: random.Random) -> str:
    return "".join(rng.choice(_TOKENS) for _ in range(rng.randint(1, 300)))


def _junk_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 6 or roll < 0.35:
        return rng.choice(
            [
                0,
                -1,
                1e308,
                float("nan"),
                float("inf"),
                2**70,
                True,
                None,
                "",
                "Portugal",
                _junk_text(rng),
                "2017-06-01T00:00:00Z",
                [],
                {},
            ]
        )
    if roll < 0.6:
        return [_junk_value(rng, depth + 1) for _ in range(rng.randint(0, 5))]
    node: dict[str, Any] = {}
    if rng.random() < 0.6:
        node["op"] = rng.choice(_OPS)
        node["args"] = [_junk_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    for key in rng.sample(_KEYS, rng.randint(0, 3)):
        node[key] = _junk_value(rng, depth + 1)
    return node


def _junk_geometry(rng: random.Random) -> Any:
    kind = rng.choice(
        ["Point", "LineString", "Polygon", "MultiPolygon", "GeometryCollection", "Nope", 5, None]
    )
    numbers = [0, 1, -181, 91, 1e308, float("nan"), float("-inf"), "1", True, None]

    def coords(level: int) -> Any:
        if level == 0 or rng.random() < 0.15:
            return [rng.choice(numbers) for _ in range(rng.randint(0, 4))]
        return [coords(level - 1) for _ in range(rng.randint(0, 5))]

    geometry: dict[str, Any] = {"type": kind, "coordinates": coords(rng.randint(0, 4))}
    if kind == "GeometryCollection":
        geometry["geometries"] = [_junk_geometry(rng) for _ in range(rng.randint(0, 2))]
    return geometry


def _dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


def fuzz_cases(seed: int = 11) -> Iterator[Case]:
    """The requests of the fuzz run, the same ones every time."""
    rng = random.Random(seed)
    for kind in TEXT_KINDS:  # deep cql2-text, GET and POST
        for depth in DEPTHS:
            text = nested_text(kind, depth)
            yield Case(f"deep-text-{kind}", "GET", "/search", params={"filter": text})
            body = {"filter": text, "filter-lang": "cql2-text"}
            yield Case(f"deep-text-{kind}", "POST", "/search", body=_dumps(body))
    for depth in DEPTHS:  # deep cql2-json: operators, arrays, other fields
        text = nested_json_text(depth)
        params = {"filter": text, "filter-lang": "cql2-json"}
        yield Case("deep-json", "GET", "/search", params=params)
        yield Case("deep-json", "POST", "/search", body=f'{{"filter": {text}}}'.encode())
        arrays = "[" * depth + "1" + "]" * depth
        yield Case("deep-json", "POST", "/search", body=f'{{"ids": {arrays}}}'.encode())
        geometry = f'{{"type": "Point", "coordinates": {arrays}}}'
        yield Case("deep-json", "GET", "/search", params={"intersects": geometry})
        yield Case("deep-json", "GET", "/search", params={"bbox": "(" * depth})
    for size in SIZES:  # long filters and bodies
        text = f"country = '{'x' * size}'"
        if len(text) < MAX_HEAD_BYTES - 10_000:  # longer ones h11 refuses (400, no body)
            yield Case("long", "GET", "/search", params={"filter": text})
        yield Case("long", "POST", "/search", body=_dumps({"filter": text}))
        yield Case("long", "POST", "/search", body=b"[" * min(size, MAX_BODY_BYTES + 1))
    for geometry, _ in BAD_GEOMETRIES:  # bad geometries, in each place one can be given
        yield Case("geometry", "GET", "/search", params={"intersects": json.dumps(geometry)})
        yield Case("geometry", "POST", "/search", body=_dumps({"intersects": geometry}))
        tree = {"op": "s_intersects", "args": [{"property": "geometry"}, geometry]}
        yield Case("geometry", "POST", "/search", body=_dumps({"filter": tree}))
    while True:  # random junk
        roll = rng.random()
        if roll < 0.25:
            yield Case("junk-text", "GET", "/search", params={"filter": _junk_text(rng)})
        elif roll < 0.45:
            yield Case("junk-json", "POST", "/search", body=_dumps({"filter": _junk_value(rng)}))
        elif roll < 0.6:
            geometry = _junk_geometry(rng)
            if rng.random() < 0.5:
                params = {"intersects": json.dumps(geometry, allow_nan=True)}
                yield Case("junk-geometry", "GET", "/search", params=params)
            else:
                body = _dumps(
                    {"filter": {"op": "s_intersects", "args": [{"property": "geometry"}, geometry]}}
                )
                yield Case("junk-geometry", "POST", "/search", body=body)
        elif roll < 0.75:
            name = rng.choice(
                [
                    "bbox",
                    "datetime",
                    "limit",
                    "sortby",
                    "fields",
                    "token",
                    "ids",
                    "collections",
                    "filter-lang",
                    "filter-crs",
                    "intersects",
                ]
            )
            yield Case("junk-param", "GET", "/search", params={name: _junk_text(rng)})
        elif roll < 0.85:
            body = {
                k: _junk_value(rng)
                for k in rng.sample(
                    [
                        "bbox",
                        "intersects",
                        "datetime",
                        "ids",
                        "collections",
                        "filter",
                        "sortby",
                        "fields",
                        "limit",
                        "token",
                        "filter-lang",
                    ],
                    rng.randint(1, 4),
                )
            }
            yield Case("junk-body", "POST", "/search", body=_dumps(body))
        elif roll < 0.95:
            yield Case("junk-bytes", "POST", "/search", body=rng.randbytes(rng.randint(0, 4096)))
        else:
            path = rng.choice(
                [
                    "/collections/bigearthnet-v2/items",
                    "/search",
                    "/",
                    "/collections/%00",
                    "/collections/" + "x" * 5000,
                ]
            )
            params = {"filter": _junk_text(rng), "limit": str(rng.randint(-5, 20_000))}
            yield Case("junk-path", rng.choice(["GET", "HEAD"]), path, params=params)


def test_fuzz_never_kills_the_server_or_gets_a_5xx(served: Served) -> None:
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    sent = 0
    start = time.monotonic()
    session = requests.Session()
    headers = {"content-type": "application/json"}
    for case in fuzz_cases():
        if sent >= MAX_REQUESTS or time.monotonic() - start > MAX_SECONDS:
            break
        sent += 1
        try:
            r = session.request(
                case.method,
                served.url + case.path,
                params=case.params,
                data=case.body,
                headers=headers if case.body is not None else None,
                timeout=60,
            )
        except requests.RequestException as exc:
            failures.append(f"{case.kind} {case.method}: no answer ({exc!r:.200})")
            session = requests.Session()
            if not served.alive():
                break
            continue
        statuses[r.status_code] += 1
        if r.status_code >= 500:
            failures.append(f"{case.kind} {case.method}: {r.status_code} {r.text[:200]}")
    seconds = time.monotonic() - start
    server_errors = sum(n for status, n in statuses.items() if status >= 500)
    summary = (
        f"fuzz: {sent} requests in {seconds:.0f} s, {server_errors} 5xx, "
        f"{len(failures)} failures, statuses {dict(sorted(statuses.items()))}, "
        f"server {'alive' if served.alive() else 'DEAD'}"
    )
    print(summary)
    assert not failures, summary + "\n" + "\n".join(failures[:20])
    assert sent >= 600, summary
    _still_serves(served)
