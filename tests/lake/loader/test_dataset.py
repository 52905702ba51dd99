"""LakeDataset on a local lake: content, order, scale-out, resume, selection, tasks, cache."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import torch
from torch.utils.data import DataLoader

import lake
from lake.bigearthnet import CLASSES_ORIGINAL, CLASSES_SORTED, multi_hot
from lake.errors import ConfigError, PatchNotFound, ShardReadError
from lake.loader import LakeDataLoader, LakeDataset, ReadOptions, collate_fn, collate_samples
from tests.lake.loader.helpers import N_PAIRS, PER_SHARD, batch_ids, copy_lake, ids

ALL = ["s2_10m", "s2_20m", "s2_60m", "s1", "reference_map", "labels"]
TIMEOUT = 120  # DataLoader timeout: a hung worker fails the test instead of the suite


def test_pixels_and_labels_equal_the_source(loader_lake):
    ds = LakeDataset(loader_lake.spec, modalities=ALL, seed=4)
    rel = lake.open_lake(loader_lake.spec).current
    got = {s["patch_id"]: s for s in ds}
    assert len(got) == N_PAIRS
    rows = {r["patch_id"]: r for r in rel.patches(columns=["patch_id", "labels"]).to_pylist()}
    for pid in sorted(got)[::9]:
        s, p = got[pid], rel.patch(pid)
        for name, bands in (
            ("s2_10m", ("B02", "B03", "B04", "B08")),
            ("s2_20m", ("B05", "B06", "B07", "B8A", "B11", "B12")),
            ("s2_60m", ("B01", "B09")),
            ("s1", ("VV", "VH")),
        ):
            assert s[name].dtype == torch.float32
            for i, band in enumerate(bands):
                np.testing.assert_array_equal(s[name][i].numpy(), p[band].astype(np.float32))
        np.testing.assert_array_equal(s["reference_map"].numpy(), p["reference_map"])
        np.testing.assert_array_equal(s["labels"].numpy(), multi_hot(rows[pid]["labels"]))
        assert s["sample_index"] == rel.sample_index[pid]


def test_label_order_original(loader_lake):
    ds = LakeDataset(loader_lake.spec, modalities=["labels"], label_order="original")
    rel = lake.open_lake(loader_lake.spec).current
    rows = {
        r["patch_id"]: r["labels"] for r in rel.patches(columns=["patch_id", "labels"]).to_pylist()
    }
    s = next(iter(ds))
    np.testing.assert_array_equal(
        s["labels"].numpy(), multi_hot(rows[s["patch_id"]], CLASSES_ORIGINAL)
    )
    assert CLASSES_ORIGINAL != CLASSES_SORTED


def test_same_seed_same_order_new_epoch_new_order(loader_lake):
    a = LakeDataset(loader_lake.spec, modalities=["labels"], seed=1)
    b = LakeDataset(loader_lake.spec, modalities=["labels"], seed=1)
    first = ids(a)
    assert first == ids(b) and sorted(first) == sorted(set(first)) and len(first) == N_PAIRS
    a.set_epoch(1)
    second = ids(a)
    assert second != first and sorted(second) == sorted(first)
    c = LakeDataset(loader_lake.spec, modalities=["labels"], seed=2)
    assert ids(c) != first
    unshuffled = LakeDataset(loader_lake.spec, modalities=["labels"], shuffle=False)
    rel = lake.open_lake(loader_lake.spec).current
    assert [rel.sample_index[p] for p in ids(unshuffled)] == list(range(N_PAIRS))


@pytest.mark.timeout(180)
def test_every_sample_once_per_epoch_across_2_ranks_x_2_workers(loader_lake):
    seen: list[str] = []
    lengths = []
    for rank in (0, 1):
        ds = LakeDataset(
            loader_lake.spec, modalities=["s2_60m", "labels"], seed=7, rank=rank, world_size=2
        )
        ds.set_epoch(3)
        dl = DataLoader(
            ds, batch_size=5, num_workers=2, timeout=TIMEOUT, collate_fn=collate_samples
        )
        got = batch_ids(dl)
        lengths.append(len(got))
        seen += got
        # the DataLoader delivers samples block by block; with block 1 the rank's set is exact
        assert sorted(got) == sorted(
            ds.items.table["patch_id"].take(ds.sequence().items).to_pylist()
        )
    assert lengths[0] == lengths[1] == N_PAIRS // 2
    assert sorted(seen) == sorted(set(seen)) and len(seen) == N_PAIRS


def test_equal_epoch_lengths_with_an_odd_selection_pad_or_drop(loader_lake):
    rel = lake.open_lake(loader_lake.spec).current
    chosen = rel.patches(columns=["patch_id"])["patch_id"].to_pylist()[:31]
    for equalize, expect in (("pad", 16), ("drop", 15)):
        got = []
        for rank in range(2):
            ds = LakeDataset(
                loader_lake.spec,
                select=chosen,
                modalities=["labels"],
                rank=rank,
                world_size=2,
                equalize=equalize,
            )
            part = ids(ds)
            assert len(part) == expect == len(ds)
            got += part
        assert set(got) <= set(chosen)
        assert len(set(got)) == (31 if equalize == "pad" else 30)


@pytest.mark.timeout(180)
def test_resume_continues_with_the_next_sample_with_another_worker_count(loader_lake):
    def make():
        return LakeDataset(loader_lake.spec, modalities=["s2_60m", "labels"], seed=5)

    full = batch_ids(LakeDataLoader(make(), batch_size=8))  # in-process reference order
    ds = make()
    dl = LakeDataLoader(ds, batch_size=8, num_workers=2, timeout=TIMEOUT)
    first = []
    for k, batch in enumerate(dl):
        first += batch["patch_id"]
        if k == 4:
            break
    state = dl.state_dict()
    assert state["consumed"] == 40 and first == full[:40]
    ds2 = make()
    dl2 = LakeDataLoader(ds2, batch_size=8, num_workers=1, timeout=TIMEOUT)
    dl2.load_state_dict(state)
    rest = batch_ids(dl2)
    assert rest == full[40:]
    # per-sample iteration in-process: resume after any k
    ds3 = make()
    it = iter(ds3)
    head = [next(it)["patch_id"] for _ in range(13)]
    state3 = ds3.state_dict()
    ds4 = make()
    ds4.load_state_dict(state3)
    tail = batch_ids(
        DataLoader(ds4, batch_size=4, num_workers=2, timeout=TIMEOUT, collate_fn=collate_samples)
    )
    assert sorted(head + tail) == sorted(full) and head == full[:13]
    assert set(tail) == set(full[13:])


def test_state_of_another_order_is_refused(loader_lake):
    a = LakeDataset(loader_lake.spec, modalities=["labels"], seed=1)
    b = LakeDataset(loader_lake.spec, modalities=["labels"], seed=2)
    with pytest.raises(ConfigError, match="seed=1"):
        b.load_state_dict(a.state_dict())


def test_batches_equal_collated_samples(loader_lake):
    kw = {"modalities": ALL, "seed": 3, "resample_to": 60, "resample": "bilinear"}
    samples = list(LakeDataset(loader_lake.spec, **kw))
    batches = list(LakeDataset(loader_lake.spec, batch_size=10, **kw))
    assert len(batches) == 10 and len(batches[-1]["patch_id"]) == 6
    ref = collate_samples(samples[:10])
    assert ref.keys() == batches[0].keys()
    for key, value in ref.items():
        if isinstance(value, torch.Tensor):
            assert value.dtype == batches[0][key].dtype
            assert torch.equal(value, batches[0][key]), key
        else:
            assert value == batches[0][key]


def test_resample_and_normalize(loader_lake):
    rel = lake.open_lake(loader_lake.spec).current
    s = next(iter(LakeDataset(loader_lake.spec, modalities=ALL, resample_to=120, normalize=True)))
    assert all(s[k].shape[-2:] == (120, 120) for k in ALL[:-1])
    p = rel.patch(s["patch_id"])
    want = (np.repeat(np.repeat(p["B05"], 2, 0), 2, 1) - 942.84) / 738.43
    np.testing.assert_allclose(s["s2_20m"][0].numpy(), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(s["reference_map"].numpy(), p["reference_map"])
    b = next(
        iter(
            LakeDataset(
                loader_lake.spec, modalities=["s2_10m"], resample_to=60, resample="bilinear"
            )
        )
    )
    ref = torch.nn.functional.interpolate(
        torch.from_numpy(
            np.stack(
                [
                    p2.astype(np.float32)
                    for p2 in (rel.patch(b["patch_id"])[x] for x in ("B02", "B03", "B04", "B08"))
                ]
            )
        )[None],
        size=60,
        mode="bilinear",
        align_corners=False,
    )[0]
    torch.testing.assert_close(b["s2_10m"], ref, rtol=1e-5, atol=1e-3)


def test_selection_touches_only_its_shards_in_shard_order(loader_lake):
    rel = lake.open_lake(loader_lake.spec).current
    index = rel.sample_index
    # two pairs of shard 4 and one of shard 1: a sparse selection
    by_sample = {v: k for k, v in index.items()}
    chosen = [
        by_sample[4 * PER_SHARD + 3],
        by_sample[1 * PER_SHARD + 2],
        by_sample[4 * PER_SHARD + 9],
    ]
    ds = LakeDataset(
        loader_lake.spec,
        select=chosen,
        modalities=["s2_10m", "s1"],
        shuffle=False,
        read=ReadOptions(max_in_flight=1),  # one request at a time: the plan's request order
    )
    got = ids(ds)
    assert sorted(got) == sorted(chosen)
    stats = ds._runtime.reader.stats
    shards = [int(k.split("/c/")[1].split("/")[0]) for k in stats.keys]
    assert set(shards) == {1, 4}
    index_reads = [s for s, (lo, _) in zip(shards, stats.ranges, strict=True) if lo < 0]
    chunk_reads = [s for s, (lo, _) in zip(shards, stats.ranges, strict=True) if lo >= 0]
    assert index_reads == [1, 1, 4, 4] and chunk_reads == sorted(chunk_reads)
    whole = sum((loader_lake.root / k).stat().st_size for k in set(stats.keys))
    assert stats.bytes < whole / 3  # index + the needed chunks, not whole shards


def test_selection_by_stac_items_and_errors(loader_lake):
    import datetime

    import pystac

    rel = lake.open_lake(loader_lake.spec).current
    chosen = rel.patches(columns=["patch_id"])["patch_id"].to_pylist()[5:9]
    when = datetime.datetime(2017, 6, 1, tzinfo=datetime.UTC)
    items = pystac.ItemCollection([pystac.Item(pid, None, None, when, {}) for pid in chosen])
    assert sorted(
        ids(LakeDataset(loader_lake.spec, select=items, modalities=["labels"]))
    ) == sorted(chosen)
    fc = items.to_dict()
    assert sorted(ids(LakeDataset(loader_lake.spec, select=fc, modalities=["labels"]))) == sorted(
        chosen
    )
    with pytest.raises(PatchNotFound, match="S2A_nope"):
        LakeDataset(loader_lake.spec, select=[*chosen, "S2A_nope"], modalities=["labels"])
    with pytest.raises(ConfigError, match="empty"):
        LakeDataset(loader_lake.spec, select=[], modalities=["labels"])
    with pytest.raises(ConfigError, match="modalities"):
        LakeDataset(loader_lake.spec, modalities=["s2"])
    with pytest.raises(ConfigError, match="split='val'"):
        LakeDataset(loader_lake.spec, split="val")
    with pytest.raises(ConfigError, match="task='detect'"):
        LakeDataset(loader_lake.spec, task="detect")


def test_selection_by_sql(loader_lake):
    pytest.importorskip("lake.sql")
    rel = lake.open_lake(loader_lake.spec).current
    t = rel.patches(columns=["patch_id", "country"])
    country = t["country"][0].as_py()
    want = t.filter(pc.equal(t["country"], country))["patch_id"].to_pylist()
    ds = LakeDataset(
        loader_lake.spec,
        select=f"SELECT patch_id FROM patches WHERE country = '{country}'",
        modalities=["labels"],
    )
    assert sorted(ids(ds)) == sorted(want)


def test_split_selects_the_pairs_of_a_split(loader_lake):
    rel = lake.open_lake(loader_lake.spec).current
    t = rel.patches(columns=["patch_id", "split"])
    want = t.filter(pc.equal(t["split"], "train"))["patch_id"].to_pylist()
    assert sorted(
        ids(LakeDataset(loader_lake.spec, split="train", modalities=["labels"]))
    ) == sorted(want)


@pytest.mark.parametrize("task", ["caption", "vqa", "refexp"])
def test_text_tasks_deliver_one_sample_per_annotation_row(loader_lake, task):
    from lake.loader.items import TASK_TYPES

    rel = lake.open_lake(loader_lake.spec).current
    rows = rel.annotations(split="train")
    rows = rows.filter(pc.is_in(rows["type"], pa.array(TASK_TYPES[task])))
    ds = LakeDataset(
        loader_lake.spec, task=task, split="train", modalities=["s2_10m", "labels"], resample_to=60
    )
    dl = DataLoader(ds, batch_size=16, collate_fn=collate_fn(task))
    batches = list(dl)
    got = [i for b in batches for i in b["id"].tolist()]
    assert sorted(got) == sorted(rows["ID"].to_pylist())
    b = batches[0]
    assert b["s2_10m"].shape[1:] == (4, 60, 60) and b["labels"].shape[1] == 19
    assert isinstance(b["input"][0], str) and isinstance(b["output"][0], str)
    by_id = {r["ID"]: r for r in rows.to_pylist()}
    for i, rid in enumerate(b["id"].tolist()):
        r = by_id[rid]
        assert (b["input"][i], b["output"][i], b["type"][i], b["category"][i]) == (
            r["input"],
            r["output"],
            r["type"],
            r["category"],
        )
        assert b["patch_id"][i] == r["patch_id"]
        if task == "refexp":
            box = [r["box_x1"], r["box_y1"], r["box_x2"], r["box_y2"]]
            torch.testing.assert_close(b["box"][i], torch.tensor(box, dtype=torch.float32))
            torch.testing.assert_close(b["box_pixels"][i], b["box"][i] * 60)
        if task == "vqa":
            assert b["options"][i] == (r["options"] or [])
            assert b["answer_index"][i] == (-1 if r["answer_index"] is None else r["answer_index"])


def test_cache_serves_the_next_epoch_and_stays_under_its_cap(loader_lake, tmp_path):
    kw = {
        "modalities": ["s2_10m", "labels"],
        "read": ReadOptions(cache_dir=tmp_path / "cache"),
        "seed": 1,
    }
    first = LakeDataset(loader_lake.spec, **kw)
    a = [s["s2_10m"] for s in first]
    assert first._runtime.reader.stats.requests == 6  # 6 shards of one array, once each
    second = LakeDataset(loader_lake.spec, **kw)
    b = [s["s2_10m"] for s in second]
    assert second._runtime.reader.stats.requests == 0
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    shard_bytes = (loader_lake.root / "patches/r1.zarr/s2_10m/c/0/0/0/0").stat().st_size
    capped = LakeDataset(
        loader_lake.spec,
        **{
            **kw,
            "read": ReadOptions(cache_dir=tmp_path / "small", cache_bytes=2 * shard_bytes + 10),
        },
    )
    assert len(list(capped)) == N_PAIRS
    assert capped.cache is not None and capped.cache.size() <= 2 * shard_bytes + 10 + shard_bytes


def test_a_broken_shard_fails_the_epoch_naming_it_or_is_skipped_and_counted(loader_lake, tmp_path):
    spec = copy_lake(loader_lake, tmp_path / "lake")
    obj = tmp_path / "lake/patches/r1.zarr/s1/c/2/0/0/0"
    obj.write_bytes(obj.read_bytes()[:-100])  # truncated: its index no longer checks out
    ds = LakeDataset(spec, modalities=["s1", "labels"], seed=0)
    with pytest.raises(ShardReadError, match=r"shard 2 of array 's1'") as info:
        list(ds)
    assert isinstance(info.value, OSError) and "s1/c/2/0/0/0" in str(info.value)
    ds = LakeDataset(spec, modalities=["s1", "labels"], seed=0, skip_errors=True)
    got = ids(ds)
    assert len(got) == N_PAIRS - PER_SHARD and ds.errors == PER_SHARD
    assert ds.state_dict()["errors"] == PER_SHARD


def test_first_batch_comes_out_before_its_window_is_read(loader_lake, monkeypatch):
    """Regression: a complete block waited for the next piece, and so for the whole first
    window's read, which made the fast start (the first block's own small read) pointless."""
    from concurrent.futures import ThreadPoolExecutor
    from concurrent.futures import TimeoutError as FutureTimeout
    from threading import Event

    from lake.loader.fetch import ShardReader

    held = Event()
    whole_shard = ShardReader._whole_shard

    def wait_then_read(self: ShardReader, *args: object) -> object:
        held.wait(60)
        return whole_shard(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(ShardReader, "_whole_shard", wait_then_read)
    # The first block (8 pairs, at most half a shard) is read as ranges, the window mostly whole.
    read = ReadOptions(dense_fraction=0.6)
    ds = LakeDataset(loader_lake.spec, modalities=["s2_10m", "labels"], seed=5, read=read)
    it = iter(LakeDataLoader(ds, 8))
    try:
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(next, it)
            try:
                batch = first.result(timeout=20)  # while every whole-shard read is held
            except FutureTimeout:
                held.set()
                pytest.fail("the first batch waited for the window's whole-shard reads")
        assert not held.is_set()
        held.set()
        rest = list(it)
        assert any(r == (None, None) for r in ds._runtime.reader.stats.ranges)  # whole reads
    finally:
        held.set()
        ds.close()
    local = list(LakeDataLoader(LakeDataset(loader_lake.spec, modalities=["labels"], seed=5), 8))
    assert batch_ids([batch, *rest]) == batch_ids(local)
