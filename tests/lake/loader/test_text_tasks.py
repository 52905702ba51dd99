"""The loader's text side: decode once, conversations, mixes, filters, VLM images, augmentation."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import torch
from torch.utils.data import DataLoader

import lake
from lake.errors import ConfigError
from lake.loader import LakeDataLoader, LakeDataset, ReadOptions, collate_samples
from lake.loader import order as order_mod
from lake.loader.text import mix_counts
from lake.vlm.augment import transform_image, transform_row, transform_text
from lake.vlm.composite import FIXED_STRETCH, resize, s1_false_colour, s2_rgb
from lake.vlm.rows import TASK_TYPES, conversation_order, rows_of
from tests.lake.loader.helpers import batch_ids

TIMEOUT = 120
NO_CACHE = ReadOptions(decode_cache_bytes=0)


def _annotations(spec, tasks, split="train"):
    rows = lake.open_lake(spec).current.annotations(split=split)
    types = [t for task in tasks for t in TASK_TYPES[task]]
    return rows.filter(pc.is_in(rows["type"], pa.array(types)))


def _expected_decodes(ds: LakeDataset, num_workers: int = 1, block: int = 1) -> int:
    """Distinct pairs per (worker, run) of the epoch: what decode-once must decode."""
    seq = ds.sequence()
    total = 0
    for w in range(num_workers):
        positions = order_mod.worker_positions(
            seq.length, num_workers=num_workers, worker=w, block=block
        )
        samples = ds.items.samples[seq.items[positions]]
        runs = seq.runs[positions]
        for r in np.unique(runs):
            total += len(np.unique(samples[runs == r]))
    return total


# -- decode once -----------------------------------------------------------------------------


def test_each_pair_is_decoded_once_per_run_not_once_per_row(loader_lake):
    kw = {"task": "vqa", "split": "train", "modalities": ["s2_10m", "s1", "labels"], "seed": 3}
    cached = LakeDataset(loader_lake.spec, **kw)
    plain = LakeDataset(loader_lake.spec, read=NO_CACHE, **kw)
    got, ref = list(cached), list(plain)
    assert [s["id"] for s in got] == [s["id"] for s in ref]
    for a, b in zip(got[::37], ref[::37], strict=True):
        assert torch.equal(a["s2_10m"], b["s2_10m"]) and torch.equal(a["s1"], b["s1"])
    rows = len(got)
    pairs = len({s["patch_id"] for s in got})
    assert plain.decoded_samples == rows  # before: one decode per row
    assert cached.decoded_samples == _expected_decodes(cached)
    assert rows >= 10 * pairs and cached.decoded_samples < rows / 5


def test_decode_once_in_batches_and_across_worker_processes(loader_lake):
    kw = {"task": "refexp", "split": "train", "modalities": ["s2_60m"], "seed": 1}
    ds = LakeDataset(loader_lake.spec, **kw)
    dl = LakeDataLoader(ds, batch_size=8, num_workers=2, timeout=TIMEOUT)
    got = batch_ids(dl)
    ref = LakeDataset(loader_lake.spec, read=NO_CACHE, batch_size=8, **kw)
    assert got == batch_ids(ref)
    # the counter is shared with the worker processes, like `errors`
    assert ds.decoded_samples == _expected_decodes(ds, num_workers=2, block=8)
    assert ds.decoded_samples < ref.decoded_samples == len(got)


def test_the_run_cache_drops_a_pair_after_its_last_use_and_stays_under_its_cap():
    from lake.loader.samplecache import RunCache

    calls: list[list[int]] = []

    def decode(which):
        calls.append(which.tolist())
        return {"x": np.stack([np.full(4, s, np.float32) for s in which])}, {}

    cache = RunCache(np.array([5, 7, 5, 9, 7, 5]), max_bytes=1 << 20)
    a, _ = cache.take(np.array([5, 7]), decode)
    assert len(cache) == 2  # both used again later
    b, _ = cache.take(np.array([5, 9]), decode)
    assert len(cache) == 2 and 9 not in cache._entries  # 9 is not used again
    c, _ = cache.take(np.array([7, 5]), decode)
    assert len(cache) == 0 and cache.nbytes == 0
    assert calls == [[5, 7], [9]]
    assert [v[0] for v in np.concatenate([a["x"], b["x"], c["x"]])] == [5, 7, 5, 9, 7, 5]
    tiny = RunCache(np.array([1, 2, 1, 2]), max_bytes=16)  # room for one decoded sample
    calls.clear()
    tiny.take(np.array([1]), decode)
    tiny.take(np.array([2]), decode)  # evicts 1, the least recently used
    both, _ = tiny.take(np.array([1, 2]), decode)
    assert calls == [[1], [2], [1]] and tiny.peak_bytes <= 16
    assert both["x"][:, 0].tolist() == [1, 2] and len(tiny) == 0
    # a block counts whole while one of its samples is held
    wide = RunCache(np.array([3, 4, 3]), max_bytes=1 << 20)
    wide.take(np.array([3, 4]), decode)
    assert len(wide) == 1 and wide.nbytes == 32


# -- conversations ---------------------------------------------------------------------------


def test_group_pair_delivers_each_pair_once_with_its_rows_in_conversation_order(loader_lake):
    tasks = ["vqa", "refexp"]
    ds = LakeDataset(
        loader_lake.spec, tasks=tasks, group="pair", split="train", modalities=["labels"]
    )
    samples = list(ds)
    rows = _annotations(loader_lake.spec, tasks)
    by_pair: dict[str, list] = {}
    for r in rows_of(rows):
        pid = rows["patch_id"][rows["ID"].to_pylist().index(r["id"])].as_py()
        by_pair.setdefault(pid, []).append(r)
    assert sorted(s["patch_id"] for s in samples) == sorted(by_pair)
    assert len(ds) == len(by_pair) == len(samples)
    for s in samples:
        conv = s["conversation"]
        assert conv == conversation_order(by_pair[s["patch_id"]])
        assert [r["id"] for r in conv] == sorted(r["id"] for r in conv)
        assert {r["type"] for r in conv} <= {"binary", "mcq", "bounding box"}
    assert ds.decoded_samples == 0  # labels only: nothing to decode


def test_group_pair_resumes_exactly_splits_ranks_equally_and_shuffles_by_seed(loader_lake):
    def make(**kw):
        return LakeDataset(
            loader_lake.spec,
            task="caption",
            group="pair",
            modalities=["s2_60m", "labels"],
            seed=kw.pop("seed", 5),
            **kw,
        )

    full = batch_ids(LakeDataLoader(make(), batch_size=8))
    assert len(full) == len(set(full))
    dl = LakeDataLoader(make(), batch_size=8, num_workers=2, timeout=TIMEOUT)
    head = []
    for k, batch in enumerate(dl):
        head += batch["patch_id"]
        assert len(batch["conversation"]) == len(batch["patch_id"])
        if k == 2:
            break
    state = dl.state_dict()
    assert state["group"] == "pair" and state["consumed"] == 24
    again = LakeDataLoader(make(), batch_size=8, num_workers=1, timeout=TIMEOUT)
    again.load_state_dict(state)
    assert head + batch_ids(again) == full
    # DDP: equal lengths, every pair once
    parts = [ids for r in (0, 1) for ids in [[s["patch_id"] for s in make(rank=r, world_size=2)]]]
    assert len(parts[0]) == len(parts[1]) == math.ceil(len(full) / 2)
    assert set(parts[0] + parts[1]) == set(full)
    # seeded shuffle: same seed same order, new epoch or seed a new one
    assert [s["patch_id"] for s in make()] == [s["patch_id"] for s in make()]
    other = make()
    other.set_epoch(1)
    assert [s["patch_id"] for s in other] != [s["patch_id"] for s in make()]
    # a pair state does not resume a row dataset
    rows = LakeDataset(loader_lake.spec, task="caption", modalities=["labels"], seed=5)
    with pytest.raises(ConfigError, match="cannot resume"):
        rows.load_state_dict(state)


def test_pair_batches_equal_collated_samples_and_old_states_still_resume(loader_lake):
    kw = {
        "task": "refexp",
        "group": "pair",
        "modalities": ["rgb", "labels"],
        "augment": True,
        "seed": 8,
    }
    samples = list(LakeDataset(loader_lake.spec, **kw))
    batch = next(iter(LakeDataset(loader_lake.spec, batch_size=5, **kw)))
    ref = collate_samples(samples[:5])
    assert ref.keys() == batch.keys() >= {"rgb", "conversation", "transform"}
    for key, value in ref.items():
        if isinstance(value, torch.Tensor):
            assert value.dtype == batch[key].dtype and torch.equal(value, batch[key]), key
        else:
            assert value == batch[key], key
    assert isinstance(batch["conversation"][0], list) and batch["rgb"].dtype == torch.uint8
    # a state written before the text fields existed resumes a row dataset of the same task
    rows = LakeDataset(loader_lake.spec, task="caption", modalities=["labels"])
    old = {k: v for k, v in rows.state_dict().items() if k not in ("tasks", "weights", "group")}
    old.pop("categories"), old.pop("types")
    rows.load_state_dict(old)


# -- mixes and filters -----------------------------------------------------------------------


def test_weighted_mix_has_its_shares_a_constant_length_and_no_repeats(loader_lake):
    weights = {"vqa": 0.5, "refexp": 0.3, "caption": 0.2}
    ds = LakeDataset(loader_lake.spec, tasks=weights, split="train", modalities=["labels"])
    counts = [len(_annotations(loader_lake.spec, [t])) for t in weights]
    take = mix_counts(counts, [0.5, 0.3, 0.2])
    n = min(math.floor(c / w) for c, w in zip(counts, weights.values(), strict=True))
    assert take == tuple(math.floor(n * w + 1e-9) for w in weights.values())
    epochs = []
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        got = list(ds)
        ids = [s["id"] for s in got]
        assert len(ids) == len(set(ids)) == sum(take) == len(ds)
        per_task = Counter(next(t for t in weights if s["type"] in TASK_TYPES[t]) for s in got)
        assert tuple(per_task[t] for t in weights) == take
        assert all("box" in s and "options" in s for s in got)  # the union of the keys
        epochs.append(set(ids))
    assert epochs[0] != epochs[1]  # a new epoch draws other rows of the plentiful tasks
    # resume of a mix; weights shape the order
    state = ds.state_dict()
    assert state["weights"] == pytest.approx([0.5, 0.3, 0.2])
    other = LakeDataset(
        loader_lake.spec, tasks={"vqa": 1, "refexp": 1}, split="train", modalities=["labels"]
    )
    with pytest.raises(ConfigError, match="cannot resume: the state has tasks="):
        other.load_state_dict(state)


def test_resume_of_a_mix_continues_with_the_next_row(loader_lake):
    def make():
        return LakeDataset(
            loader_lake.spec, tasks={"vqa": 2, "caption": 1}, modalities=["s2_60m"], seed=9
        )

    full = batch_ids(LakeDataLoader(make(), batch_size=16))
    dl = LakeDataLoader(make(), batch_size=16, num_workers=2, timeout=TIMEOUT)
    head = []
    for k, batch in enumerate(dl):
        head += batch["patch_id"]
        if k == 1:
            break
    again = LakeDataLoader(make(), batch_size=16, num_workers=1, timeout=TIMEOUT)
    again.load_state_dict(dl.state_dict())
    assert head + batch_ids(again) == full


def test_a_list_of_tasks_and_the_filters(loader_lake):
    both = LakeDataset(loader_lake.spec, tasks=["caption", "refexp"], modalities=["labels"])
    rows = _annotations(loader_lake.spec, ["caption", "refexp"], split=None)
    assert sorted(s["id"] for s in both) == sorted(rows["ID"].to_pylist())
    assert both.task == "mixed" and both.state_dict()["tasks"] == ["caption", "refexp"]
    mcq = LakeDataset(loader_lake.spec, task="vqa", types=["mcq"], modalities=["labels"])
    assert {s["type"] for s in mcq} == {"mcq"}
    vqa = _annotations(loader_lake.spec, ["vqa"], split=None)
    category = vqa["category"][0].as_py()
    picked = LakeDataset(loader_lake.spec, task="vqa", categories=[category], modalities=[])
    want = vqa.filter(pc.equal(vqa["category"], category))["ID"].to_pylist()
    assert sorted(s["id"] for s in picked) == sorted(want)
    with pytest.raises(
        ConfigError, match=r"categories=\['nowhere'\]: unknown.*known: .*'presence'"
    ):
        LakeDataset(loader_lake.spec, task="vqa", categories=["nowhere"])
    with pytest.raises(ConfigError, match=r"types=\['captioning'\]: unknown.*'binary', 'mcq'"):
        LakeDataset(loader_lake.spec, task="vqa", types=["captioning"])
    with pytest.raises(ConfigError, match="types='mcq': give a list"):
        LakeDataset(loader_lake.spec, task="vqa", types="mcq")
    with pytest.raises(ConfigError, match="categories= and types= filter annotation rows"):
        LakeDataset(loader_lake.spec, types=["mcq"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": "vqa", "tasks": ["caption"]}, "give one of them, not both"),
        ({"tasks": "vqa"}, r"tasks='vqa': give a list"),
        ({"tasks": ["vqa", "labels"]}, r"unknown \['labels'\]"),
        ({"tasks": []}, "give at least one"),
        ({"tasks": ["vqa", "vqa"]}, "named twice"),
        ({"tasks": {"vqa": 0}}, "the weight of 'vqa' must be > 0"),
        ({"tasks": {"vqa": "half"}}, "the weight of 'vqa' must be > 0"),
        ({"tasks": {"vqa": 1, "caption": 1}, "group": "pair"}, "weights cannot apply"),
        ({"group": "pair"}, "group='pair' groups annotation rows"),
        ({"task": "vqa", "group": "pairs"}, "group='pairs'"),
        ({"augment": "mirror"}, "augment='mirror'"),
        ({"image_size": 224}, "image_size=224: it sizes the 'rgb'"),
        ({"modalities": ["rgb"], "image_size": 0}, "image_size=0"),
        ({"modalities": ["rgb"], "rgb_stretch": "auto"}, "rgb_stretch='auto'"),
        ({"modalities": ["rgb"], "rgb_stretch": "lake"}, "rgb_stretch='lake': .*band statistics"),
        ({"read": ReadOptions}, "read="),
    ],
)
def test_bad_text_and_image_arguments_are_refused_by_name(loader_lake, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        LakeDataset(loader_lake.spec, **kwargs)


def test_decode_cache_bytes_is_checked():
    with pytest.raises(ConfigError, match="decode_cache_bytes=-1"):
        ReadOptions(decode_cache_bytes=-1)


# -- images for VLMs -------------------------------------------------------------------------


def test_rgb_and_s1_composites_at_model_size_beside_the_multispectral_arrays(loader_lake):
    ds = LakeDataset(
        loader_lake.spec,
        task="refexp",
        modalities=["s2_10m", "rgb", "s1_rgb"],
        resample_to=60,
        image_size=224,
        seed=2,
    )
    rel = lake.open_lake(loader_lake.spec).current
    batch = next(iter(DataLoader(ds, batch_size=4, collate_fn=collate_samples)))
    assert batch["rgb"].dtype == torch.uint8 and batch["rgb"].shape == (4, 3, 224, 224)
    assert batch["s1_rgb"].dtype == torch.uint8 and batch["s1_rgb"].shape == (4, 3, 224, 224)
    assert batch["s2_10m"].dtype == torch.float32 and batch["s2_10m"].shape == (4, 4, 60, 60)
    torch.testing.assert_close(batch["box_pixels"], batch["box"] * 224)
    for i, pid in enumerate(batch["patch_id"][:2]):
        p = rel.patch(pid)
        s2 = np.stack([p[b] for b in ("B02", "B03", "B04", "B08")])
        np.testing.assert_array_equal(batch["rgb"][i].numpy(), resize(s2_rgb(s2), 224))
        s1 = np.stack([p["VV"], p["VH"]])
        np.testing.assert_array_equal(batch["s1_rgb"][i].numpy(), resize(s1_false_colour(s1), 224))
    native = next(iter(LakeDataset(loader_lake.spec, modalities=["rgb"], seed=2)))
    assert native["rgb"].shape == (3, 120, 120) and "s2_10m" not in native
    p = rel.patch(native["patch_id"])
    s2 = np.stack([p[b] for b in ("B02", "B03", "B04", "B08")])
    np.testing.assert_array_equal(native["rgb"].numpy(), s2_rgb(s2, FIXED_STRETCH))


# -- augmentation ----------------------------------------------------------------------------


def _region(ref_map: np.ndarray, box) -> np.ndarray:
    side = ref_map.shape[-1]
    x1, y1, x2, y2 = (round(float(v) * side) for v in box)
    return ref_map[y1:y2, x1:x2]


def test_augmented_boxes_cover_the_same_land_cover_and_the_text_follows(loader_lake):
    kw = {"task": "refexp", "modalities": ["reference_map", "rgb"], "seed": 4}
    plain = {s["id"]: s for s in LakeDataset(loader_lake.spec, **kw)}
    moved = list(LakeDataset(loader_lake.spec, augment=True, **kw))
    assert len(moved) == len(plain)
    seen = Counter(s["transform"] for s in moved)
    assert len(seen) >= 6  # the 8 symmetries are drawn
    for s in moved:
        ref = plain[s["id"]]
        t = s["transform"]
        before = _region(ref["reference_map"].numpy(), ref["box"])
        after = _region(s["reference_map"].numpy(), s["box"])
        # the box still frames the same region of the (transformed) map, pixel for pixel
        np.testing.assert_array_equal(after, transform_image(before, t))
        np.testing.assert_array_equal(
            s["reference_map"].numpy(), transform_image(ref["reference_map"].numpy(), t)
        )
        np.testing.assert_array_equal(s["rgb"].numpy(), transform_image(ref["rgb"].numpy(), t))
        assert s["input"] == transform_text(ref["input"], t)
        assert s["output"] == transform_text(ref["output"], t)
        torch.testing.assert_close(s["box_pixels"], s["box"] * 120)
    changed = [s for s in moved if s["transform"] != "identity"]
    assert any(s["input"] != plain[s["id"]]["input"] for s in changed)


def test_augmentation_ignores_workers_and_resume_and_moves_whole_conversations(loader_lake):
    kw = {
        "task": "vqa",
        "group": "pair",
        "modalities": ["s2_60m"],
        "augment": "rotations",
        "seed": 6,
    }
    ds = LakeDataset(loader_lake.spec, **kw)
    ref = list(ds)
    assert {s["transform"] for s in ref} <= {"identity", "rot90", "rot180", "rot270"}
    workers = DataLoader(
        LakeDataset(loader_lake.spec, **kw),
        batch_size=5,
        num_workers=2,
        timeout=TIMEOUT,
        collate_fn=collate_samples,
    )
    got = [(pid, t) for b in workers for pid, t in zip(b["patch_id"], b["transform"], strict=True)]
    # the workers interleave the samples; each pair keeps its transform
    assert sorted(got) == sorted((s["patch_id"], s["transform"]) for s in ref)
    resumed = LakeDataset(loader_lake.spec, **kw)
    it = iter(ref_ds := LakeDataset(loader_lake.spec, **kw))
    head = [next(it) for _ in range(7)]
    resumed.load_state_dict(ref_ds.state_dict())
    tail = list(resumed)
    ref_ds.close()
    assert [(s["patch_id"], s["transform"]) for s in head + tail] == [
        (s["patch_id"], s["transform"]) for s in ref
    ]
    plain = {s["patch_id"]: s for s in LakeDataset(loader_lake.spec, **{**kw, "augment": False})}
    for s in ref:
        base = plain[s["patch_id"]]
        assert s["conversation"] == [transform_row(r, s["transform"]) for r in base["conversation"]]
        np.testing.assert_array_equal(
            s["s2_60m"].numpy(), transform_image(base["s2_60m"].numpy(), s["transform"])
        )
    flips = LakeDataset(loader_lake.spec, **{**kw, "augment": "flips"})
    assert {s["transform"] for s in flips} <= {"identity", "hflip", "vflip"}
