"""Where pipeline tasks run: a local Dask cluster, a scheduler address, threads, or in-process.

A pipeline step is a plain function of picklable arguments; :func:`run_tasks` runs many of them
on the cluster named by ``--cluster`` and yields results as they complete, with a progress bar.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, TypeVar

from tqdm.auto import tqdm

from lake.errors import ConfigError

T = TypeVar("T")
R = TypeVar("R")

CLUSTER_HELP = (
    "where tasks run: 'local' (a Dask LocalCluster of processes, the default), 'threads' "
    "(threads in this process), 'sync' (one by one, for debugging), or a Dask scheduler "
    "address such as tcp://host:8786"
)


@dataclass(frozen=True)
class ClusterSpec:
    """Which cluster to use.

    Attributes:
        address: ``local``, ``threads``, ``sync`` or a scheduler address (``tcp://...``).
        workers: Number of workers (local cluster, threads); None = one per core.
    """

    address: str = "local"
    workers: int | None = None

    def __post_init__(self) -> None:
        if self.address not in ("local", "threads", "sync") and "://" not in self.address:
            raise ConfigError(f"--cluster {self.address!r}: {CLUSTER_HELP}")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {self.workers}")

    @property
    def n_workers(self) -> int:
        """The number of workers a local cluster or thread pool gets."""
        return self.workers or os.cpu_count() or 1


class Runner:
    """Runs tasks on one cluster; a context manager that owns the cluster's lifetime."""

    def __init__(self, cluster: ClusterSpec) -> None:
        self.cluster = cluster
        self._stack = contextlib.ExitStack()
        self._client: Any = None
        self._pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> Runner:
        address = self.cluster.address
        if address == "threads":
            self._pool = self._stack.enter_context(ThreadPoolExecutor(self.cluster.n_workers))
        elif address != "sync":
            from distributed import Client, LocalCluster

            if address == "local":
                local = LocalCluster(
                    n_workers=self.cluster.n_workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",
                    silence_logs=40,
                )
                self._stack.enter_context(local)
                self._client = self._stack.enter_context(Client(local))
            else:
                self._client = self._stack.enter_context(Client(address))
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    @property
    def dashboard(self) -> str | None:
        """The Dask dashboard link, when there is one."""
        return None if self._client is None else str(self._client.dashboard_link)

    def map(
        self,
        fn: Callable[..., R],
        items: Sequence[Any],
        *args: Any,
        desc: str = "",
        progress: bool = True,
    ) -> Iterator[R]:
        """Run ``fn(item, *args)`` for every item; yield results as they complete.

        The first task that raises stops the run: its error propagates, and pending tasks are
        cancelled.
        """
        bar = tqdm(total=len(items), desc=desc, unit="task", disable=not progress, leave=False)
        try:
            if not items:
                return
            if self._client is not None:
                from distributed import as_completed as dask_completed

                scattered = [self._client.scatter(a, broadcast=True) for a in args]
                futures = self._client.map(
                    fn, items, *[[s] * len(items) for s in scattered], pure=False
                )
                try:
                    for fut in dask_completed(futures):
                        yield fut.result()
                        bar.update()
                finally:
                    self._client.cancel(futures)
            elif self._pool is not None:
                pending = [self._pool.submit(fn, item, *args) for item in items]
                try:
                    for fut in as_completed(pending):
                        yield fut.result()
                        bar.update()
                finally:
                    for fut in pending:
                        fut.cancel()
            else:
                for item in items:
                    yield fn(item, *args)
                    bar.update()
        finally:
            bar.close()
