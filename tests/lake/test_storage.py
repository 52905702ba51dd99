"""Conformance: every storage backend (local folder, memory, S3 on loopback) behaves the same."""

import json
import pickle
import threading
from collections.abc import Callable

import numpy as np
import pytest
import zarr

from lake.storage import filesystem, read_json, write_json_atomic, zarr_store


def test_json_round_trip_and_atomic_overwrite(any_spec):
    fs = filesystem(any_spec)
    path = any_spec.path("a", "doc.json")
    write_json_atomic(fs, path, {"x": 1})
    write_json_atomic(fs, path, {"x": 2})
    assert read_json(fs, path) == {"x": 2}
    leftovers = [p for p in fs.find(any_spec.path("a")) if ".tmp-" in p]
    assert leftovers == []


def test_ranged_reads(any_spec):
    fs = filesystem(any_spec)
    path = any_spec.path("blob.bin")
    fs.pipe_file(path, bytes(range(256)) * 100)
    assert fs.cat_file(path, start=10, end=20) == bytes(range(10, 20))
    assert fs.size(path) == 25600


def test_sharded_zarr_round_trip(any_spec):
    store = zarr_store(any_spec, "t.zarr")
    data = np.random.default_rng(0).integers(0, 2**16, size=(10, 4, 12, 12), dtype=np.uint16)
    a = zarr.create_array(
        store,
        name="a",
        shape=data.shape,
        chunks=(1, 4, 12, 12),
        shards=(5, 4, 12, 12),
        dtype="uint16",
    )
    a[:] = data
    back = zarr.open_group(zarr_store(any_spec, "t.zarr", read_only=True), mode="r")["a"]
    np.testing.assert_array_equal(back[:], data)
    np.testing.assert_array_equal(back[7], data[7])


def test_spec_survives_pickling_into_another_process(any_spec):
    if any_spec.protocol == "memory":
        pytest.skip("memory:// is per process by definition")
    import multiprocessing as mp

    fs = filesystem(any_spec)
    fs.pipe_file(any_spec.path("hello.txt"), b"hi")
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        assert pool.apply(_read_in_child, (pickle.dumps(any_spec),)) == b"hi"


def _read_in_child(blob: bytes) -> bytes:
    spec = pickle.loads(blob)
    return filesystem(spec).cat_file(spec.path("hello.txt"))


@pytest.mark.s3
def test_wrong_secret_is_refused(s3_spec):
    from dataclasses import replace

    bad = replace(s3_spec, secret="wrong")
    with pytest.raises(PermissionError):
        filesystem(bad).ls(bad.root)


def test_json_is_sorted_and_stable(any_spec):
    fs = filesystem(any_spec)
    data = write_json_atomic(fs, any_spec.path("s.json"), {"b": 1, "a": [1, 2]})
    assert json.loads(data) == {"a": [1, 2], "b": 1}
    assert data == write_json_atomic(fs, any_spec.path("s2.json"), {"a": [1, 2], "b": 1})


def test_s3_clients_of_a_process_and_its_forks_share_one_session(s3_spec):
    """Each new aiobotocore session parses botocore's models again (0.15 s a client): the
    clients of a process share one, and a forked child (a DataLoader worker) keeps it."""
    import os

    a = filesystem(s3_spec)
    b = filesystem(s3_spec, max_connections=20, retries=0, timeout=5.0)
    assert a is not b and a.session is b.session
    a.pipe_file(s3_spec.path("doc.json"), b'{"x": 1}')
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a new client (fsspec drops its cache), the parent's session
        try:
            c = filesystem(s3_spec, max_connections=20)
            same = read_json(c, s3_spec.path("doc.json")) == {"x": 1}
            os.write(w, b"1" if (same and c is not a and c.session is a.session) else b"0")
        finally:
            os._exit(0)
    os.close(w)
    assert os.read(r, 1) == b"1"
    os.waitpid(pid, 0)
    os.close(r)


def _within(seconds: float, work: Callable[[], object]) -> BaseException | None:
    """Run ``work`` in a thread; what it raised (None if nothing), or fail if it hangs."""
    caught: list[BaseException | None] = []

    def run() -> None:
        try:
            work()
            caught.append(None)
        except BaseException as exc:
            caught.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"still waiting after {seconds} s: the client and the endpoint deadlocked")
    return caught[0]


@pytest.mark.s3
def test_a_refused_upload_fails_instead_of_hanging(s3_spec):
    """rclone refuses a PUT below an existing object before reading its body. A client that
    sent ``Expect: 100-continue`` waited for a 100 that never came while rclone waited for the
    body: every such PUT hung, and so did one time-series cut in five (concurrent PUTs into new
    folders). Our clients send no such header, so the refusal comes back as an error."""
    fs = filesystem(s3_spec, retries=0)
    fs.pipe_file(s3_spec.path("obj"), b"an object")
    raised = _within(60, lambda: fs.pipe_file(s3_spec.path("obj", "below"), b"x" * 100))
    assert isinstance(raised, OSError)

    array = zarr.create_array(zarr_store(s3_spec, "t.zarr"), name="a", shape=(2, 4), dtype="u2")
    fs.pipe_file(s3_spec.path("t.zarr", "a", "c"), b"an object where zarr puts its chunk folder")

    def write() -> None:
        array[:] = 1

    assert isinstance(_within(60, write), OSError)
