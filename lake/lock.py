"""Lock objects: one writer at a time for a lake's root document or for one release's ingest.

A lock is a small JSON object (a random token, the holder's host and pid, a time) that exists
while someone holds it. It is created only if absent, by the strongest means the storage has:

* **local folders**: the body is written under a private name, then hard-linked into place; the
  link fails when the lock exists, and a lock that exists always has its whole body.
* **S3 endpoints with conditional writes** (AWS S3, MinIO, Ceph RGW): ``PutObject`` with
  ``If-None-Match: *``; the endpoint refuses every writer but the first (412), atomically.
  Whether an endpoint honours it is probed once per endpoint and bucket
  (:func:`conditional_writes`).
* **endpoints without them** (``rclone serve s3``, which ignores the header, and ``memory://``):
  read (absent?), write, wait :data:`SETTLE_SECONDS`, read back. Every writer of a burst that
  saw no lock writes its token; the last write wins and each of the others sees the winner's
  token on its read-back and backs off. This holds as long as a small PUT completes within the
  settle time; it is the best an endpoint without conditional writes allows.

Every race (the lock vanishing between two steps, another writer's token) means "not acquired,
try again", never a raw ``FileNotFoundError``. A lock whose holder is dead (same host, no such
pid: a ``kill -9``) or whose time is older than ``stale_after`` seconds is broken. Long holders
(an ingest) refresh the time from a heartbeat thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from types import TracebackType
from typing import Any, Self, TypedDict

import fsspec

from lake.config import StoreSpec
from lake.errors import PublishConflict
from lake.storage import filesystem

#: A lock not refreshed for this long is left over from a crashed writer and may be broken.
STALE_SECONDS = 120.0
#: Without conditional writes: how long a writer waits between writing its token and reading it
#: back (a bound on how long another writer's PUT may take).
SETTLE_SECONDS = 0.5
#: ``memory://`` lakes live in one process: the settle time only has to cover thread switches.
_MEMORY_SETTLE_SECONDS = 0.05

#: ``(endpoint, bucket) -> honours If-None-Match``, probed once per process.
_CONDITIONAL: dict[tuple[str, str], bool] = {}
_PROBE_LOCK = threading.Lock()


class LockBody(TypedDict):
    """What a lock object holds."""

    token: str
    host: str
    pid: int
    time: float
    what: str


def _refused_by_condition(exc: OSError) -> bool:
    """Whether an S3 error is a refused conditional write (412) or a concurrent one (409)."""
    if isinstance(exc, FileExistsError):
        return True
    response = getattr(exc.__cause__, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412)


def conditional_writes(spec: StoreSpec, fs: fsspec.AbstractFileSystem, near: str) -> bool:
    """Whether the spec's S3 endpoint refuses ``PutObject`` with ``If-None-Match: *`` on a key.

    Probed once per endpoint and bucket with a throw-away object next to ``near`` (written
    plainly, then again with the condition, then removed); local folders and ``memory://``
    answer False (they have their own means).
    """
    if spec.protocol != "s3":
        return False
    key = (spec.endpoint_url or "aws", near.split("/", 1)[0])
    with _PROBE_LOCK:
        if key not in _CONDITIONAL:
            probe = f"{near}.probe-{uuid.uuid4().hex}"
            fs.pipe_file(probe, b"probe")
            try:
                fs.pipe_file(probe, b"probe", mode="create")
                supported = False  # overwritten: the header was ignored
            except OSError as exc:
                supported = _refused_by_condition(exc)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    fs.rm_file(probe)
            _CONDITIONAL[key] = supported
        return _CONDITIONAL[key]


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine (a zombie counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ObjectLock:
    """An exclusive lock object at ``rel`` below a lake's root.

    Use it as a context manager (``with ObjectLock(spec, "lake.json.lock"):``) or call
    :meth:`acquire` / :meth:`try_acquire` and :meth:`release`.

    Args:
        spec: The lake.
        rel: The lock's path relative to the lake root.
        what: What the lock protects, for messages ("publishing to lake.json").
        stale_after: Seconds after which a lock not refreshed is broken.
        heartbeat: Refresh the lock's time every ``stale_after / 4`` seconds while held.
    """

    def __init__(
        self,
        spec: StoreSpec,
        rel: str,
        *,
        what: str,
        stale_after: float = STALE_SECONDS,
        heartbeat: bool = False,
    ) -> None:
        self.spec = spec
        self.rel = rel
        self.what = what
        self.fs = filesystem(spec)
        self.path = spec.path(rel)
        self.stale_after = stale_after
        self.token = uuid.uuid4().hex
        self._heartbeat = heartbeat
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ the protocol

    def _body(self) -> bytes:
        body: LockBody = {
            "token": self.token,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "time": time.time(),
            "what": self.what,
        }
        return json.dumps(body).encode()

    def read(self) -> dict[str, Any] | None:
        """The lock's body as it is now (None when there is no lock; ``{}`` when unreadable)."""
        try:
            held = json.loads(self.fs.cat_file(self.path))
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, UnicodeDecodeError):
            return {}  # a torn body (another writer's PUT in flight): treated as held
        return held if isinstance(held, dict) else {}

    def _ours(self) -> bool:
        held = self.read()
        return held is not None and held.get("token") == self.token

    def _create(self) -> bool:
        body = self._body()
        if self.spec.protocol == "file":
            directory = os.path.dirname(self.path)
            os.makedirs(directory, exist_ok=True)
            tmp = f"{self.path}.{uuid.uuid4().hex}"
            with open(tmp, "wb") as f:
                f.write(body)
            try:
                os.link(tmp, self.path)
            except FileExistsError:
                return False
            finally:
                os.unlink(tmp)
            return True
        if conditional_writes(self.spec, self.fs, self.path):
            try:
                self.fs.pipe_file(self.path, body, mode="create")
            except OSError as exc:
                if not _refused_by_condition(exc):
                    raise
                # Refused, or a retried PUT of ours that had gone through: look whose it is.
                return self._ours()
            return True
        if self.read() is not None:
            return False
        self.fs.pipe_file(self.path, body)
        time.sleep(_MEMORY_SETTLE_SECONDS if self.spec.protocol == "memory" else SETTLE_SECONDS)
        return self._ours()

    def stale(self, held: dict[str, Any]) -> bool:
        """Whether a lock body is left over from a dead or silent holder."""
        pid = held.get("pid")
        if held.get("host") == socket.gethostname() and isinstance(pid, int) and not pid_alive(pid):
            return True
        try:
            since = float(held.get("time", 0))
        except (TypeError, ValueError):
            since = 0.0
        return time.time() - since > self.stale_after

    def _break(self, held: dict[str, Any]) -> None:
        """Remove a stale lock, unless it changed hands since it was read."""
        again = self.read()
        if again is None or again.get("token") != held.get("token"):
            return
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self.path)

    def try_acquire(self) -> bool:
        """Take the lock if it is free (or stale); True when this object holds it now."""
        for _ in range(3):  # a stale lock is broken, then taken on the next round
            if self._create():
                self._start_heartbeat()
                return True
            held = self.read()
            if held is None:
                continue  # released meanwhile
            if not self.stale(held):
                return False
            self._break(held)
        return False

    def acquire(self, timeout: float = 30.0) -> None:
        """Wait up to ``timeout`` seconds for the lock.

        Raises:
            PublishConflict: Another writer held it all that time.
        """
        deadline = time.monotonic() + timeout
        while not self.try_acquire():
            if time.monotonic() > deadline:
                raise PublishConflict(
                    f"{self.spec.url}/{self.rel} is held by another writer "
                    f"({self.describe_holder()}) while {self.what}; retry later, or delete it "
                    "if no other writer is running"
                )
            time.sleep(0.2)

    def describe_holder(self) -> str:
        """Who holds the lock now, for messages."""
        held = self.read()
        if held is None:
            return "released just now"
        if not held:
            return "holder unknown"
        when = held.get("time")
        age = f", {time.time() - float(when):.0f} s ago" if isinstance(when, int | float) else ""
        who = f"pid {held.get('pid', '?')} on {held.get('host', '?')}"
        return f"{who}{age}"

    def release(self) -> None:
        """Give the lock up (if this object still holds it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._ours():
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self.path)

    # ------------------------------------------------------------ heartbeat

    def _start_heartbeat(self) -> None:
        if not self._heartbeat:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._beat, name=f"lock-heartbeat {self.rel}", daemon=True
        )
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.stale_after / 4):
            try:
                if self._ours():
                    self._refresh()
            except OSError:
                pass  # a transient storage fault: the next beat tries again

    def _refresh(self) -> None:
        body = self._body()
        if self.spec.protocol == "file":
            tmp = f"{self.path}.{uuid.uuid4().hex}"
            with open(tmp, "wb") as f:
                f.write(body)
            os.replace(tmp, self.path)
        else:
            self.fs.pipe_file(self.path, body)

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
