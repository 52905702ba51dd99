"""LakeDataset on the embedded S3 endpoint: fork safety, injected faults, retries."""

from __future__ import annotations

import pickle
from dataclasses import replace

import pytest
import torch
from torch.utils.data import DataLoader

from lake.errors import ShardReadError
from lake.loader import LakeDataLoader, LakeDataset, ReadOptions, collate_samples
from tests.lake.loader.helpers import N_PAIRS, PER_SHARD, batch_ids, ids
from tests.support.fault_proxy import FaultProxy

pytestmark = pytest.mark.s3
TIMEOUT = 120
MODS = ["s2_10m", "s1", "labels"]


@pytest.mark.timeout(240)
def test_used_after_fork_in_two_workers_on_s3(loader_lake, loader_lake_s3):
    """Regression: a dataset built (and used) in the parent works in forked DataLoader workers."""
    ds = LakeDataset(loader_lake_s3, modalities=MODS, seed=2)
    it = iter(ds)
    next(it)  # the parent now holds S3 clients, an event loop and threads
    ds = pickle.loads(pickle.dumps(ds))
    ds.set_epoch(1)
    dl = DataLoader(ds, batch_size=8, num_workers=2, timeout=TIMEOUT, collate_fn=collate_samples)
    got = {pid: (b["s2_10m"][i], b["s1"][i]) for b in dl for i, pid in enumerate(b["patch_id"])}
    assert len(got) == N_PAIRS
    local = LakeDataset(loader_lake.spec, modalities=MODS, seed=2)
    for s in list(local)[::11]:
        assert torch.equal(got[s["patch_id"]][0], s["s2_10m"])
        assert torch.equal(got[s["patch_id"]][1], s["s1"])


@pytest.mark.timeout(240)
def test_transient_faults_do_not_change_what_is_delivered(loader_lake, loader_lake_s3):
    clean = list(LakeDataLoader(LakeDataset(loader_lake.spec, modalities=MODS, seed=9), 16))
    with FaultProxy(loader_lake_s3.endpoint_url or "", fail_every=3, drop_every=5) as proxy:
        spec = replace(loader_lake_s3, endpoint_url=proxy.url)
        fast_retries = ReadOptions(retry_delay=0.01, max_retries=8)
        ds = LakeDataset(spec, modalities=MODS, seed=9, read=fast_retries)
        faulty = list(LakeDataLoader(ds, 16))
        stats = ds._runtime.reader.stats
    assert proxy.injected >= 3 and stats.retries >= 1
    assert batch_ids(faulty) == batch_ids(clean)
    for a, b in zip(clean, faulty, strict=True):
        assert torch.equal(a["s2_10m"], b["s2_10m"]) and torch.equal(a["s1"], b["s1"])
        assert torch.equal(a["labels"], b["labels"])


@pytest.mark.timeout(240)
def test_sparse_reads_survive_faults_too(loader_lake, loader_lake_s3):
    in_order = LakeDataset(loader_lake.spec, modalities=["labels"], shuffle=False)
    chosen = ids(in_order)[::6]  # 1 in 6: under dense_fraction, so byte ranges
    clean = {
        s["patch_id"]: s["s1"]
        for s in LakeDataset(loader_lake.spec, select=chosen, modalities=MODS)
    }
    with FaultProxy(loader_lake_s3.endpoint_url or "", fail_every=4, drop_every=7) as proxy:
        spec = replace(loader_lake_s3, endpoint_url=proxy.url)
        read = ReadOptions(retry_delay=0.01, max_retries=8)
        ds = LakeDataset(spec, select=chosen, modalities=MODS, read=read)
        got = {s["patch_id"]: s["s1"] for s in ds}
        stats = ds._runtime.reader.stats
    assert any(lo is not None and lo >= 0 for lo, _ in stats.ranges)  # byte ranges were used
    assert proxy.injected >= 1 and got.keys() == clean.keys()
    assert all(torch.equal(got[k], clean[k]) for k in clean)


@pytest.mark.timeout(240)
def test_a_permanent_fault_names_the_shard_or_is_skipped(loader_lake_s3):
    with FaultProxy(loader_lake_s3.endpoint_url or "", always_fail="/s1/c/3/", status=500) as proxy:
        spec = replace(loader_lake_s3, endpoint_url=proxy.url)
        ds = LakeDataset(spec, modalities=MODS, read=ReadOptions(retry_delay=0.01, max_retries=2))
        with pytest.raises(ShardReadError, match=r"shard 3 of array 's1' \(samples 48\.\.63\)"):
            list(ds)
        read = ReadOptions(retry_delay=0.01, max_retries=1)
        ds = LakeDataset(spec, modalities=MODS, skip_errors=True, read=read)
        dl = LakeDataLoader(ds, batch_size=8, num_workers=2, timeout=TIMEOUT)
        got = batch_ids(dl)
    assert len(got) == N_PAIRS - PER_SHARD
    assert ds.errors == PER_SHARD and dl.state_dict()["errors"] == PER_SHARD


def _shard_gets(proxy: FaultProxy) -> int:
    return proxy.whole_gets  # whole-object GETs of chunk-grid keys (".../c/...")


@pytest.mark.timeout(240)
def test_workers_share_whole_shard_reads_through_the_spool(loader_lake, loader_lake_s3, tmp_path):
    """Two workers fetch each shard object once (not once each), and the spool is removed."""
    gets = {}
    delivered = {}
    for share in (True, False):
        with FaultProxy(loader_lake_s3.endpoint_url or "") as proxy:
            spec = replace(loader_lake_s3, endpoint_url=proxy.url)
            ds = LakeDataset(spec, modalities=MODS, seed=4)
            dl = LakeDataLoader(
                ds, 8, num_workers=2, timeout=TIMEOUT, share_reads=share, spool_dir=tmp_path
            )
            delivered[share] = batch_ids(dl)
            gets[share] = _shard_gets(proxy)
    objects = 2 * -(-N_PAIRS // PER_SHARD)  # two raster arrays, every shard
    assert delivered[True] == delivered[False]  # the spool changes I/O only, never the order
    assert gets[True] == objects < gets[False]
    assert list(tmp_path.iterdir()) == []  # the epoch's spool is gone


@pytest.mark.timeout(240)
def test_spool_is_removed_when_the_epoch_stops_early(loader_lake_s3, tmp_path):
    ds = LakeDataset(loader_lake_s3, modalities=MODS, seed=4)
    dl = LakeDataLoader(ds, 8, num_workers=2, timeout=TIMEOUT, spool_dir=tmp_path)
    for k, _ in enumerate(dl):
        assert len(list(tmp_path.iterdir())) == 1
        if k == 1:
            break
    assert list(tmp_path.iterdir()) == []


_SPOOL_OWNER = """
import sys, time
from lake.loader.dataset import _new_spool
spool = _new_spool(sys.argv[1])
open(spool + "/x.shard", "wb").write(b"x" * 1000)
print(spool, flush=True)
if sys.argv[2] == "live":
    time.sleep(120)
"""


@pytest.mark.timeout(240)
def test_spools_of_killed_processes_are_removed_by_the_next_epoch(loader_lake_s3, tmp_path):
    """A killed process cannot delete its epoch's spool (up to 2 GiB): the next spool made
    removes the spools of this host's processes that no longer exist, and no other."""
    import subprocess
    import sys

    def owner(kind: str) -> tuple[subprocess.Popen[str], str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", _SPOOL_OWNER, str(tmp_path), kind],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        with proc.stdout:
            return proc, proc.stdout.readline().strip()

    live, live_spool = owner("live")
    dead, dead_spool = owner("dead")  # made after: the live owner's own spool removed nothing
    dead.wait(timeout=60)
    assert (tmp_path / dead_spool.rsplit("/", 1)[-1]).is_dir()
    elsewhere = tmp_path / "lake-spool-otherhost-1-abcd"  # another host's, on a shared folder
    elsewhere.mkdir()
    try:
        ds = LakeDataset(loader_lake_s3, modalities=MODS, seed=4)
        dl = LakeDataLoader(ds, 8, num_workers=2, timeout=TIMEOUT, spool_dir=tmp_path)
        for _ in dl:
            break
        left = sorted(p.name for p in tmp_path.iterdir())
    finally:
        live.kill()
        live.wait(timeout=60)
    assert left == sorted([elsewhere.name, live_spool.rsplit("/", 1)[-1]])
    assert dead_spool.rsplit("/", 1)[-1] not in left


@pytest.mark.timeout(240)
def test_first_batch_reads_its_own_samples_before_the_window(loader_lake, loader_lake_s3):
    """Fast start: the first block is read as byte ranges, the rest of its window whole."""
    ds = LakeDataset(loader_lake_s3, modalities=MODS, seed=5, shuffle_buffer_shards=4)
    batches = list(LakeDataLoader(ds, 8))
    stats = ds._runtime.reader.stats
    ranged = [lo for lo, _ in stats.ranges if lo is not None and lo >= 0]
    whole = [r for r in stats.ranges if r == (None, None)]
    assert ranged and whole
    local = list(LakeDataLoader(LakeDataset(loader_lake.spec, modalities=MODS, seed=5), 8))
    assert batch_ids(batches) == batch_ids(local)
    assert all(torch.equal(a["s2_10m"], b["s2_10m"]) for a, b in zip(batches, local, strict=True))


_PARENT_AFTER_EPOCH = """
import json, logging, sys
from lake.config import StoreSpec
from lake.loader import LakeDataLoader, LakeDataset
spec = StoreSpec(**json.loads(sys.argv[1]))
for _ in range(2):
    ds = LakeDataset(spec, modalities=["s2_10m", "s1", "labels"], seed=3)
    n = sum(len(b["patch_id"]) for b in LakeDataLoader(ds, 8, num_workers=2, timeout=120))
seen = []
handler = logging.Handler()
handler.emit = lambda record: seen.append(record.getMessage())
log = logging.getLogger("botocore.retryhandler")
log.addHandler(handler)
log.setLevel(logging.DEBUG)
LakeDataset(spec, modalities=["s2_10m", "s1", "labels"], seed=3)  # the parent's requests again
print(json.dumps({"delivered": n, "timeouts": [m for m in seen if "timeout" in m.lower()]}))
"""


@pytest.mark.timeout(240)
def test_parent_requests_after_a_worker_epoch_do_not_time_out(loader_lake_s3):
    """Regression: forked workers used to close the parent's S3 connections when collecting the
    inherited clients (the epoll set is shared after fork), so the parent's next request waited
    out its read timeout (15 s) before a retry. A fresh interpreter, as a training script."""
    import dataclasses
    import json
    import subprocess
    import sys

    arg = json.dumps(dataclasses.asdict(loader_lake_s3))
    out = subprocess.run(
        [sys.executable, "-c", _PARENT_AFTER_EPOCH, arg],
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["delivered"] == N_PAIRS
    assert result["timeouts"] == []


@pytest.mark.timeout(240)
def test_only_the_worker_of_the_first_batch_reads_ahead_with_ranges(loader_lake_s3):
    """Fast start with workers: the first worker reads its first block as byte ranges; the
    others wait for that read (a marker in the epoch's spool) and then read whole shards, so
    their reads do not compete with the first batch. With 2 workers the ranged requests are
    those of one process (they were twice as many: every worker read its own block first)."""
    with FaultProxy(loader_lake_s3.endpoint_url or "", match="") as proxy:
        spec = replace(loader_lake_s3, endpoint_url=proxy.url)

        def ranged_requests(workers: int) -> tuple[int, list[str]]:
            before = proxy.requests - proxy.whole_gets - proxy.heads
            ds = LakeDataset(spec, modalities=MODS, seed=5, shuffle_buffer_shards=4)
            dl = LakeDataLoader(ds, 8, num_workers=workers, timeout=TIMEOUT if workers else 0)
            got = [pid for b in dl for pid in b["patch_id"]]
            return proxy.requests - proxy.whole_gets - proxy.heads - before, got

        in_process, order = ranged_requests(0)
        two_workers, order2 = ranged_requests(2)
    assert in_process > 0
    assert two_workers == in_process
    assert order2 == order
