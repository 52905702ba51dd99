"""``pipelines.showcase.tour``: the notebooks' helper that starts or reuses an endpoint, a lake."""

from __future__ import annotations

import json
import socket
import urllib.request
from pathlib import Path

import pytest
from pystac_client import Client

import lake
from lake.errors import ConfigError, LayoutError
from pipelines.local.s3 import free_port
from pipelines.showcase import tour


def answers(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as s:
        return s.connect_ex((host, int(port))) == 0


def test_a_file_is_not_a_tour_folder(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("mine")
    with pytest.raises(ConfigError, match="is a file"):
        tour.start(path)
    assert path.read_text() == "mine"


def test_a_folder_of_other_files_is_refused_and_left_alone(tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("years of work")
    with pytest.raises(ConfigError, match="not a tour folder"):
        tour.start(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis.tex"]


def test_a_lake_path_that_holds_no_lake(tmp_path: Path) -> None:
    folder = tmp_path / "tour-data"
    (folder / "s3" / "lake" / "tour").mkdir(parents=True)
    (folder / "s3" / "lake" / "tour" / "data.csv").write_text("a,b\n")
    (folder / tour.STATE_FILE).write_text(json.dumps({"kind": tour.KIND, "endpoint": None}))
    with pytest.raises(LayoutError, match=r"exists but is not a lake.*remove it"):
        tour.start(folder)
    assert json.loads((folder / tour.STATE_FILE).read_text())["endpoint"] is None


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"patches": 0}, "patches=0"),
        ({"bucket": "a/b"}, "bucket='a/b'"),
        ({"prefix": ""}, "prefix=''"),
    ],
)
def test_bad_arguments_name_the_value(tmp_path: Path, kwargs: dict, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        tour.start(tmp_path / "t", **kwargs)


@pytest.mark.s3
def test_build_reuse_and_who_stops_the_endpoint(tmp_path: Path) -> None:
    folder = tmp_path / "tour-data"
    first = tour.start(folder, patches=12)
    assert first.built and first.started_endpoint
    assert len(lake.open_lake(first.spec).current) == 12
    assert not (folder / "source").exists(), "the synthetic source is removed after ingest"

    second = tour.start(folder)  # as a second notebook would: same endpoint, same lake
    assert not second.built and not second.started_endpoint
    assert second.endpoint == first.endpoint
    second.close()
    assert answers(first.endpoint.endpoint_url), "closing a reused endpoint stopped it"

    first.close()
    assert not answers(first.endpoint.endpoint_url)
    assert json.loads((folder / tour.STATE_FILE).read_text())["endpoint"] is None

    with tour.start(folder) as third:  # the lake stays; a new endpoint is started over it
        assert not third.built and third.started_endpoint
        with third.stac_api() as url:
            assert len(list(Client.open(url).search(max_items=50).items())) == 12
        with pytest.raises(OSError):
            urllib.request.urlopen(url, timeout=2)
    assert not answers(third.endpoint.endpoint_url)


@pytest.mark.s3
def test_a_stale_endpoint_record_is_replaced(tmp_path: Path) -> None:
    folder = tmp_path / "tour-data"
    folder.mkdir()
    dead = {"endpoint_url": f"http://127.0.0.1:{free_port()}", "key": "k", "secret": "s"}
    (folder / tour.STATE_FILE).write_text(json.dumps({"kind": tour.KIND, "endpoint": dead}))
    with tour.start(folder, patches=3) as t:
        assert t.started_endpoint and t.endpoint.endpoint_url != dead["endpoint_url"]
        assert t.built
