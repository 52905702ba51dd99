"""Lock objects on every backend: one holder at a time under contention, races become retries
(never a raw FileNotFoundError), dead or silent holders are broken, the conditional-write probe."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from lake.config import StoreSpec, store_spec
from lake.errors import PublishConflict
from lake.lock import ObjectLock, conditional_writes
from lake.storage import filesystem


def _contend(spec: StoreSpec, n: int, hold: float) -> tuple[int, list[BaseException]]:
    """``n`` threads each take the lock once and hold it ``hold`` s; the most holders at once."""
    inside, most = [0], [0]
    guard = threading.Lock()
    errors: list[BaseException] = []

    def one() -> None:
        lock = ObjectLock(spec, "x.lock", what="a test")
        try:
            lock.acquire(timeout=60)
            with guard:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(hold)
            with guard:
                inside[0] -= 1
            lock.release()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return most[0], errors


def test_one_holder_at_a_time_under_contention(any_spec):
    most, errors = _contend(any_spec, 12, 0.02)
    assert errors == []
    assert most == 1
    assert not filesystem(any_spec).exists(any_spec.path("x.lock"))


def test_a_held_lock_is_refused_with_who_holds_it(any_spec):
    first = ObjectLock(any_spec, "x.lock", what="a test")
    first.acquire()
    second = ObjectLock(any_spec, "x.lock", what="a test")
    assert not second.try_acquire()
    with pytest.raises(PublishConflict, match=r"x\.lock is held by another writer \(pid \d+ on"):
        second.acquire(timeout=0.3)
    first.release()
    assert second.try_acquire()
    second.release()


def test_a_lock_of_a_dead_process_is_broken_at_once(any_spec, tmp_path):
    """A holder killed with -9 (same host, its pid gone) does not block the next writer."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    body = {
        "token": "t",
        "host": socket.gethostname(),
        "pid": int(dead.stdout),
        "time": time.time(),
    }
    filesystem(any_spec).pipe_file(any_spec.path("x.lock"), json.dumps(body).encode())
    lock = ObjectLock(any_spec, "x.lock", what="a test")
    assert lock.try_acquire()
    lock.release()


def test_a_silent_lock_is_broken_after_stale_after(any_spec):
    body = {"token": "t", "host": "elsewhere", "pid": 1, "time": time.time() - 3}
    filesystem(any_spec).pipe_file(any_spec.path("x.lock"), json.dumps(body).encode())
    assert not ObjectLock(any_spec, "x.lock", what="a test", stale_after=60).try_acquire()
    lock = ObjectLock(any_spec, "x.lock", what="a test", stale_after=2)
    assert lock.try_acquire()
    lock.release()


def test_the_heartbeat_keeps_a_long_hold_fresh(tmp_path):
    from lake.config import store_spec

    spec = store_spec(str(tmp_path / "lake"), environ={})
    lock = ObjectLock(spec, "x.lock", what="a test", stale_after=0.4, heartbeat=True)
    lock.acquire()
    try:
        time.sleep(1.0)  # 2.5 times stale_after: without the heartbeat it would be stale
        other = ObjectLock(spec, "x.lock", what="a test", stale_after=0.4)
        assert not other.try_acquire()
    finally:
        lock.release()
    assert lock._thread is None


def test_a_lock_vanishing_between_steps_is_a_retry_not_an_error(any_spec, monkeypatch):
    """The old S3 protocol raised FileNotFoundError (NoSuchKey) when another writer removed the
    lock between this writer's PUT and its read-back."""
    lock = ObjectLock(any_spec, "x.lock", what="a test")
    if any_spec.protocol == "file":
        pytest.skip("local folders create the lock with one link(2): there are no steps")
    real = lock.fs.pipe_file
    calls = [0]

    def pipe_then_vanish(path, data, **kw):
        real(path, data, **kw)
        calls[0] += 1
        if calls[0] == 1 and path == lock.path:
            lock.fs.rm_file(path)  # another writer's release, right after our PUT

    monkeypatch.setattr(lock.fs, "pipe_file", pipe_then_vanish)
    lock.acquire(timeout=10)
    assert lock.read() is not None and lock.read()["token"] == lock.token
    lock.release()


@pytest.mark.s3
def test_the_embedded_endpoint_has_no_conditional_writes(s3_spec):
    """rclone serve s3 ignores If-None-Match (an overwrite succeeds): the lock falls back."""
    fs = filesystem(s3_spec)
    assert conditional_writes(s3_spec, fs, s3_spec.path("x.lock")) is False
    assert [p for p in fs.find(s3_spec.path()) if ".probe-" in p] == []


# ------------------------------------------------------- an endpoint with conditional writes


@pytest.fixture(scope="module")
def conditional_s3() -> Iterator[StoreSpec]:
    """An S3 endpoint that honours ``If-None-Match: *`` as AWS S3 does: moto's server, on loopback.

    rclone (the embedded endpoint) ignores the header, so the lock's conditional path needs a
    second server to be tested at all.
    """
    from moto.server import ThreadedMotoServer

    from pipelines.local.processes import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        spec = store_spec(
            "s3://locks/lake",
            endpoint_url=f"http://127.0.0.1:{port}",
            key="moto-key",
            secret="moto-secret",
            region="us-east-1",
            environ={},
        )
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=spec.endpoint_url,
            aws_access_key_id=spec.key,
            aws_secret_access_key=spec.secret,
            region_name=spec.region,
        )
        s3.create_bucket(Bucket="locks")
        s3.close()
        yield spec
    finally:
        server.stop()


def test_an_endpoint_with_conditional_writes_is_detected(conditional_s3):
    fs = filesystem(conditional_s3)
    assert conditional_writes(conditional_s3, fs, conditional_s3.path("x.lock")) is True
    assert [p for p in fs.find(conditional_s3.path()) if ".probe-" in p] == []


def test_one_holder_at_a_time_with_conditional_writes(conditional_s3):
    most, errors = _contend(conditional_s3, 12, 0.02)
    assert errors == []
    assert most == 1
    assert not filesystem(conditional_s3).exists(conditional_s3.path("x.lock"))
