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


def _publish_many(spec, names):
    """Publish every release of ``names`` at once, one thread each; the errors raised."""
    manifests = {n: _manifest(spec, n) for n in names}
    errors: list[BaseException] = []

    def one(name):
        try:
            publish(spec, name, manifests[name])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_simultaneous_publishes_all_land_without_raw_errors(any_spec):
    """3 of 32 simultaneous publishes on S3 used to fail with a raw FileNotFoundError (the lock
    was removed between a writer's PUT and its read-back); now every one lands."""
    names = [f"r{i:02d}" for i in range(16)]
    assert _publish_many(any_spec, names) == []
    assert sorted(read_root(any_spec)["releases"]) == names
    assert not filesystem(any_spec).exists(any_spec.path("lake.json.lock"))


_PUBLISH_CHILD = """
import json, sys, time
from lake.config import store_spec
from lake.release import publish
a = json.loads(sys.argv[1])
spec = store_spec(a["url"], endpoint_url=a["endpoint"], key=a["key"], secret=a["secret"],
                  region=a["region"], environ={})
manifest = json.loads(open(a["manifest"]).read())
while time.time() < a["at"]:
    time.sleep(0.001)
try:
    publish(spec, a["name"], manifest)
    print("ok")
except BaseException as exc:
    print(type(exc).__name__, exc)
"""


@pytest.mark.slow
@pytest.mark.s3
def test_32_processes_publishing_at_once_on_the_embedded_endpoint(s3_server, tmp_path):
    """The tester's case: 32 simultaneous publishes, one process each (the old protocol: 4 raw
    FileNotFoundError and 4 more releases silently lost in one run)."""
    import subprocess
    import sys
    import time

    from tests.conftest import s3_spec_for

    spec = s3_spec_for(s3_server)
    e = s3_server.endpoint
    at = time.time() + 20  # every child waits for this moment, then publishes
    procs = []
    for i in range(32):
        name = f"r{i:02d}"
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(_manifest(spec, name)))
        args = {"url": spec.url, "endpoint": e.endpoint_url, "key": e.key, "secret": e.secret,
                "region": e.region, "manifest": str(path), "name": name, "at": at}  # fmt: skip
        procs.append(subprocess.Popen([sys.executable, "-c", _PUBLISH_CHILD, json.dumps(args)],
                                      stdout=subprocess.PIPE, text=True))  # fmt: skip
    outcomes = [p.communicate(timeout=300)[0].strip() for p in procs]
    assert [o for o in outcomes if o != "ok"] == []
    assert sorted(read_root(spec)["releases"]) == [f"r{i:02d}" for i in range(32)]


def test_a_temporary_left_by_a_killed_writer_is_not_an_object_of_the_release(any_spec):
    """kill -9 during an atomic write leaves its temporary file; the rerun's manifest skips it."""
    _put(any_spec, "stac/r1/.tmp-0123456789abcdef", b"half a catalog")
    _put(any_spec, "tables/r1/patches/.tmp-fedcba9876543210", b"half a table")
    # zarr's LocalStore: found by benchmarks/kill9.py in a rerun's manifest
    _put(any_spec, "patches/r1.zarr/s1_name/c/1.1440a047698a4404a79afff620cf6dcd.partial", b"h")
    m = _manifest(any_spec, "r1")
    assert [o["path"] for o in m["objects"]] == [
        "patches/r1.zarr/zarr.json",
        "tables/r1/patches/part-0.parquet",
    ]
