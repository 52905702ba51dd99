"""``LakeDataset``: a PyTorch ``IterableDataset`` streaming a lake's shards (local or S3).

Order (seeded block shuffle, equal rank lengths, worker split, resume) comes from
:mod:`lake.loader.order`, bytes from :mod:`lake.loader.fetch`, arrays from
:mod:`lake.loader.decode`, and the rows to deliver from :mod:`lake.loader.items`. The decision
record is ``docs/decisions/0005-loader.md``.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Final, Literal, cast

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from lake.bigearthnet import BAND_STATS
from lake.config import StoreSpec, as_spec
from lake.errors import ConfigError, LayoutError, ReleaseNotFound, ShardReadError
from lake.index import ReleaseIndex, read_index
from lake.loader import order
from lake.loader.augmentation import (
    Augment,
    augment_arrays,
    augment_meta,
    item_transforms,
    resolve_augment,
)
from lake.loader.cache import ShardCache
from lake.loader.collate import COLLATE, Batch, Sample, collate_fn, collate_samples
from lake.loader.decode import COMPOSITES, RASTERS, BlockDecoder, DecodeSpec, Resample
from lake.loader.fetch import ShardReader, group_needs, index_layouts, read_layouts
from lake.loader.items import (
    TASKS,
    Items,
    LabelOrder,
    Selection,
    Split,
    Task,
    load_items,
    resolve_selection,
)
from lake.loader.options import ReadOptions
from lake.loader.order import Equalize
from lake.loader.ring import BatchRing
from lake.loader.samplecache import RunCache
from lake.loader.stats import Normalize, lake_band_stats, resolve_stats
from lake.loader.text import (
    Group,
    TaskMix,
    mix_items,
    mix_length,
    pair_rows,
    resolve_tasks,
    row_meta,
)
from lake.vlm.composite import FIXED_STRETCH, Stretch, stretch_from_stats
from lake.vlm.rows import TextTask

log = logging.getLogger("lake.loader")

#: The time-series modality (``timeseries=`` names its part).
SERIES: Final = "s2_timeseries"
Modality = Literal[
    "s2_10m", "s2_20m", "s2_60m", "s1", "reference_map", "labels", "rgb", "s1_rgb", "s2_timeseries"
]
DEFAULT_MODALITIES: Final[tuple[Modality, ...]] = ("s2_10m", "s2_20m", "s1", "labels")
#: Where each modality comes from, in one place: a raster (``RASTERS``) is the patch group's
#: array of the same name; a composite is computed from the array ``decode.COMPOSITES`` names
#: (``DecodeSpec.sources`` lists what to fetch); ``labels`` come from the items (the index or
#: the patches table); ``s2_timeseries`` is the 10 m composite of a time-series part of the
#: release (``lake pipeline timeseries``), read by :class:`lake.timeseries.TimeSeries`.
MODALITIES: Final = (*RASTERS, "labels", *COMPOSITES, SERIES)
#: What rasters are delivered as: float32, or the stored dtypes (``native``).
Dtype = Literal["float32", "native"]
DTYPES: Final = ("float32", "native")
#: How ``rgb`` is stretched: a fixed reflectance range, or from the lake's band statistics.
RgbStretch = Literal["fixed", "lake"]
RGB_STRETCHES: Final = ("fixed", "lake")
#: The keywords of :class:`ReadOptions` (given to ``LakeDataset`` itself, they are refused).
_READ_FIELDS: Final = frozenset(f.name for f in fields(ReadOptions))
#: Positions decoded together when samples are yielded one by one.
_DECODE_PIECE: Final = 64
#: The spool's marker: the worker of the first batch has its first small read.
_FIRST_READ: Final = ".first-read"
#: The longest the other workers wait for it (a slow or failed first worker delays no one more).
_FIRST_READ_WAIT: Final = 5.0
_STATE_VERSION: Final = 1


class _Counter:
    """An error counter shared with DataLoader workers (inherited at their start).

    Plain pickling (outside a worker start) replaces it by a fresh process-local counter.
    """

    def __init__(self) -> None:
        self._value: Any = multiprocessing.get_context().Value("q", 0)
        self._local = 0

    def add(self, n: int) -> None:
        if self._value is None:
            self._local += n
        else:
            with self._value.get_lock():
                self._value.value += n

    @property
    def value(self) -> int:
        return int(self._value.value) if self._value is not None else self._local

    def set(self, n: int) -> None:
        if self._value is None:
            self._local = n
        else:
            self._value.value = n

    def __getstate__(self) -> dict[str, Any]:
        from multiprocessing.context import get_spawning_popen

        if get_spawning_popen() is None:
            return {"_value": None, "_local": self.value}
        return self.__dict__.copy()


@dataclass
class _Runtime:
    """What one process builds for itself: the reader (clients, threads) and the decoder."""

    pid: int
    reader: ShardReader
    decoder: BlockDecoder
    prefetch: ThreadPoolExecutor


class LakeDataset(IterableDataset[Any]):
    """Stream samples of a lake (local folder or S3) as dicts of named tensors.

    Each sample holds the requested rasters (float32 ``(bands, H, W)``; the reference map int32
    ``(H, W)``), ``labels`` (19-class multi-hot float32), ``patch_id`` and ``sample_index``;
    text tasks deliver one sample per annotation row with ``id``, ``input``, ``output``,
    ``type``, ``category`` and, for ``vqa``, ``options``/``answer_index``/``answer_bool``, for
    ``refexp``, ``box`` (0..1) and ``box_pixels``. See :mod:`lake.loader.collate`.

    For vision-language models:

    * ``tasks=`` mixes text tasks (a list: all their rows; a mapping ``task -> weight``: rows
      of each task in those shares per epoch, seeded, constant epoch length), ``categories=``
      and ``types=`` filter the rows (:mod:`lake.loader.text`);
    * ``group="pair"`` delivers one sample per pair whose ``conversation`` is the list of its
      rows (:class:`lake.vlm.rows.TextRow` dicts, by ``ID``); order, resume and DDP lengths
      work on pairs then;
    * a pair used by several rows is fetched and decoded once per run of the order
      (:mod:`lake.loader.samplecache`; :attr:`decoded_samples` counts decodes);
    * modalities ``rgb`` and ``s1_rgb`` are uint8 ``(3, S, S)`` composites (``S =
      image_size``, default the native 120) beside the float multispectral arrays (which keep
      ``resample_to``); ``box_pixels`` is then in the grid of the ``rgb`` image;
    * ``augment=`` flips / rotates rasters, boxes, points and direction words together
      (:mod:`lake.loader.augmentation`); the sample names its ``transform``.

    Time series: ``modalities=[..., "s2_timeseries"]`` adds the pair's 10 m composite of a
    time-series part (``timeseries=`` names it; the only part when None) as ``(T, 4, 120, 120)``
    (B02, B03, B04, B08 over the part's composite periods, :attr:`timeseries_times`), uint16
    with ``dtype="native"``, else float32, flipped with the other rasters. The epoch then holds
    the selected pairs that the part covers, in the same order and resume rules.

    Use it with ``DataLoader(ds, batch_size=B, num_workers=W, collate_fn=collate_fn(task))`` and
    call :meth:`set_epoch` each epoch; for exact mid-epoch resume with worker processes use
    :class:`LakeDataLoader`, which counts what it delivered.

    Example:
        >>> ds = LakeDataset("s3://bucket/lake", split="train", resample_to=120)  # doctest: +SKIP
        >>> loader = LakeDataLoader(ds, batch_size=64, num_workers=4)  # doctest: +SKIP

    Args:
        url_or_spec: The lake (URL or :class:`~lake.config.StoreSpec`; ``LAKE_URL`` when None).
        select: None (everything), a SQL query (needs :mod:`lake.sql`), patch ids, annotation
            IDs (text tasks), or a STAC search result (ItemCollection, Items, item ids).
        modalities: Any of ``s2_10m``, ``s2_20m``, ``s2_60m``, ``s1``, ``reference_map``,
            ``labels``, and the uint8 composites ``rgb`` (B04, B03, B02 of ``s2_10m``) and
            ``s1_rgb`` (S1 false colour), ``(3, S, S)`` each (see ``image_size``), and
            ``s2_timeseries`` (see ``timeseries``).
        resample_to: Common side in pixels for every multispectral raster and the reference
            map (None: native sizes); not for ``rgb`` / ``s1_rgb``.
        resample: ``nearest`` or ``bilinear`` (the reference map is always nearest).
        normalize: Normalise rasters with per-band mean/std: False (off), True or
            ``"official"`` (the reference loaders' train-split statistics), ``"lake"`` (the
            release's own train-split statistics from ``lake pipeline stats``), or a mapping
            ``band -> (mean, std)``.
        split: ``train``/``validation``/``test`` (``bench`` too for text tasks); None: all.
        shuffle: Seeded shuffle (shard order, then inside windows of shards).
        seed: The seed; the order is a pure function of (seed, epoch, rank, world size).
        task: ``labels``, ``caption``, ``vqa`` or ``refexp``.
        tasks: Several text tasks instead of ``task``: a list (all their rows) or a mapping
            ``task -> weight`` (a seeded mix per epoch; its length is set by the scarcest task
            relative to its weight, no row repeats within an epoch; see
            :mod:`lake.loader.text`).
        group: ``row`` (a sample per annotation row) or ``pair`` (a sample per pair with its
            rows as ``conversation``; text tasks only, no weights).
        categories: Keep only annotation rows of these categories (None: all).
        types: Keep only annotation rows of these types (``binary``, ``mcq``, ``bounding
            box``, ``captioning``; None: all of the tasks).
        image_size: Side of the ``rgb`` / ``s1_rgb`` composites (224, 336, 448, any size;
            None: 120), resized bilinearly with antialiasing; ``resample_to`` does not apply
            to them.
        rgb_stretch: ``fixed`` (the documented reflectance range
            :data:`lake.vlm.composite.FIXED_STRETCH`, the same for every lake) or ``lake``
            (from the release's band statistics, ``lake pipeline stats``).
        augment: False (default), True / ``"all"`` (the 8 flips and rotations), ``"flips"``
            or ``"rotations"``: one transform per delivered sample, applied to every raster,
            the box and the text (:mod:`lake.loader.augmentation`).
        label_order: ``sorted`` (default) or ``original`` class order of the multi-hot.
        release: Release name (the current one when None); pinned at construction.
        shuffle_buffer_shards: Shards per shuffle window (memory: about this many shards). Part
            of the order (and of the resume state), so it stays here, not in ``read``.
        skip_errors: Skip and count samples that cannot be read (see :attr:`errors`) instead
            of failing the epoch.
        batch_size: When set, yield batches of this many (one per block of the order) instead
            of samples; use ``DataLoader(ds, batch_size=None)`` or :class:`LakeDataLoader`.
        rank: This rank (default: ``torch.distributed`` when initialised, else 0).
        world_size: Number of ranks (same default).
        equalize: ``pad`` (repeat the first samples) or ``drop`` (leave out the last) so that
            every rank has the same number of samples per epoch.
        dtype: ``float32`` (default: every raster as float32, normalised here when asked) or
            ``native``: the values as stored (S2 and the reference map uint16, S1 float32),
            half the bytes of S2 through worker shared memory and no float work per sample;
            normalise on the device with :func:`lake.loader.to_device` (``normalize`` and
            bilinear resampling are refused here with ``native``).
        timeseries: The time-series part of the ``s2_timeseries`` modality (``lake pipeline
            timeseries --part``; None: the release's only part).
        read: How to read (requests in flight, decode threads, byte ranges, retries, timeout,
            shard cache): a :class:`~lake.loader.options.ReadOptions`; it never changes which
            samples come or in which order.
        **s3: ``endpoint_url``, ``key``, ``secret``, ``region`` when ``url_or_spec`` is a URL.

    Raises:
        ConfigError: A bad argument (the message names it).
        LayoutError: No lake, or the patch group is not laid out as the loader expects.
        PatchNotFound: The selection names patches or rows the release lacks.
    """

    def __init__(
        self,
        url_or_spec: str | StoreSpec | None = None,
        select: Any = None,
        *,
        modalities: Sequence[Modality] = DEFAULT_MODALITIES,
        split: Split | None = None,
        release: str | None = None,
        task: Task = "labels",
        tasks: Sequence[TextTask] | Mapping[TextTask, float] | None = None,
        group: Group = "row",
        categories: Sequence[str] | None = None,
        types: Sequence[str] | None = None,
        label_order: LabelOrder = "sorted",
        resample_to: int | None = None,
        resample: Resample = "nearest",
        normalize: Normalize = False,
        image_size: int | None = None,
        rgb_stretch: RgbStretch = "fixed",
        augment: Augment = False,
        shuffle: bool = True,
        seed: int = 0,
        shuffle_buffer_shards: int = 4,
        skip_errors: bool = False,
        batch_size: int | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        equalize: Equalize = "pad",
        dtype: Dtype = "float32",
        timeseries: str | None = None,
        read: ReadOptions | None = None,
        **s3: Any,
    ) -> None:
        super().__init__()
        if task not in TASKS:
            raise ConfigError(f"task={task!r}: use one of {', '.join(TASKS)}")
        if isinstance(modalities, str):
            raise ConfigError(f"modalities={modalities!r}: give a list, e.g. [{modalities!r}]")
        unknown = [m for m in modalities if m not in MODALITIES]
        if unknown:
            raise ConfigError(
                f"modalities={list(modalities)!r}: unknown {unknown}; use {', '.join(MODALITIES)}"
            )
        moved = sorted(set(s3) & _READ_FIELDS)
        if moved:
            given = ", ".join(f"{k}={s3[k]!r}" for k in moved)
            raise ConfigError(
                f"{given}: I/O settings are given as read=ReadOptions({given}) "
                "(from lake.loader import ReadOptions)"
            )
        if read is None:
            read = ReadOptions()
        elif not isinstance(read, ReadOptions):
            raise ConfigError(
                f"read={read!r}: give a lake.loader.ReadOptions, e.g. ReadOptions(max_in_flight=32)"
            )
        if batch_size is not None and batch_size < 1:
            raise ConfigError(f"batch_size={batch_size}: must be at least 1")
        order.rank_length(1, 1, equalize)  # validates equalize
        self.mix: TaskMix = resolve_tasks(task, tasks, group)
        self.group = group
        self.augment = resolve_augment(augment)
        if rgb_stretch not in RGB_STRETCHES:
            raise ConfigError(f"rgb_stretch={rgb_stretch!r}: use 'fixed' or 'lake'")
        self.spec = as_spec(url_or_spec, **s3)
        rel = _open_release(self.spec, release)
        self.release = rel.name
        #: The task, or ``mixed`` for several text tasks (``tasks=``).
        self.task: Task | Literal["mixed"] = task
        if tasks is not None:
            self.task = "mixed" if len(self.mix.tasks) > 1 else cast(Task, self.mix.tasks[0])
        self.modalities = tuple(dict.fromkeys(modalities))
        composites = tuple(m for m in self.modalities if m in COMPOSITES)
        if image_size is not None and not composites:
            raise ConfigError(
                f"image_size={image_size}: it sizes the 'rgb' / 's1_rgb' modalities, which "
                "are not requested; add one, or use resample_to= for the multispectral arrays"
            )
        if dtype not in DTYPES:
            raise ConfigError(f"dtype={dtype!r}: use 'float32' or 'native'")
        if dtype == "native" and normalize is not False:
            raise ConfigError(
                f"normalize={normalize!r} with dtype='native': native values are delivered as "
                "stored; normalise on the device instead: "
                "lake.loader.to_device(batch, device, normalize=...)"
            )
        if dtype == "native" and resample == "bilinear" and resample_to is not None:
            raise ConfigError(
                "resample='bilinear' with dtype='native': interpolation makes float32; use "
                "resample='nearest' (values kept) or dtype='float32'"
            )
        self.dtype: Dtype = dtype
        stats = resolve_stats(normalize, self.spec, rel.name)
        self.decode_spec = DecodeSpec(
            arrays=tuple(m for m in self.modalities if m in RASTERS),
            resample_to=resample_to,
            resample=resample,
            normalize=stats is not None,
            stats=()
            if stats is None or stats is BAND_STATS
            else tuple((b, float(m), float(sd)) for b, (m, sd) in sorted(stats.items())),
            composites=composites,
            image_size=image_size,
            native=dtype == "native",
            stretch=_stretch(rgb_stretch, self.spec, rel.name)
            if "rgb" in composites
            else FIXED_STRETCH,
        )
        self.rgb_stretch = rgb_stretch
        self.shuffle = shuffle
        self.seed = seed
        self.shuffle_buffer_shards = shuffle_buffer_shards
        self.equalize = equalize
        self.skip_errors = skip_errors
        self.batch_size = batch_size
        self.read = read
        self.cache = read.shard_cache()
        selection = resolve_selection(select, self.spec, self.release)
        #: The time-series part read for ``s2_timeseries`` (None without that modality).
        self.timeseries: str | None = None
        self.timeseries_times: list[Any] = []
        self._series: Any = None  # lake.timeseries.TimeSeries, opened per process
        if SERIES in self.modalities:
            series = _open_series(self.spec, self.release, timeseries)
            self.timeseries, self.timeseries_times = series.part, series.times
            selection = _within_series(selection, series)
        elif timeseries is not None:
            raise ConfigError(
                f"timeseries={timeseries!r}: it names the part of the 's2_timeseries' modality, "
                "which is not requested; add it to modalities"
            )
        self.categories = None if categories is None else _names("categories", categories)
        self.types = None if types is None else _names("types", types)
        self.items: Items = load_items(
            rel,
            self.task,
            split=split,
            selection=selection,
            label_order=label_order,
            tasks=None if tasks is None else self.mix.tasks,
            group=group,
            categories=self.categories,
            types=self.types,
        )
        self.epoch_length = (
            mix_length(self.items.row_task, self.mix)
            if self.items.row_task is not None
            else len(self.items)
        )
        names = sorted(set(self.decode_spec.sources) | {"s2_10m"})
        if isinstance(rel, ReleaseIndex):
            self.layouts = index_layouts(rel, names)  # no request: the index holds zarr.json
        else:
            self.layouts = read_layouts(self.spec, self.release, names)
        self.samples_per_shard = self.layouts["s2_10m"].samples_per_shard
        self.layouts = {n: lay for n, lay in self.layouts.items() if n in self.decode_spec.sources}
        self._explicit_rank = rank is not None or world_size is not None
        self.rank, self.world_size = _rank_world(rank, world_size)
        self.epoch = 0
        self._consumed = 0
        self._errors = _Counter()
        self._decoded = _Counter()
        self._runtime: _Runtime | None = None
        self._spool: ShardCache | None = None  # see sharing_reads()

    # -- order and state ---------------------------------------------------------------------

    @property
    def rank_length(self) -> int:
        """Samples (positions) this rank delivers per epoch (the same on every rank)."""
        return order.rank_length(self.epoch_length, self.world_size, self.equalize)

    def __len__(self) -> int:
        """Samples per epoch of this rank, or batches when ``batch_size`` is set."""
        if self.batch_size:
            return -(-self.rank_length // self.batch_size)
        return self.rank_length

    @property
    def errors(self) -> int:
        """Samples skipped because they could not be read (``skip_errors=True``), all workers."""
        return self._errors.value

    @property
    def decoded_samples(self) -> int:
        """Pairs decoded so far (all arrays of one pair count once), all workers together.

        With the per-run cache (``ReadOptions.decode_cache_bytes > 0``) a pair is decoded once
        per run of the order however many of its rows the run delivers.
        """
        return self._decoded.value

    def epoch_items(self, epoch: int | None = None) -> np.ndarray:
        """The items (numbers in :attr:`items`) of an epoch, ascending: all, or a task mix's."""
        if self.items.row_task is None or self.mix.weights is None:
            return np.arange(len(self.items), dtype=np.int64)
        e = self.epoch if epoch is None else epoch
        return mix_items(self.items.row_task, self.mix, seed=self.seed, epoch=e)

    def set_epoch(self, epoch: int) -> None:
        """Use the order of ``epoch``; starts it from its beginning unless it is the one resumed."""
        if epoch < 0:
            raise ConfigError(f"epoch={epoch}: must be >= 0")
        if epoch != self.epoch:
            self.epoch = epoch
            self._consumed = 0
        if not self._explicit_rank:
            self.rank, self.world_size = _rank_world(None, None)

    def sequence(self, epoch: int | None = None) -> order.RankSequence:
        """This rank's sequence of an epoch (items in delivery order)."""
        e = self.epoch if epoch is None else epoch
        chosen = self.epoch_items(e)
        full = order.epoch_order(
            self.items.samples[chosen] // self.samples_per_shard,
            seed=self.seed,
            epoch=e,
            shuffle=self.shuffle,
            buffer_shards=self.shuffle_buffer_shards,
        )
        if len(chosen) != len(self.items):
            full = order.EpochOrder(items=chosen[full.items], windows=full.windows)
        return order.rank_sequence(
            full,
            rank=self.rank,
            world_size=self.world_size,
            equalize=self.equalize,
        )

    def start_position(self) -> int:
        """Where the next iteration starts: what was consumed, or 0 after a finished epoch."""
        return self._consumed if self._consumed < self.rank_length else 0

    def set_consumed(self, consumed: int) -> None:
        """Record that the first ``consumed`` positions of this rank's epoch were delivered.

        For a loader that counts what it delivered itself (:class:`LakeDataLoader` does: worker
        processes cannot report what the trainer received). The next iteration and
        :meth:`state_dict` continue from there.

        Raises:
            ConfigError: ``consumed`` is not in ``[0, rank_length]``.
        """
        if not 0 <= consumed <= self.rank_length:
            raise ConfigError(
                f"consumed={consumed}: must be in [0, rank_length={self.rank_length}]"
            )
        self._consumed = int(consumed)

    @contextlib.contextmanager
    def sharing_reads(self, spool: ShardCache) -> Iterator[None]:
        """Within the block, readers built from this dataset read whole objects through ``spool``.

        :class:`LakeDataLoader` uses it for one epoch: the DataLoader workers it starts inside
        the block (they get a copy of the dataset) then fetch each whole shard object once
        between them instead of once each. A dataset with a ``cache_dir`` uses its cache
        instead, so this is only for datasets without one.

        Args:
            spool: A short-lived cache shared by the processes of the epoch.
        """
        previous = self._spool
        self._spool = spool
        try:
            yield
        finally:
            self._spool = previous

    def state_dict(self, consumed: int | None = None) -> dict[str, Any]:
        """The state to resume from: the epoch and the samples of it this rank consumed.

        Args:
            consumed: Override the count (when you counted delivered samples yourself while
                iterating through worker processes without :class:`LakeDataLoader`).
        """
        return {
            "version": _STATE_VERSION,
            "release": self.release,
            "task": self.task,
            "n_items": self.epoch_length,
            **self._shape_state(),
            "seed": self.seed,
            "shuffle": self.shuffle,
            "shuffle_buffer_shards": self.shuffle_buffer_shards,
            "equalize": self.equalize,
            "rank": self.rank,
            "world_size": self.world_size,
            "epoch": self.epoch,
            "consumed": self._consumed if consumed is None else int(consumed),
            "errors": self.errors,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict`: the next sample is the one after the last consumed.

        The number of DataLoader workers may differ; everything that shapes the order (release,
        task, text tasks and weights, group, filters, selection size, seed, shuffle, rank and
        world size) must match. A state without the text fields (written before they existed)
        is read as having their defaults.

        Raises:
            ConfigError: The state belongs to a different order (the message names the field).
        """
        if state.get("version") != _STATE_VERSION:
            raise ConfigError(f"state version {state.get('version')!r} is not {_STATE_VERSION}")
        mine = self.state_dict()
        defaults = {"tasks": [self.task], "weights": None, "group": "row"}
        state = {**defaults, "categories": None, "types": None, **state}
        for key in (
            "tasks",
            "weights",
            "group",
            "categories",
            "types",
            "release",
            "task",
            "n_items",
            "seed",
            "shuffle",
            "shuffle_buffer_shards",
            "equalize",
            "rank",
            "world_size",
        ):
            if state.get(key) != mine[key]:
                raise ConfigError(
                    f"cannot resume: the state has {key}={state.get(key)!r}, this dataset "
                    f"{key}={mine[key]!r}"
                )
        consumed = int(state["consumed"])
        if not 0 <= consumed <= self.rank_length:
            raise ConfigError(f"cannot resume: consumed={consumed} not in [0, {self.rank_length}]")
        self.epoch = int(state["epoch"])
        self._consumed = consumed
        self._errors.set(int(state.get("errors", 0)))

    def _shape_state(self) -> dict[str, Any]:
        """The text fields that shape the order (JSON values)."""
        return {
            "tasks": list(self.mix.tasks) if self.task != "labels" else ["labels"],
            "weights": None if self.mix.weights is None else list(self.mix.weights),
            "group": self.group,
            "categories": None if self.categories is None else list(self.categories),
            "types": None if self.types is None else list(self.types),
        }

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_runtime"] = None  # clients and threads never cross a process boundary
        state["_series"] = None  # nor open stores
        return state

    # -- iteration ---------------------------------------------------------------------------

    def _runtime_here(self) -> _Runtime:
        rt = self._runtime
        if rt is None or rt.pid != os.getpid():
            read = self.read
            reader = ShardReader(
                self.spec,
                self.release,
                self.layouts,
                max_in_flight=read.max_in_flight,
                retry=read.retry_policy(),
                cache=self.cache,
                spool=self._spool,
                dense_fraction=read.dense_fraction,
                max_gap=read.max_gap,
                timeout=read.timeout,
            )
            decoder = BlockDecoder(self.layouts, self.decode_spec, read.decode_threads)
            # The runs read ahead, and (at the start) the first piece's own small read.
            prefetch = ThreadPoolExecutor(
                read.prefetch_runs + 1, thread_name_prefix="lake-prefetch"
            )
            rt = self._runtime = _Runtime(os.getpid(), reader, decoder, prefetch)
        return rt

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        in_main = info is None
        worker, num_workers = (0, 1) if info is None else (info.id, info.num_workers)
        start = self.start_position()
        if in_main:
            self._consumed = start
        seq = self.sequence()
        block = self.batch_size or 1
        positions = order.worker_positions(
            seq.length, start=start, num_workers=num_workers, worker=worker, block=block
        )
        pieces = self._pieces(seq, positions, start, block)
        try:
            if self.batch_size:
                yield from self._batches(pieces, seq, start, in_main)
            else:
                yield from self._samples(pieces, seq, in_main)
        except BaseException:
            # An epoch that fails or is abandoned (break, close, an error) stops its threads;
            # one that ends normally keeps them (and the shard indexes) for the next epoch.
            self.close()
            raise

    def close(self) -> None:
        """Stop this process's reading and decoding threads; the next epoch starts new ones.

        Called when an epoch fails or is abandoned. Call it when done with a dataset to free its
        threads at once rather than when the dataset is garbage-collected.
        """
        rt, self._runtime = self._runtime, None
        if rt is None or rt.pid != os.getpid():
            return
        rt.prefetch.shutdown(wait=False, cancel_futures=True)
        rt.reader.close()
        rt.decoder.close()

    def _samples(
        self,
        pieces: Iterator[tuple[np.ndarray, dict[str, np.ndarray], set[int]]],
        seq: order.RankSequence,
        in_main: bool,
    ) -> Iterator[Sample]:
        for positions, arrays, bad in pieces:
            tensors = {k: torch.from_numpy(v) for k, v in arrays.items()}
            meta = self._meta(seq.items[positions])
            for row, pos in enumerate(positions.tolist()):
                if in_main:
                    self._consumed = pos + 1
                if row in bad:
                    continue
                sample: Sample = {k: v[row] for k, v in tensors.items()}
                sample.update({k: _element(v, row) for k, v in meta.items()})
                yield sample

    def _batches(
        self,
        pieces: Iterator[tuple[np.ndarray, dict[str, np.ndarray], set[int]]],
        seq: order.RankSequence,
        start: int,
        in_main: bool,
    ) -> Iterator[Batch]:
        assert self.batch_size
        pending: list[tuple[np.ndarray, dict[str, np.ndarray]]] = []
        current, last = None, 0
        for positions, arrays, bad in pieces:
            block_id = int((positions[0] - start) // self.batch_size)
            if current is not None and block_id != current:  # (a block cut short by skips)
                if in_main:
                    self._consumed = last
                yield self._batch(pending, seq)
                pending = []
            current, last = block_id, int(positions[-1]) + 1
            if bad:
                keep = np.array([r not in bad for r in range(len(positions))], dtype=bool)
                positions, arrays = positions[keep], {k: v[keep] for k, v in arrays.items()}
            pending.append((positions, arrays))
            # A complete block goes out now, not when the next piece arrives: the first batch
            # would otherwise wait for the whole first window, not just its own small read.
            if last == min(start + (block_id + 1) * self.batch_size, seq.length):
                if in_main:
                    self._consumed = last
                yield self._batch(pending, seq)
                pending, current = [], None
        if pending:
            if in_main:
                self._consumed = last
            yield self._batch(pending, seq)

    def _batch(
        self, parts: list[tuple[np.ndarray, dict[str, np.ndarray]]], seq: order.RankSequence
    ) -> Batch:
        positions = np.concatenate([p for p, _ in parts])
        batch: Batch = {}
        for name in self.decode_spec.outputs:
            # One piece per block is the rule: its arrays are fresh, so no copy is needed.
            values = parts[0][1][name] if len(parts) == 1 else None
            if values is None:
                values = np.concatenate([a[name] for _, a in parts])
            batch[name] = torch.from_numpy(values)
        for key, values in self._meta(seq.items[positions]).items():
            if isinstance(values, np.ndarray):
                batch[key] = torch.from_numpy(values)
            else:
                batch[key] = values
        return batch

    def _pieces(
        self, seq: order.RankSequence, positions: np.ndarray, start: int, block: int
    ) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray], set[int]]]:
        """Decoded pieces of the worker's positions, in order: (positions, arrays, bad rows).

        Positions are fetched one run (window of shards) at a time, the next
        ``ReadOptions.prefetch_runs`` runs downloading while the current one is decoded (with
        one run ahead the requests stalled at every run's end, waiting for its slowest object).
        A piece never spans two runs or two blocks.

        Fast start: the first piece does not wait for its whole run. Its own samples are fetched
        on their own first (a few percent of each shard: byte ranges), then the run, so the
        first batch of an epoch, or of a resumed one, comes after a small read, not a window.
        Only the worker that delivers that batch does so: the others' first batches are needed
        later, and their reads at the same moment only compete with it (2 workers sent twice
        the requests of the first batch at once; ADR 0005 has the times). With shared reads
        (the spool of :class:`LakeDataLoader`) they wait until the first worker's small read is
        in (a marker file in the spool, at most ``_FIRST_READ_WAIT`` seconds), then read their
        first run, which is the one the first worker reads next (each object once, through the
        spool).

        Decode once: each run has a :class:`~lake.loader.samplecache.RunCache`, so a pair that
        several positions of the run use (the rows of a text task) is decoded once.
        """
        if len(positions) == 0:
            return
        runs = seq.runs[positions]
        groups = np.split(positions, np.flatnonzero(np.diff(runs)) + 1)
        rt = self._runtime_here() if self.layouts else None
        fetches: list[Future[Any] | None] = [None] * len(groups)
        piece = block if self.batch_size else _DECODE_PIECE

        def needs_of(part: np.ndarray) -> Any:
            return group_needs(self.items.samples[seq.items[part]].tolist(), self.layouts)

        def submit(j: int) -> None:
            """Read run ``j`` and the ones after it, up to ``prefetch_runs`` runs ahead."""
            for k in range(j, min(j + self.read.prefetch_runs, len(groups))):
                if rt is not None and fetches[k] is None:
                    fetches[k] = rt.prefetch.submit(rt.reader.fetch, needs_of(groups[k]))

        head: Future[Any] | None = None
        first_ids = (groups[0] - start) // piece
        delivers_first = positions[0] == start
        marker = Path(self._spool.directory, _FIRST_READ) if self._spool is not None else None
        if marker is not None and not delivers_first:
            _wait_for(marker, _FIRST_READ_WAIT)
        if rt is not None and delivers_first and first_ids[0] != first_ids[-1]:  # 2+ pieces
            first_part = groups[0][first_ids == first_ids[0]]
            head = rt.prefetch.submit(rt.reader.fetch, needs_of(first_part))
        else:
            submit(0)
        for j, group in enumerate(groups):
            data: dict[Any, Any] = {}
            failed: dict[Any, Any] = {}
            ids = (group - start) // piece
            parts = np.split(group, np.flatnonzero(np.diff(ids)) + 1)
            cache = self._run_cache(self.items.samples[seq.items[group]])
            if head is not None:
                head_data, head_failed = head.result()
                head = None
                submit(0)  # the whole window, once the first piece's own read is done
                if marker is not None:
                    _touch(marker)
                assert rt is not None
                arrays, problems = self._decode(rt, seq, parts[0], head_data, head_failed, cache)
                yield parts[0], arrays, self._handle(problems)
                del head_data, head_failed
                parts = parts[1:]
            fut = fetches[j]
            if fut is not None:
                data, failed = fut.result()
                fetches[j] = None
                if marker is not None and delivers_first and j == 0:
                    _touch(marker)  # (a first run of one piece: no small read came first)
            submit(j + 1)  # (run j + 1 is usually in flight already: this adds the next one)
            for part in parts:
                if rt is None:
                    yield part, {}, set()
                    continue
                arrays, problems = self._decode(rt, seq, part, data, failed, cache)
                yield part, arrays, self._handle(problems)
            del data, failed, cache

    def _run_cache(self, uses: np.ndarray) -> RunCache | None:
        """The decode cache of a run (None when ``decode_cache_bytes`` is 0 or nothing repeats)."""
        if self.read.decode_cache_bytes == 0 or len(np.unique(uses)) == len(uses):
            return None
        return RunCache(uses, self.read.decode_cache_bytes)

    def _decode(
        self,
        rt: _Runtime,
        seq: order.RankSequence,
        part: np.ndarray,
        data: Any,
        failed: Any,
        cache: RunCache | None,
    ) -> tuple[dict[str, np.ndarray], dict[int, ShardReadError]]:
        """The arrays of the positions ``part`` (through the run's cache), augmented."""
        samples = self.items.samples[seq.items[part]]

        def decode(which: np.ndarray) -> tuple[dict[str, np.ndarray], dict[int, ShardReadError]]:
            self._decoded.add(len(which))
            return rt.decoder.decode(which, data, failed)

        arrays, problems = decode(samples) if cache is None else cache.take(samples, decode)
        if self.augment is not None:
            augment_arrays(arrays, self._transforms(seq.items[part]))
        return arrays, problems

    def _transforms(self, item_ids: np.ndarray) -> list[Any]:
        assert self.augment is not None
        flips, rotations = self.augment
        return item_transforms(
            item_ids, seed=self.seed, epoch=self.epoch, flips=flips, rotations=rotations
        )

    @property
    def box_size(self) -> int:
        """The grid of ``box_pixels``: the ``rgb`` image's when delivered, else the rasters'."""
        if "rgb" in self.decode_spec.composites:
            return self.decode_spec.image_size or 120
        return self.decode_spec.resample_to or 120

    def _handle(self, problems: dict[int, ShardReadError]) -> set[int]:
        if not problems:
            return set()
        first = problems[min(problems)]
        if not self.skip_errors:
            # The same class (IntegrityError for a failed checksum), with what to do next.
            raise type(first)(
                f"{first}; the epoch cannot continue (pass skip_errors=True to skip and count "
                "such samples)"
            ) from first
        self._errors.add(len(problems))
        for reason in sorted({str(p) for p in problems.values()}):
            log.warning("skipping samples that cannot be read: %s", reason)
        return set(problems)

    def _meta(self, item_ids: np.ndarray) -> dict[str, Any]:
        """Per-item non-raster values, column-wise (arrays for numbers, lists for strings)."""
        items = self.items
        table = items.table.take(item_ids)
        out: dict[str, Any] = {
            "patch_id": table["patch_id"].to_pylist(),
            "sample_index": items.samples[item_ids].copy(),
        }
        if "labels" in self.modalities or self.task == "labels":
            out["labels"] = items.labels[item_ids].copy()
        if self.items.group == "pair":
            assert items.rows is not None and items.offsets is not None
            out["conversation"] = pair_rows(items.rows, items.offsets, item_ids)
        elif self.task != "labels":
            out.update(row_meta(table, self.items.tasks, self.box_size))
        if self.timeseries is not None:
            out[SERIES] = self._read_series(table["patch_id"].to_pylist(), item_ids)
        if self.augment is not None:
            augment_meta(out, self._transforms(item_ids), self.box_size)
        return out

    def _read_series(self, patch_ids: list[str], item_ids: np.ndarray) -> np.ndarray:
        """``(n, T, 4, 120, 120)`` composites of the patches (flipped like the other rasters)."""
        from lake.timeseries import TimeSeries
        from lake.vlm.augment import transform_image

        if self._series is None:
            self._series = TimeSeries.open(self.spec, self.release, self.timeseries)
        values = self._series.composite(self._series.indices_of(patch_ids), "s2_10m")
        if self.dtype != "native":
            values = values.astype(np.float32)
        if self.augment is not None:
            for row, t in enumerate(self._transforms(item_ids)):
                values[row] = transform_image(values[row], t)
        return values

    def collate_fn(self) -> Any:
        """The collate function of this dataset's samples."""
        return collate_fn(self.task) if self.task in COLLATE else collate_samples


def _open_series(spec: StoreSpec, release: str, part: str | None) -> Any:
    """The time-series part of ``s2_timeseries``, checked to hold composites.

    Raises:
        ConfigError: The release has no such part, or the part has no composites.
    """
    from lake.timeseries import TimeSeries

    try:
        series = TimeSeries.open(spec, release, part)
    except LayoutError as exc:
        raise ConfigError(f"modality 's2_timeseries': {exc}") from None
    if series.document["composite"] == "none":
        raise ConfigError(
            f"modality 's2_timeseries': part {series.part!r} holds raw acquisitions only (a "
            "ragged number per pair); cut it with --composite 10D or month, or read the "
            "acquisitions with lake.timeseries.TimeSeries.read"
        )
    return series


def _within_series(selection: Selection | None, series: Any) -> Selection:
    """The selection restricted to the pairs a time-series part covers.

    Raises:
        ConfigError: The selection is of annotation IDs.
        PatchNotFound: It names pairs the part does not cover.
    """
    covered = series.patch_ids
    if selection is None:
        return Selection("patch_id", tuple(sorted(covered)))
    if selection.by != "patch_id":
        raise ConfigError(
            "modality 's2_timeseries' selects pairs: give patch ids (or SQL returning "
            "patch_id), not annotation IDs"
        )
    series.indices_of(list(selection.values))  # PatchNotFound names the uncovered ones
    return selection


def _open_release(spec: StoreSpec, release: str | None) -> ReleaseIndex | Any:
    """The release's index, or the release read the long way when it has none.

    With an index, opening costs ``lake.json`` and the index object; a release published before
    indexes existed is a :class:`lake.reader.Release` (its tables and ``zarr.json`` files).

    Raises:
        LayoutError: There is no lake at the URL.
        ReleaseNotFound: The release is not published.
    """
    from lake.release import resolve_release

    try:
        name = resolve_release(spec, release)  # lake.json
    except ReleaseNotFound:
        from lake.reader import open_lake

        open_lake(spec)  # raises "there is no lake" when there is none
        raise
    index = read_index(spec, name)
    if index is not None:
        return index  # lake.reader (and pyarrow.dataset) is not even imported then
    from lake.reader import Release

    log.info("release %r of %s has no index: opening it from its tables", name, spec.url)
    return Release(spec, name)


#: The name of an epoch's spool folder: ``lake-spool-<host>-<pid>-<random>``.
_SPOOL = re.compile(r"lake-spool-(?P<host>[A-Za-z0-9.\-]+)-(?P<pid>\d+)-[^/]+")


def _new_spool(parent: str | None) -> str:
    """A spool folder for an epoch, after removing those that dead processes left behind.

    An epoch deletes its spool when it ends or stops; a process that is killed cannot, and left
    up to ``spool_bytes`` (2 GiB) in the temp folder each time. The name carries the host and
    the process id, so spools of processes of this host that no longer exist are removed; a
    live process's (or another host's, on a shared folder) are left alone.
    """
    base = parent if parent is not None else tempfile.gettempdir()
    host = re.sub(r"[^A-Za-z0-9.\-]", "-", socket.gethostname()) or "host"
    with contextlib.suppress(OSError):
        for entry in os.scandir(base):
            found = _SPOOL.fullmatch(entry.name)
            if found and found["host"] == host and not _alive(int(found["pid"])):
                shutil.rmtree(entry.path, ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"lake-spool-{host}-{os.getpid()}-", dir=parent)


def _alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, it is not ours
        return True
    return True


def _touch(path: Path) -> None:
    with contextlib.suppress(OSError):  # a spool already removed: nobody is waiting
        path.touch()


def _wait_for(path: Path, timeout: float) -> None:
    """Wait until ``path`` exists, at most ``timeout`` seconds (then go on regardless)."""
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.005)


def _as_is(batch: Any) -> Any:
    """The collate function of :class:`LakeDataLoader`: the dataset's batch, unchanged."""
    return batch


def _stretch(kind: str, spec: StoreSpec, release: str) -> Stretch:
    """The ``rgb`` stretch of ``rgb_stretch=kind``."""
    if kind == "fixed":
        return FIXED_STRETCH
    try:
        stats = lake_band_stats(spec, release)
    except LayoutError as exc:
        raise ConfigError(
            f"rgb_stretch='lake': {exc}; or use rgb_stretch='fixed' (a fixed reflectance range)"
        ) from None
    return stretch_from_stats(stats)


def _names(what: str, values: Sequence[str]) -> tuple[str, ...]:
    """A filter's values as a tuple of strings (a bare string is refused)."""
    if isinstance(values, str) or not all(isinstance(v, str) for v in values):
        raise ConfigError(f"{what}={values!r}: give a list of strings, e.g. [{values!r}]")
    return tuple(values)


def _element(values: Any, row: int) -> Any:
    if isinstance(values, np.ndarray):
        if values.ndim == 1:
            return values[row].item()
        return torch.from_numpy(values[row])
    return values[row]


def _rank_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """Explicit rank/world size, else ``torch.distributed``'s when initialised, else (0, 1)."""
    if rank is None and world_size is None:
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1
    if rank is None or world_size is None:
        raise ConfigError(f"rank={rank}, world_size={world_size}: give both or neither")
    if not 0 <= rank < world_size:
        raise ConfigError(f"rank={rank}: must be in [0, world_size={world_size})")
    return rank, world_size


class LakeDataLoader(DataLoader[Any]):
    """A DataLoader over a :class:`LakeDataset` that yields whole batches and can resume.

    The dataset builds each batch itself (one block of the order, decoded at once) and the
    loader counts what it delivered, so :meth:`state_dict` taken after any batch resumes at the
    very next sample, with any number of workers.

    With two or more worker processes, the workers of an epoch share the shard objects they
    read whole through a spool: a temporary folder (``spool_dir``, default the system's temp
    folder) where the first worker that needs an object fetches it while the others wait and
    then read it from disk. Every worker decodes samples from every shard of the current shuffle
    window, so without it each object would be fetched once per worker. The spool holds at most
    ``spool_bytes`` (least recently used objects go first) and is deleted when the epoch ends
    (the spools a killed process left are removed when the next one is made).
    A dataset with its own ``cache_dir`` uses that cache instead.

    Workers hand their batches to the training process through a few shared-memory arenas each
    (``prefetch_factor + 2``, reused batch after batch: :mod:`lake.loader.ring`) instead of a
    new shared-memory segment per batch; the training process copies each batch out, so every
    batch it yields is its own. With ``pin_memory=True`` torch's own path is used.

    Args:
        dataset: The dataset (its ``batch_size`` is set to ``batch_size``).
        batch_size: Samples per batch.
        share_reads: Use the spool when there are two or more workers.
        spool_dir: Where the spool folder is created (None: the system's temp folder).
        spool_bytes: Size cap of the spool.
        **kwargs: Passed to ``DataLoader`` (``num_workers``, ``pin_memory``, ``timeout``,
            ``prefetch_factor``...); ``persistent_workers`` must stay False (workers would keep
            the epoch they started with).

    Raises:
        ConfigError: ``persistent_workers=True``, or a ``sampler``/``collate_fn`` is given.
    """

    def __init__(
        self,
        dataset: LakeDataset,
        batch_size: int = 64,
        *,
        share_reads: bool = True,
        spool_dir: str | os.PathLike[str] | None = None,
        spool_bytes: int = 2 * 2**30,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("persistent_workers"):
            raise ConfigError(
                "persistent_workers=True: workers would keep the epoch they started with; "
                "leave it False"
            )
        for key in ("sampler", "batch_sampler", "collate_fn", "shuffle"):
            if kwargs.get(key) is not None:
                raise ConfigError(f"{key}=: LakeDataLoader orders and collates by itself")
        if batch_size < 1:
            raise ConfigError(f"batch_size={batch_size}: must be at least 1")
        if spool_bytes <= 0:
            raise ConfigError(f"spool_bytes={spool_bytes}: must be positive")
        dataset.batch_size = batch_size
        self.lake_dataset = dataset
        self.share_reads = share_reads
        self.spool_dir = os.fspath(spool_dir) if spool_dir is not None else None
        self.spool_bytes = spool_bytes
        self._ring: BatchRing | None = None  # the ring of the latest epoch
        # The dataset's batches are tensors already: no default_convert walk over them.
        super().__init__(dataset, batch_size=None, collate_fn=_as_is, **kwargs)

    @property
    def _ring_slots(self) -> int:
        """Arenas per worker of the batch ring (lake.loader.ring); 0: no ring.

        No ring in process, nor when torch's pin-memory thread would copy the arenas themselves.
        """
        if self.num_workers == 0 or self.pin_memory:
            return 0
        return (self.prefetch_factor or 2) + 2

    def __iter__(self) -> Iterator[Batch]:  # type: ignore[override]
        ds = self.lake_dataset
        start = ds.start_position()
        ds.set_consumed(start)
        size = ds.batch_size or 1
        length = ds.rank_length
        ring = None
        if self._ring_slots:
            # The workers this iterator starts take the ring with the collate function.
            ring = self._ring = BatchRing(self.num_workers, self._ring_slots)
        self.collate_fn = ring.pack if ring is not None else _as_is
        with contextlib.ExitStack() as epoch:
            if self.share_reads and self.num_workers > 1 and ds.cache is None:
                spool = _new_spool(self.spool_dir)
                epoch.callback(shutil.rmtree, spool, ignore_errors=True)
                epoch.enter_context(ds.sharing_reads(ShardCache(spool, self.spool_bytes)))
                batches = super().__iter__()
                # The workers must be gone before their spool is (an early stop leaves them).
                shutdown = getattr(batches, "_shutdown_workers", None)
                if shutdown is not None:
                    epoch.callback(shutdown)
            else:
                batches = super().__iter__()
            for k, batch in enumerate(batches):
                if ring is not None:
                    batch = ring.unpack(batch)
                ds.set_consumed(min(start + (k + 1) * size, length))
                if len(batch.get("patch_id", ())) == 0:
                    continue  # every sample of the block was skipped (skip_errors=True)
                yield batch

    def state_dict(self) -> dict[str, Any]:
        """The dataset's state (see :meth:`LakeDataset.state_dict`)."""
        return self.lake_dataset.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume the dataset (see :meth:`LakeDataset.load_state_dict`)."""
        self.lake_dataset.load_state_dict(state)
