"""Where pipeline tasks run: a Dask Gateway, a local Dask cluster, a scheduler, threads, in-process.

A pipeline step is a plain function of picklable arguments; :class:`Runner` runs many of them on
the cluster named by ``--cluster`` and yields results as they complete, with a progress bar::

    with Runner(ClusterSpec("gateway://127.0.0.1:8000", workers=4).with_store(spec)) as r:
        for result in r.map(task, items, spec):
            ...

With a Gateway address the runner creates a cluster with the requested worker cores, memory and
environment, scales it, checks that the workers run the same software as this process, prints
the dashboard link, and shuts the cluster down when the block ends: normally, on an error, on
Ctrl-C and on SIGTERM (the gateway's idle timeout is the second guard). S3 credentials go to the
workers in the cluster's environment; the store specs sent with the tasks then carry none.
The cluster is described by a :class:`~pipelines.cluster.spec.ClusterSpec`; the Gateway side
lives in :mod:`pipelines.cluster.gateway`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import replace
from typing import Any, TypeVar

from tqdm.auto import tqdm

from lake.config import StoreSpec
from pipelines.cluster.spec import DISTRIBUTION, ClusterError, ClusterSpec, check_versions

T = TypeVar("T")
R = TypeVar("R")


class Runner:
    """Runs tasks on one cluster; a context manager that owns the cluster's lifetime."""

    def __init__(self, cluster: ClusterSpec) -> None:
        self.cluster = cluster
        self._stack = contextlib.ExitStack()
        self._client: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self._dashboard: str | None = None
        self._env_credentials: tuple[str, str] | None = None
        self.cluster_name: str | None = None

    def __enter__(self) -> Runner:
        try:
            self._open()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _open(self) -> None:
        kind = self.cluster.kind
        if kind == "threads":
            self._pool = self._stack.enter_context(ThreadPoolExecutor(self.cluster.n_workers))
        elif kind == "local":
            from distributed import Client, LocalCluster

            local = LocalCluster(
                n_workers=self.cluster.n_workers,
                threads_per_worker=self.cluster.worker_cores or 1,
                memory_limit=self.cluster.worker_memory or "auto",
                processes=True,
                dashboard_address=":0",
                silence_logs=40,
            )
            self._stack.enter_context(local)
            self._client = self._stack.enter_context(Client(local))
        elif kind == "scheduler":
            from distributed import Client

            try:
                self._client = self._stack.enter_context(
                    Client(self.cluster.address, timeout=self.cluster.ready_timeout)
                )
            except OSError as exc:
                raise ClusterError(
                    f"no Dask scheduler answers at {self.cluster.address} ({exc}); check --cluster"
                ) from None
            self._check_versions()
        elif kind == "gateway":
            from pipelines.cluster.gateway import open_gateway_cluster

            opened = open_gateway_cluster(self.cluster, self._stack)
            self._client, self._dashboard = opened.client, opened.dashboard
            self.cluster_name, self._env_credentials = opened.name, opened.env_credentials

    def _check_versions(self) -> None:
        check_versions(self._client.get_versions(packages=[DISTRIBUTION]), self.cluster.address)

    @property
    def dashboard(self) -> str | None:
        """The Dask dashboard link, when there is one."""
        if self._dashboard is not None:
            return self._dashboard
        return None if self._client is None else str(self._client.dashboard_link)

    def _outbound(self, arg: Any) -> Any:
        """A task argument as sent: store specs lose credentials the workers' environment has."""
        creds = self._env_credentials
        if isinstance(arg, StoreSpec) and creds is not None and (arg.key, arg.secret) == creds:
            return replace(arg, key=None, secret=None)
        return arg

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

                # hash=False: a random key per scatter. With content keys, a second map with the
                # same arguments (staging, then the scan) reused the key the first map's futures
                # were releasing, and its tasks were cancelled for "lost dependencies" (dask
                # distributed issue 4612; stumpy issue 289).
                scattered = [
                    self._client.scatter(self._outbound(a), broadcast=True, hash=False)
                    for a in args
                ]
                futures = self._client.map(
                    fn, items, *[[s] * len(items) for s in scattered], pure=False
                )
                try:
                    for fut in dask_completed(futures, loop=self._client.loop):
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
