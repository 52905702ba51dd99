import json
import threading

import pytest

from lake.errors import LayoutError, PublishConflict, ReleaseNotFound
from lake.release import ObjectEntry, build_manifest, publish, read_manifest, read_root
from lake.storage import filesystem


def _put(spec, rel, data=b"x"):
    filesystem(spec).pipe_file(spec.path(rel), data)


def _manifest(spec, name, payload=b"x"):
    _put(spec, f"patches/{name}.zarr/zarr.json", payload)
    _put(spec, f"tables/{name}/patches/part-0.parquet", b"p")
    return build_manifest(
        spec, name, {}, counts={"patches": 1}, source={"kind": "t"}, parameters={}
    )


def test_publish_lists_every_object_with_checksums(any_spec):
    m = _manifest(any_spec, "r1")
    paths = [o["path"] for o in m["objects"]]
    assert paths == ["patches/r1.zarr/zarr.json", "tables/r1/patches/part-0.parquet"]
    assert (
        m["objects"][0]["sha256"]
        == "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
    )
    publish(any_spec, "r1", m)
    root = read_root(any_spec)
    assert root["current"] == "r1" and list(root["releases"]) == ["r1"]
    assert read_manifest(any_spec, "r1")["objects"] == m["objects"]


def test_unpublished_release_is_invisible(any_spec):
    _manifest(any_spec, "r1")
    with pytest.raises(ReleaseNotFound, match="'r1' is not in the lake"):
        read_manifest(any_spec, "r1")


def test_release_is_immutable(any_spec):
    publish(any_spec, "r1", _manifest(any_spec, "r1"))
    publish(any_spec, "r1", _manifest(any_spec, "r1"))  # same content: a no-op
    with pytest.raises(PublishConflict, match="immutable"):
        publish(any_spec, "r1", _manifest(any_spec, "r1", payload=b"other"))


def test_precomputed_entries_must_exist(any_spec):
    _put(any_spec, "patches/r1.zarr/zarr.json")
    with pytest.raises(LayoutError, match="missing"):
        build_manifest(
            any_spec,
            "r1",
            {"patches/r1.zarr/c/0": ObjectEntry("patches/r1.zarr/c/0", 1, "0")},
            counts={},
            source={},
            parameters={},
        )


def test_two_writers_both_recorded_never_lost(tmp_path):
    from lake.config import store_spec

    spec = store_spec(str(tmp_path / "lake"), environ={})
    manifests = {n: _manifest(spec, n) for n in ("a", "b", "c", "d")}
    threads = [threading.Thread(target=publish, args=(spec, n, m)) for n, m in manifests.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(read_root(spec)["releases"]) == ["a", "b", "c", "d"]


def test_lock_held_by_live_writer_blocks(tmp_path, monkeypatch):
    import time

    from lake import release as rel
    from lake.config import store_spec

    spec = store_spec(str(tmp_path / "lake"), environ={})
    m = _manifest(spec, "r1")
    (tmp_path / "lake" / "lake.json.lock").write_text(
        json.dumps({"token": "other", "time": time.time()})
    )
    monkeypatch.setattr(rel._RootLock.acquire, "__defaults__", (0.5,))
    with pytest.raises(PublishConflict, match="held by another writer"):
        publish(spec, "r1", m)
    # A stale lock (a crashed writer) is broken.
    (tmp_path / "lake" / "lake.json.lock").write_text(json.dumps({"token": "other", "time": 0}))
    publish(spec, "r1", m)
    assert read_root(spec)["current"] == "r1"


def test_unknown_layout_version_is_refused(tmp_path):
    from lake.config import store_spec

    spec = store_spec(str(tmp_path / "lake"), environ={})
    (tmp_path / "lake").mkdir()
    (tmp_path / "lake" / "lake.json").write_text(json.dumps({"layout_version": 99}))
    with pytest.raises(LayoutError, match="layout version 99"):
        read_root(spec)
