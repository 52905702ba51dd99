"""Jobs on a real Dask Gateway: dask-gateway-server from infra/gateway/ on loopback, the embedded
S3 endpoint, and the same outputs as a local run; no cluster left behind after success, a failing
task, Ctrl-C or SIGTERM; credentials reach the workers through the cluster's environment only."""

from __future__ import annotations

import json
import operator
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from dask_gateway import BasicAuth, Gateway

from lake.config import StoreSpec
from lake.errors import ConfigError
from lake.reader import open_lake
from lake.storage import filesystem
from pipelines.cluster.gateway import close_gateway
from pipelines.cluster.runner import Runner
from pipelines.cluster.spec import ClusterError, ClusterSpec
from pipelines.jobs.ingest import IngestOptions, IngestReport, ingest
from pipelines.jobs.stats import compute_stats
from pipelines.local.gateway import GatewayEndpoint, LocalGateway
from pipelines.local.s3 import free_port
from pipelines.sources.open import open_source
from pipelines.synth import synthesize
from tests.conftest import s3_spec_for

pytestmark = pytest.mark.s3
# Functions of this module run on the Gateway's workers: they import it from these folders.
IMPORTABLE = (("PYTHONPATH", f"{Path(__file__).parent}:{Path(__file__).parents[3]}"),)

N = 30
OPTS = IngestOptions(release="g1", samples_per_shard=8, scan_batch=8, progress=False)


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalGateway]:
    """dask-gateway-server (infra/gateway/dask_gateway_config.py) on a free loopback port."""
    with LocalGateway(tmp_path_factory.mktemp("gateway")) as gw:
        yield gw


def running_clusters(endpoint: GatewayEndpoint) -> list[str]:
    """Names of the clusters that are pending or running (or still stopping)."""
    auth = BasicAuth("tester", endpoint.password)
    gw = Gateway(endpoint.http_address, proxy_address=endpoint.address, auth=auth)
    try:
        return [c.name for c in gw.list_clusters(status=["pending", "running", "stopping"])]
    finally:
        close_gateway(gw)


def assert_no_cluster_left(gw: LocalGateway, timeout: float = 20.0) -> None:
    """The gateway lists no live cluster and has removed every cluster's working folder."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not running_clusters(gw.endpoint) and not any(gw.clusters_directory.iterdir()):
            return
        time.sleep(0.2)
    raise AssertionError(
        f"clusters left: {running_clusters(gw.endpoint)}, "
        f"folders {sorted(p.name for p in gw.clusters_directory.iterdir())}"
    )


def data_objects(spec: StoreSpec, release: str) -> dict[str, str]:
    """Path -> sha256 of the Zarr objects of a release, from its manifest."""
    manifest = open_lake(spec).release(release).manifest
    return {o["path"]: o["sha256"] for o in manifest["objects"] if ".zarr/" in o["path"]}


def gateway_spec(gw: LocalGateway, **kw: object) -> ClusterSpec:
    return ClusterSpec(gw.endpoint.address, password=gw.endpoint.password, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def source_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gwsrc") / "folders"
    synthesize(N, out, fmt="folders", seed=11)
    return out


@dataclass(frozen=True)
class Lakes:
    """The same source ingested twice on S3: in-process, and on the Gateway."""

    local: StoreSpec
    remote: StoreSpec
    cluster: ClusterSpec
    report: IngestReport


@pytest.fixture(scope="module")
def lakes(gateway, s3_server, source_dir) -> Lakes:
    local = s3_spec_for(s3_server)
    ingest(open_source(source_dir), local, OPTS, ClusterSpec("sync"))
    remote = s3_spec_for(s3_server)
    cluster = gateway_spec(gateway, workers=2, worker_memory="1GiB").with_store(remote)
    report = ingest(open_source(source_dir), remote, OPTS, cluster)
    return Lakes(local, remote, cluster, report)


def test_ingest_on_gateway_equals_local_run(lakes, gateway):
    assert lakes.report.patches == N and lakes.report.n_quarantined == 0
    want, got = data_objects(lakes.local, "g1"), data_objects(lakes.remote, "g1")
    assert len(want) > 10 and got == want
    for m in (lakes.local, lakes.remote):
        paths = [o["path"] for o in open_lake(m).release("g1").manifest["objects"]]
        assert any(p.startswith("tables/g1/patches") for p in paths)
    assert_no_cluster_left(gateway)
    # The S3 secret is neither in the gateway's log nor in the cluster spec's repr.
    secret = lakes.remote.secret
    log = gateway.log.read_text()
    assert secret and secret not in log and gateway.endpoint.password not in log
    assert secret not in repr(lakes.cluster)


def test_stats_on_gateway_equal_local_run(lakes, gateway):
    got = compute_stats(lakes.remote, "g1", cluster=lakes.cluster)
    want = compute_stats(lakes.local, "g1", cluster=ClusterSpec("sync"))
    assert got.table.num_rows > 0 and got.table.equals(want.table)
    assert_no_cluster_left(gateway)


def _seen_by_worker(item: int, spec: StoreSpec) -> dict[str, object]:
    """On a worker: what the task got, what the environment holds, and whether S3 answers."""
    return {
        "key": spec.key,
        "secret": spec.secret,
        "env_secret": os.environ.get("AWS_SECRET_ACCESS_KEY"),
        "listed": filesystem(spec).exists(spec.path("probe.txt")),
        "threads": __import__("distributed").get_worker().state.nthreads,
    }


def _task_keys(dask_scheduler) -> list[str]:
    return [str(k) for k in dask_scheduler.tasks]


def test_credentials_travel_in_the_cluster_environment(gateway, s3_server):
    spec = s3_spec_for(s3_server)
    filesystem(spec).pipe(spec.path("probe.txt"), b"x")
    cluster = gateway_spec(gateway, workers=1, worker_cores=2, environment=IMPORTABLE)
    cluster = cluster.with_store(spec)
    with Runner(cluster) as runner:
        assert runner.dashboard and runner.dashboard.startswith(gateway.endpoint.http_address)
        (seen,) = list(runner.map(_seen_by_worker, [0], spec, progress=False))
        keys = runner._client.run_on_scheduler(_task_keys)
    assert seen == {
        "key": None,
        "secret": None,
        "env_secret": spec.secret,
        "listed": True,
        "threads": 2,
    }
    assert spec.secret and not any(spec.secret in k for k in keys)
    assert_no_cluster_left(gateway)


def test_failing_task_leaves_no_cluster(gateway):
    with pytest.raises(ZeroDivisionError), Runner(gateway_spec(gateway, workers=1)) as runner:
        list(runner.map(operator.truediv, [1, 2, 3], 0, progress=False))
    assert_no_cluster_left(gateway)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_shuts_the_cluster_down(gateway, signum):
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signum))
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt), Runner(gateway_spec(gateway, workers=1)) as runner:
        timer.start()
        list(runner.map(time.sleep, [60, 60], progress=False))
    timer.join()
    assert time.monotonic() - t0 < 30
    assert_no_cluster_left(gateway)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored


def test_idle_timeout_is_the_second_guard(gateway):
    """A cluster nobody shuts down (its client crashed) goes away after the idle timeout."""
    auth = BasicAuth("tester", gateway.endpoint.password)
    endpoint = gateway.endpoint
    gw = Gateway(endpoint.http_address, proxy_address=endpoint.address, auth=auth)
    try:
        options = gw.cluster_options()
        options.idle_timeout = 1
        cluster = gw.new_cluster(options, shutdown_on_close=False)
        cluster.close(shutdown=False)  # the client goes; the cluster stays, idle
        close_gateway(cluster.gateway)
    finally:
        close_gateway(gw)
    assert_no_cluster_left(gateway, timeout=30)


def test_wrong_password_names_the_address(gateway):
    spec = ClusterSpec(gateway.endpoint.address, password="not-the-password")
    with pytest.raises(ClusterError, match=r"gateway://127\.0\.0\.1:\d+ refused the credentials"):
        Runner(spec).__enter__()


def test_gateway_not_running():
    address = f"gateway://127.0.0.1:{free_port()}"
    with (
        pytest.raises(ClusterError, match="no Dask Gateway answers at " + address),
        Runner(ClusterSpec(address, password="x")),
    ):
        pass


def test_options_the_gateway_refuses(gateway):
    too_many = (os.cpu_count() or 1) + 1
    with (
        pytest.raises(ConfigError, match=r"--worker-cores .*refuses"),
        Runner(gateway_spec(gateway, worker_cores=too_many)),
    ):
        pass
    with (
        pytest.raises(ConfigError, match=r"--worker-memory 0\.125GiB: .* refuses it: .*>= 0\.25"),
        Runner(gateway_spec(gateway, worker_memory="128MiB")),
    ):
        pass
    with pytest.raises(ConfigError, match="not a memory size"):
        gateway_spec(gateway, worker_memory="lots")
    assert_no_cluster_left(gateway)


def test_gateway_server_dies_with_its_parent(tmp_path):
    """`kill -9` of the process that started the gateway takes the gateway down too."""
    script = (
        "import sys, json; from pipelines.local.gateway import LocalGateway\n"
        f"gw = LocalGateway({str(tmp_path)!r}); e = gw.start()\n"
        "print(json.dumps({'port': e.port, 'pid': gw._proc.pid}), flush=True)\n"
        "import time; time.sleep(120)\n"
    )
    import subprocess

    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(proc.stdout.readline())  # type: ignore[union-attr]
    finally:
        proc.kill()
        proc.communicate()  # waits, and closes its pipe
    deadline = time.monotonic() + 20
    status = Path(f"/proc/{info['pid']}/status")
    while time.monotonic() < deadline:
        try:
            if "State:\tZ" in status.read_text():  # exited; init has not reaped it yet
                return
        except FileNotFoundError:
            return
        time.sleep(0.2)
    os.kill(info["pid"], signal.SIGKILL)
    raise AssertionError("the gateway outlived its parent")


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _gone(pid: int) -> bool:
    try:
        return "State:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True


def test_clusters_die_with_a_killed_gateway(tmp_path):
    """kill -9 of dask-gateway-server: its schedulers, workers and proxy go too."""
    gw = LocalGateway(tmp_path)
    endpoint = gw.start()
    client = Gateway(
        endpoint.http_address,
        proxy_address=endpoint.address,
        auth=BasicAuth("tester", endpoint.password),
    )
    cluster = None
    try:
        cluster = client.new_cluster(shutdown_on_close=False)
        cluster.scale(1)
        server = gw._proc.pid  # type: ignore[union-attr]
        deadline = time.monotonic() + 30
        while len(_children(server)) < 3 and time.monotonic() < deadline:  # proxy, sched., worker
            time.sleep(0.2)
        children = _children(server)
        assert len(children) >= 3
        os.kill(server, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while not all(_gone(p) for p in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [p for p in children if not _gone(p)] == []
    finally:
        if cluster is not None:
            cluster.close(shutdown=False)
            close_gateway(cluster.gateway)
        close_gateway(client)
        gw.stop()


def test_other_package_version_on_the_workers_is_refused_up_front(gateway, tmp_path):
    """Workers that see another bigearthnet-lake: a clear error before any task, no cluster left."""
    fake = tmp_path / "site"
    meta = fake / "bigearthnet_lake-9.9.9.dist-info"
    meta.mkdir(parents=True)
    (meta / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: bigearthnet-lake\nVersion: 9.9.9\n"
    )
    spec = gateway_spec(gateway, workers=1, environment=(("PYTHONPATH", str(fake)),))
    with pytest.raises(ClusterError) as caught, Runner(spec):
        pytest.fail("the runner must not start")
    message = str(caught.value)
    assert f"the cluster at {gateway.endpoint.address} runs other software" in message
    assert "bigearthnet-lake: client 0.1.0, worker tls://127.0.0.1:" in message
    assert "9.9.9" in message and "constraints.txt" in message
    assert_no_cluster_left(gateway)
