"""No test leaves threads or processes behind: a pytest plugin (loaded by tests/conftest.py).

For each test, the threads and child processes alive when its body starts are recorded; after
its teardown (its function-scoped fixtures have stopped what they started) and a garbage
collection, anything new that is still alive after a short grace period fails the test's
teardown, named. What longer-scoped
fixtures start for the test (the session's S3 endpoint, a module's server) is set up before the
body starts, so it is not counted against the test.

Threads that libraries start once per process and keep by design are not leaks; they are
listed in :data:`PROCESS_WIDE_THREADS` by name, with the library that owns each.
"""

from __future__ import annotations

import gc
import re
import threading
import time
from collections.abc import Iterator

import psutil
import pytest

#: Threads a library starts once and keeps for the life of the process (name patterns).
PROCESS_WIDE_THREADS = (
    r"zarr_io",  # zarr's event loop thread (zarr.core.sync)
    r"fsspecIO",  # fsspec's event loop thread (fsspec.asyn)
    r"asyncio_\d+",  # the default executor of those event loops
    r"ThreadPoolExecutor-\d+_\d+",  # idle workers of library-owned pools (zarr, pyarrow, dask)
    r"Dask-Offload_\d+",  # distributed's offload executor
    r"TCP-Executor-\d+-\d+",  # distributed's comm executor
    r"Profile",  # distributed's profiler thread of a worker in this process
    r"AsyncProcess Dask Worker process \(from Nanny\) watch process join",
    r"IO loop",  # distributed's IOLoop thread of a Client
    r"QueueFeederThread",  # multiprocessing.Queue's feeder (ends with the queue's process)
    r"AnyIO worker thread",  # anyio's idle worker threads (starlette's TestClient), reused
    r".* - runner",  # jupyter_core's run_sync loop thread (nbclient, jupyter_client)
    r"pydevd\..*",  # a debugger
    r"tqdm_monitor",  # tqdm's monitor: started by the first bar, a disabled one too, which
    # leaves tqdm's list of bars at once and so never stops it (tqdm.std.tqdm.__new__/__init__)
)
#: Processes a library starts once per process (by command-line fragment).
PROCESS_WIDE_PROCESSES = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")
#: How long a test's threads and processes may take to end after its teardown.
GRACE_SECONDS = 5.0

_WIDE = re.compile("|".join(f"(?:{p})" for p in PROCESS_WIDE_THREADS))


def _threads() -> dict[int, threading.Thread]:
    return {t.ident: t for t in threading.enumerate() if t.ident is not None}


def _children() -> dict[int, str]:
    out = {}
    for child in psutil.Process().children(recursive=True):
        try:
            out[child.pid] = " ".join(child.cmdline())[:200]
        except psutil.Error:
            continue
    return out


def _name(t: threading.Thread) -> str:
    target = getattr(t, "_target", None)
    where = getattr(target, "__qualname__", None)
    return f"{t.name} ({getattr(target, '__module__', '?')}.{where})" if where else t.name


def _leaks(threads: set[int], children: set[int]) -> tuple[list[str], list[str]]:
    new_threads = [
        _name(t)
        for ident, t in _threads().items()
        if ident not in threads and t.is_alive() and not _WIDE.fullmatch(t.name)
    ]
    new_children = [
        f"pid {pid}: {cmd}"
        for pid, cmd in _children().items()
        if pid not in children and not any(p in cmd for p in PROCESS_WIDE_PROCESSES)
    ]
    return new_threads, new_children


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Record what is alive when the test body starts."""
    item.stash[_BEFORE] = (set(_threads()), set(_children()))
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    """After the teardown: fail if the test left threads or processes running."""
    result = yield
    before = item.stash.get(_BEFORE, None)
    if before is None or item.get_closest_marker("leaves_threads"):
        return result
    deadline = time.monotonic() + GRACE_SECONDS
    threads, children = _leaks(*before)
    if threads or children:
        # What the test no longer references but a reference cycle still holds (a dataset and
        # its thread pools) is not a leak: collect it, which stops its threads.
        gc.collect()
        threads, children = _leaks(*before)
    while (threads or children) and time.monotonic() < deadline:
        time.sleep(0.1)
        threads, children = _leaks(*before)
    if threads or children:
        raise AssertionError(
            f"{item.nodeid} left running: threads {threads}, processes {children} "
            f"({GRACE_SECONDS:.0f} s after its teardown)"
        )
    return result


_BEFORE = pytest.StashKey[tuple[set[int], set[int]]]()
