"""pipelines.local.stac: ``rustac serve`` over generated scene Items, and its errors."""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipelines.local.stac import StacServer, StacServerError
from pipelines.synth.scenes import Scene, write_catalogue, write_scene


def test_serves_the_items_and_stops(tmp_path: Path) -> None:
    window = (300000.0, 5340000.0, 301440.0, 5341440.0)
    items = [
        write_scene(
            Scene(i, "33UUP", 32633, window, datetime(2019, 7, 1 + i, tzinfo=UTC)), tmp_path
        )
        for i in range(2)
    ]
    with StacServer(write_catalogue(items, tmp_path / "items.json")) as api:
        url = f"{api.url}/collections/sentinel-2-l2a/items"
        with urllib.request.urlopen(url, timeout=10) as r:
            found = json.load(r)["features"]
        assert sorted(f["id"] for f in found) == sorted(i["id"] for i in items)
        assert api.running
    assert not api.running


def test_a_missing_items_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(StacServerError, match=r"no Items file at .*nothing\.json"):
        StacServer(tmp_path / "nothing.json").start()
