"""ClusterSpec and the pure parts of the cluster connection: addresses, sizes, version checks."""

from __future__ import annotations

import pytest

from lake.config import store_spec
from lake.errors import ConfigError
from pipelines.cluster.runner import Runner
from pipelines.cluster.spec import (
    ClusterError,
    ClusterSpec,
    check_versions,
    parse_memory,
    version_mismatches,
)


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("local", "local"),
        ("threads", "threads"),
        ("sync", "sync"),
        ("gateway://127.0.0.1:8000", "gateway"),
        ("http://gateway.example.org", "gateway"),
        ("https://hub.example.org/services/dask-gateway", "gateway"),
        ("tcp://scheduler:8786", "scheduler"),
        ("tls://scheduler:8786", "scheduler"),
    ],
)
def test_address_kinds(address, kind):
    assert ClusterSpec(address).kind == kind


@pytest.mark.parametrize("address", ["gpu", "ftp://x:1", "gateway://", "s3://bucket", ""])
def test_bad_addresses_name_the_choices(address):
    with pytest.raises(ConfigError, match=r"--cluster .*gateway://host:port"):
        ClusterSpec(address)


def test_gateway_addresses():
    assert ClusterSpec("gateway://127.0.0.1:8000").gateway_addresses() == (
        "http://127.0.0.1:8000",
        "gateway://127.0.0.1:8000",
    )
    # An http(s) address: dask-gateway derives the proxy (or DASK_GATEWAY__PROXY_ADDRESS).
    assert ClusterSpec("https://hub.example.org/gw/").gateway_addresses() == (
        "https://hub.example.org/gw",
        None,
    )


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("4GiB", 4 * 2**30),
        ("4 Gi", 4 * 2**30),
        ("512MiB", 512 * 2**20),
        ("1.5GiB", int(1.5 * 2**30)),
        ("8GB", 8 * 10**9),
        ("8g", 8 * 10**9),
        ("100000", 100000),
        ("2TiB", 2 * 2**40),
    ],
)
def test_parse_memory(text, size):
    assert parse_memory(text) == size
    assert ClusterSpec("local", worker_memory=text).worker_memory == size


@pytest.mark.parametrize("text", ["lots", "4 GiBs", "-1GiB", "0", "4XB", "iB", "1e9", ""])
def test_bad_worker_memory(text):
    with pytest.raises(ConfigError, match=r"--worker-memory .*(memory size|more than 0)"):
        ClusterSpec("gateway://127.0.0.1:8000", worker_memory=text)


def test_bad_counts():
    with pytest.raises(ConfigError, match="--workers must be at least 1"):
        ClusterSpec("local", workers=0)
    with pytest.raises(ConfigError, match="--worker-cores must be at least 1"):
        ClusterSpec("local", worker_cores=0)


def test_defaults():
    assert ClusterSpec("gateway://h:1").n_workers == 2
    assert ClusterSpec("gateway://h:1", workers=5).n_workers == 5
    assert ClusterSpec("threads", workers=3).n_workers == 3


def test_with_store_puts_credentials_in_the_environment_only_for_a_gateway():
    s3 = store_spec(
        "s3://lake/x", endpoint_url="http://127.0.0.1:9", key="AKIA", secret="s3cr3t", environ={}
    )
    gateway = ClusterSpec("gateway://127.0.0.1:8000", password="pw").with_store(s3)
    assert dict(gateway.environment) == {
        "AWS_ACCESS_KEY_ID": "AKIA",
        "AWS_SECRET_ACCESS_KEY": "s3cr3t",
    }
    assert "s3cr3t" not in repr(gateway) and "pw" not in repr(gateway)
    assert ClusterSpec("local").with_store(s3) == ClusterSpec("local")
    local_lake = store_spec("/tmp/lake", environ={})
    assert ClusterSpec("gateway://h:1").with_store(local_lake).environment == ()


def test_a_gateway_password_does_not_bother_other_clusters():
    # LAKE_GATEWAY_PASSWORD may be exported while a job runs locally.
    assert ClusterSpec("local", password="pw").kind == "local"


def _versions(**override: dict[str, str | None]) -> dict:
    base = {
        "python": "3.11.7.final.0",
        "dask": "2026.8.0",
        "distributed": "2026.8.0",
        "cloudpickle": "3.1.3",
        "bigearthnet-lake": "0.1.0",
    }
    client = {"packages": dict(base)}
    scheduler = {"packages": {**base, **override.get("scheduler", {})}}
    workers = {
        "tls://10.0.0.1:1": {"packages": {**base, **override.get("w1", {})}},
        "tls://10.0.0.2:1": {"packages": {**base, **override.get("w2", {})}},
    }
    return {"client": client, "scheduler": scheduler, "workers": workers}


def test_same_versions_pass():
    assert version_mismatches(_versions()) == []
    # Python patch releases may differ (pickles depend on major.minor).
    assert version_mismatches(_versions(w1={"python": "3.11.9.final.0"})) == []
    check_versions(_versions(), "gateway://h:1")


def test_version_mismatches_name_package_and_where():
    versions = _versions(
        w2={"dask": "2025.1.0", "bigearthnet-lake": "0.0.9"},
        scheduler={"python": "3.12.1.final.0"},
    )
    assert version_mismatches(versions) == [
        "python: client 3.11, scheduler 3.12",
        "dask: client 2026.8.0, worker tls://10.0.0.2:1 2025.1.0",
        "bigearthnet-lake: client 0.1.0, worker tls://10.0.0.2:1 0.0.9",
    ]
    with pytest.raises(ClusterError, match=r"gateway://h:1 runs other software .*constraints"):
        check_versions(versions, "gateway://h:1")


def test_package_missing_on_workers():
    versions = _versions(w1={"bigearthnet-lake": None}, w2={"bigearthnet-lake": None})
    assert version_mismatches(versions) == [
        "bigearthnet-lake: client 0.1.0, worker tls://10.0.0.1:1 missing, "
        "worker tls://10.0.0.2:1 missing"
    ]
    # The scheduler need not have the project installed (only python, dask, distributed).
    assert version_mismatches(_versions(scheduler={"bigearthnet-lake": None})) == []


def test_scheduler_not_running():
    spec = ClusterSpec("tcp://127.0.0.1:9", ready_timeout=1)
    with pytest.raises(ClusterError, match=r"no Dask scheduler answers at tcp://127\.0\.0\.1:9"):
        Runner(spec).__enter__()
