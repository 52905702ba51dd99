"""BigEarthNet.txt-style annotations whose answers are true of each patch's reference map.

About 97 % of the pairs get text (:data:`TEXT_COVERAGE`), about 21 rows each: 8 binary, 7 multiple
choice, up to 5 bounding boxes and one caption. Formats (what the lake's parser reads):

* binary: output ``yes`` / ``no``;
* mcq: input = question, then one option per line ``A. <text>``; output = the letter alone;
* bounding box: output ``[x1 y1, x2 y2]`` normalised to 0..1 (x = column / 120, y = row / 120 of
  the pixel edges: x1 = first column / 120, x2 = (last column + 1) / 120), the box of ONE
  4-connected region of the class: for a ``<ref>`` its largest region (the expression says
  ``the largest area of <class>`` when the class has several regions), for a point the region
  that holds it; points are ``<point>(x, y)</point>`` with x = k / 100 meaning pixel column
  ``k * 120 // 100`` (the same for y);
* captioning: one sentence naming the main classes with their shares, the country and season.

A deterministic ~0.25 % of the test pairs with text become the ``bench`` split (at least one when
there are 20 or more). Everything is a function of ``(seed, patch_id)`` and the reference map.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import numpy as np
import pyarrow as pa

from lake.bigearthnet import (
    CLASSES_ORIGINAL,
    CODE_TO_CLASS,
    SEASONS,
    TEXT_COLUMNS,
    season_of,
)
from lake.grid import centre_wgs84
from lake.names import parse_patch_id
from pipelines.synth.landcover import (
    SIZE,
    TEXT_STREAM,
    land_cover_for_key,
    patch_key,
    patch_rng,
)

#: Share of the pairs that get text (BigEarthNet.txt covers 464,044 of 480,038).
TEXT_COVERAGE: Final = 0.967
#: Share of the test pairs with text that become the manually verified ``bench`` split.
BENCH_FRACTION: Final = 0.0025
#: Rows per record batch (and parquet row group).
BATCH_ROWS: Final = 100_000

_NON_STRING: Final = {"ID": pa.int64(), "latitude": pa.float64(), "longitude": pa.float64()}
#: BigEarthNet.txt's columns in file order: strings except ID (int64) and the centre (float64).
TEXT_SCHEMA: Final = pa.schema([(n, _NON_STRING.get(n, pa.string())) for n in TEXT_COLUMNS])

COUNTRIES: Final = (
    "Austria",
    "Belgium",
    "Finland",
    "Ireland",
    "Kosovo",
    "Lithuania",
    "Luxembourg",
    "Portugal",
    "Serbia",
    "Switzerland",
)
CLIMATE_ZONES: Final = ("Cfa", "Cfb", "Cfc", "Csa", "Csb", "Dfa", "Dfb", "Dfc", "BSk", "ET")
POSITIONS: Final = ("top left", "top right", "bottom left", "bottom right", "centre")
LETTERS: Final = "ABCD"
#: A map function: ``(patch_id, labels) -> (120, 120) uint16 CLC codes``.
MapFn = Callable[[str, Sequence[str]], np.ndarray]
#: One text row before the pair's columns: (input, output, type, category).
Row = tuple[str, str, str, str]


def climate_zone(country: str, latitude: float, longitude: float) -> str:
    """A plausible Koeppen-Geiger zone for a patch centre (coarse rules per country)."""
    if country == "Portugal":
        return "Csa" if latitude < 40.0 else "Csb"
    if country == "Finland":
        return "Dfb" if latitude < 62.0 else "Dfc"
    if country == "Lithuania":
        return "Dfb"
    if country == "Austria":
        return "Dfb" if longitude < 13.5 else "Cfb"  # the Alps in the west
    if country == "Switzerland":
        return "Dfb" if latitude < 46.8 else "Cfb"
    if country in ("Serbia", "Kosovo"):
        return "Cfa" if latitude > 44.0 else "Dfb"  # Pannonian plain vs the hills
    return "Cfb"  # Ireland, Belgium, Luxembourg and anything else


# ---------------------------------------------------------------------------------------------
# Which pairs get text, which are bench


@dataclass(frozen=True)
class TextPlan:
    """Per metadata row: its patch key, whether it gets text, and its text split.

    Attributes:
        keys: :func:`~pipelines.synth.landcover.patch_key` of each row (Python ints).
        has_text: Whether the pair gets text.
        splits: The split its text rows carry (``bench`` for the chosen test pairs).
    """

    keys: list[int]
    has_text: np.ndarray
    splits: list[str]


def plan_text(metadata: pa.Table, seed: int) -> TextPlan:
    """Decide coverage and bench pairs for every row of ``metadata`` (deterministic)."""
    ids = metadata.column("patch_id").to_pylist()
    splits = metadata.column("split").to_pylist()
    keys = [patch_key(seed, p) for p in ids]
    k = np.array(keys, dtype=np.uint64)
    has_text = (k >> np.uint64(11)).astype(np.float64) / 2.0**53 < TEXT_COVERAGE
    test = np.flatnonzero(has_text & (np.array(splits, dtype=object) == "test"))
    n_bench = round(BENCH_FRACTION * len(test))
    if len(test) >= 20:
        n_bench = max(n_bench, 1)
    order = np.argsort(k[test] & np.uint64(0xFFFFFFFF), kind="stable")
    for i in test[order[:n_bench]]:
        splits[i] = "bench"
    return TextPlan(keys=keys, has_text=has_text, splits=splits)


# ---------------------------------------------------------------------------------------------
# What the map says


@lru_cache(maxsize=1)
def _class_lut() -> np.ndarray:
    lut = np.full(1000, -1, dtype=np.int8)
    for code, name in CODE_TO_CLASS.items():
        lut[code] = CLASSES_ORIGINAL.index(name)
    return lut


@lru_cache(maxsize=1)
def _pixel_rows_cols() -> tuple[np.ndarray, np.ndarray]:
    return np.divmod(np.arange(SIZE * SIZE), SIZE)


@dataclass(frozen=True)
class MapStats:
    """The facts of a reference map the questions are drawn from (classes in original order).

    Attributes:
        cls: ``(120, 120)`` int8 class index per pixel, -1 for unlabeled codes.
        counts: ``(19,)`` pixels per class.
        present: Indices of the classes present, by decreasing area.
        region: ``(120, 120)`` label of the 4-connected region of each pixel (see
            :func:`label_regions`), -1 for unlabeled codes.
        n_regions: ``(19,)`` number of regions of each class.
        largest: ``(19,)`` label of the largest region of each class (the first in raster order
            among equals), -1 for absent classes.
        largest_tied: ``(19,)`` whether another region of the class is as large as the largest.
        centroid: ``(19, 2)`` mean (x, y) of each class, normalised to 0..1.
        adjacent: Unordered pairs ``(a, b)`` with ``a < b`` of 4-connected touching classes.
        interior: ``(120, 120)`` bool: the pixel and its 8 neighbours share a labeled class.
    """

    cls: np.ndarray
    counts: np.ndarray
    present: tuple[int, ...]
    region: np.ndarray
    n_regions: np.ndarray
    largest: np.ndarray
    largest_tied: np.ndarray
    centroid: np.ndarray
    adjacent: frozenset[tuple[int, int]]
    interior: np.ndarray

    def region_box(self, label: int) -> tuple[int, int, int, int]:
        """Column min, row min, column max, row max (inclusive) of the region ``label``."""
        mask = self.region == label
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


def map_stats(codes: np.ndarray) -> MapStats:
    """Compute :class:`MapStats` of a ``(120, 120)`` map of CLC codes (vectorised)."""
    n = len(CLASSES_ORIGINAL)
    cls = _class_lut()[codes]
    flat = cls.ravel().astype(np.int64)
    rows, cols = _pixel_rows_cols()
    slot = flat + 1  # 0 = unlabeled
    counts = np.bincount(slot, minlength=n + 1)[1:]
    present = tuple(int(c) for c in np.argsort(-counts, kind="stable") if counts[c] > 0)
    region = label_regions(cls)
    n_regions, largest, largest_tied = _largest_regions(region.ravel(), flat, n)
    safe = np.maximum(counts, 1)
    cx = (np.bincount(slot, weights=cols, minlength=n + 1)[1:] / safe + 0.5) / SIZE
    cy = (np.bincount(slot, weights=rows, minlength=n + 1)[1:] / safe + 0.5) / SIZE
    return MapStats(
        cls=cls,
        counts=counts,
        present=present,
        region=region,
        n_regions=n_regions,
        largest=largest,
        largest_tied=largest_tied,
        centroid=np.stack([cx, cy], axis=1),
        adjacent=_adjacent(cls, n),
        interior=_interior(cls),
    )


def label_regions(cls: np.ndarray) -> np.ndarray:
    """Label the 4-connected regions of equal class of a map, vectorised.

    Written here because ``scipy.ndimage.label`` is not a dependency of the project.

    Pixels start with the label of the first pixel of their run along the row. Then, until the
    two pixels of every vertical 4-neighbour pair of the same class carry the same label, each
    root that is the larger label of a differing pair is hooked onto the smallest label it meets
    and the labels are compressed by pointer jumping (``label = label[label]``). Labels only ever
    point to smaller pixel indices of the same region, so the result is unique.

    Args:
        cls: ``(height, width)`` integer class per pixel; negative values are unlabeled.

    Returns:
        ``(height, width)`` int64 labels: the flat index (``row * width + column``) of the first
        pixel, in raster order, of the pixel's region; -1 for unlabeled pixels.
    """
    width = cls.shape[1]
    flat = cls.ravel()
    index = np.arange(flat.size, dtype=np.int64)
    run_start = np.ones(flat.size, dtype=bool)
    run_start[1:] = flat[1:] != flat[:-1]
    run_start[::width] = True
    labels = np.maximum.accumulate(np.where(run_start, index, 0))
    upper = np.flatnonzero((flat[:-width] == flat[width:]) & (flat[:-width] >= 0))
    lower = upper + width
    while True:
        a, b = labels[upper], labels[lower]
        differ = a != b
        if not differ.any():
            break
        upper, lower, a, b = upper[differ], lower[differ], a[differ], b[differ]
        np.minimum.at(labels, np.maximum(a, b), np.minimum(a, b))  # a, b are roots
        while True:
            jumped = labels[labels]
            if np.array_equal(jumped, labels):
                break
            labels = jumped
    labels[flat < 0] = -1
    return labels.reshape(cls.shape)


def _largest_regions(
    region: np.ndarray, cls: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per class: its number of regions, its largest region's label, whether that one is tied."""
    sizes = np.bincount(region[region >= 0], minlength=region.size)
    roots = np.flatnonzero(sizes)
    owner = cls[roots].astype(np.int64)
    order = np.lexsort((roots, -sizes[roots], owner))  # by class, decreasing size, raster order
    owner, roots = owner[order], roots[order]
    first = np.ones(len(roots), dtype=bool)
    first[1:] = owner[1:] != owner[:-1]
    largest = np.full(n, -1, dtype=np.int64)
    largest[owner[first]] = roots[first]
    tied = np.zeros(n, dtype=bool)
    same = ~first[1:] & (sizes[roots[1:]] == sizes[roots[:-1]])
    tied[owner[1:][same & first[:-1]]] = True
    return np.bincount(owner, minlength=n), largest, tied


def _adjacent(cls: np.ndarray, n: int) -> frozenset[tuple[int, int]]:
    pairs = []
    for a, b in ((cls[:, :-1], cls[:, 1:]), (cls[:-1, :], cls[1:, :])):
        touch = (a != b) & (a >= 0) & (b >= 0)
        lo = np.minimum(a[touch], b[touch]).astype(np.int64)
        hi = np.maximum(a[touch], b[touch]).astype(np.int64)
        pairs.append(lo * n + hi)
    codes = np.unique(np.concatenate(pairs))
    return frozenset((int(c // n), int(c % n)) for c in codes)


def _interior(cls: np.ndarray) -> np.ndarray:
    padded = np.pad(cls, 1, mode="edge")
    same = cls >= 0
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            same &= padded[dy : dy + SIZE, dx : dx + SIZE] == cls
    return same


def point_pixel(k: int) -> int:
    """The pixel row/column that the normalised coordinate ``k / 100`` designates."""
    return k * SIZE // 100


def position_of(x: float, y: float) -> str:
    """Where a normalised centroid lies: a quadrant, or ``centre`` when close to the middle."""
    if abs(x - 0.5) < 1 / 6 and abs(y - 0.5) < 1 / 6:
        return "centre"
    return f"{'top' if y < 0.5 else 'bottom'} {'left' if x < 0.5 else 'right'}"


def box_string(box: tuple[int, int, int, int]) -> str:
    """The normalised ``[x1 y1, x2 y2]`` of an inclusive (column, row, column, row) pixel box."""
    c0, r0, c1, r1 = box
    x1, y1, x2, y2 = c0 / SIZE, r0 / SIZE, (c1 + 1) / SIZE, (r1 + 1) / SIZE
    if f"{x1:.2f}" == f"{x2:.2f}":
        x2 += 0.01
    if f"{y1:.2f}" == f"{y2:.2f}":
        y2 += 0.01
    return f"[{x1:.2f} {y1:.2f}, {x2:.2f} {y2:.2f}]"


# ---------------------------------------------------------------------------------------------
# Questions


def _name(c: int) -> str:
    return CLASSES_ORIGINAL[c].lower()


@dataclass(frozen=True)
class PairInfo:
    """The per-pair values of every text row of a pair."""

    patch_id: str
    s1_name: str
    split: str
    latitude: float
    longitude: float
    country: str
    season: str
    climate_zone: str


def pair_info(row: dict[str, object], split: str) -> PairInfo:
    """Location, season and climate of a metadata row (``split`` as planned)."""
    patch_id = str(row["patch_id"])
    s2 = parse_patch_id(patch_id)
    lon, lat = centre_wgs84(s2.tile, s2.x, s2.y)
    country = str(row["country"])
    return PairInfo(
        patch_id=patch_id,
        s1_name=str(row["s1_name"]),
        split=split,
        latitude=lat,
        longitude=lon,
        country=country,
        season=season_of(s2.datetime.month),
        climate_zone=climate_zone(country, lat, lon),
    )


class _Asker:
    """Draws the questions of one pair from its map statistics."""

    def __init__(self, stats: MapStats, info: PairInfo, rng: np.random.Generator) -> None:
        self.s, self.info, self.rng = stats, info, rng
        self.present = list(stats.present)
        self.absent = [c for c in range(len(CLASSES_ORIGINAL)) if stats.counts[c] == 0]
        self._points: np.ndarray | None = None  # candidate (ky, kx) of point questions

    def pick(self, items: Sequence[int], n: int = 1) -> list[int]:
        n = min(n, len(items))
        return [items[i] for i in self.rng.choice(len(items), size=n, replace=False)]

    def mcq(self, question: str, correct: str, others: Sequence[str], category: str) -> Row:
        n_opts = 4 if self.rng.random() < 0.7 else 3
        wrong = [others[i] for i in self.rng.permutation(len(others))[: n_opts - 1]]
        options = [correct, *wrong]
        order = self.rng.permutation(len(options))
        lines = [f"{LETTERS[j]}. {options[i]}" for j, i in enumerate(order)]
        answer = LETTERS[int(np.flatnonzero(order == 0)[0])]
        return ("\n".join([question, *lines]), answer, "mcq", category)

    def point(self) -> tuple[str, int, int] | None:
        """A ``<point>`` markup on an interior labeled pixel, that pixel's class and region."""
        if self._points is None:
            grid = np.arange(100) * SIZE // 100
            ok = self.s.interior[np.ix_(grid, grid)]
            if not ok.any():
                ok = self.s.cls[np.ix_(grid, grid)] >= 0
            self._points = np.argwhere(ok)
        if not len(self._points):
            return None
        ky, kx = (int(v) for v in self._points[self.rng.integers(len(self._points))])
        row, col = point_pixel(ky), point_pixel(kx)
        markup = f"<point>({kx / 100:.2f}, {ky / 100:.2f})</point>"
        return markup, int(self.s.cls[row, col]), int(self.s.region[row, col])

    # -- binary ------------------------------------------------------------------------------

    def presence(self, c: int) -> Row:
        answer = "yes" if self.s.counts[c] > 0 else "no"
        return (f"Is there any {_name(c)} in the image?", answer, "binary", "presence")

    def area_binary(self, n: int) -> list[Row]:
        """``n`` comparisons of two classes' areas (different pairs, random order)."""
        counts = self.s.counts
        pairs = [(a, b) for a in self.present for b in self.present if counts[a] > counts[b]]
        if not pairs:
            pairs = [(a, b) for a in self.present for b in self.absent]
        rows = []
        for i in self.rng.permutation(len(pairs))[:n]:
            a, b = pairs[i] if self.rng.random() < 0.5 else pairs[i][::-1]
            question = f"Does {_name(a)} cover more of the image than {_name(b)}?"
            rows.append((question, "yes" if counts[a] > counts[b] else "no", "binary", "area"))
        return rows

    def adjacency(self) -> Row | None:
        if len(self.present) < 2:
            return self.presence(self.pick(self.absent)[0]) if self.absent else None
        a, b = self.pick(self.present, 2)
        touching = (min(a, b), max(a, b)) in self.s.adjacent
        question = f"Is the <ref>{_name(a)}</ref> adjacent to the <ref>{_name(b)}</ref>?"
        return (question, "yes" if touching else "no", "binary", "adjacency")

    def point_binary(self) -> Row | None:
        found = self.point()
        if found is None:
            return None
        markup, c, _ = found
        others = [o for o in self.present + self.absent if o != c]
        asked = c if self.rng.random() < 0.5 else self.pick(others)[0]
        question = f"Is the land cover at {markup} {_name(asked)}?"
        return (question, "yes" if asked == c else "no", "binary", "point")

    # -- multiple choice -----------------------------------------------------------------------

    def largest(self) -> Row | None:
        if not self.present:
            return None
        top = self.present[0]
        smaller = [c for c in self.present if self.s.counts[c] < self.s.counts[top]]
        others = [_name(c) for c in self.pick(smaller, 3) + self.pick(self.absent, 3)][:3]
        question = "Which land-cover class covers the largest area of the image?"
        return self.mcq(question, _name(top), others, "area")

    def which_present(self) -> Row | None:
        if not self.present or len(self.absent) < 2:
            return None
        others = [_name(c) for c in self.pick(self.absent, 3)]
        question = "Which of these land-cover classes is present in the image?"
        return self.mcq(question, _name(self.pick(self.present)[0]), others, "presence")

    def counting(self) -> Row:
        n = len(self.present)
        others = [str(v) for v in range(max(1, n - 3), n + 4) if v != n]
        question = "How many distinct land-cover classes are there in the image?"
        return self.mcq(question, str(n), others, "counting")

    def relative_position(self) -> Row | None:
        if not self.present:
            return None
        clear = [c for c in self.present if _clear_position(*self.s.centroid[c])]
        c = self.pick(clear or self.present)[0]
        where = position_of(*self.s.centroid[c])
        others = [p for p in POSITIONS if p != where]
        question = f"Where is the <ref>{_name(c)}</ref> located in the image?"
        return self.mcq(question, where, others, "relative position")

    def country(self) -> Row:
        others = [c for c in COUNTRIES if c != self.info.country]
        return self.mcq(
            "In which country was this image taken?", self.info.country, others, "country"
        )

    def season(self) -> Row:
        others = [s for s in SEASONS if s != self.info.season]
        return self.mcq(
            "In which season was this image acquired?", self.info.season, others, "season"
        )

    def climate(self) -> Row:
        others = [z for z in CLIMATE_ZONES if z != self.info.climate_zone]
        question = "What is the Koeppen-Geiger climate zone of this area?"
        return self.mcq(question, self.info.climate_zone, others, "climate zone")

    # -- boxes and caption ---------------------------------------------------------------------

    def referable(self) -> list[int]:
        """The present classes whose largest region is unambiguous (no other one as large)."""
        return [c for c in self.present if not self.s.largest_tied[c]]

    def box_reference(self, c: int) -> Row:
        """The box of the largest 4-connected region of class ``c``."""
        several = self.s.n_regions[c] > 1
        what = f"the largest area of {_name(c)}" if several else f"the {_name(c)}"
        question = f"Give the bounding box of <ref>{what}</ref>."
        box = self.s.region_box(int(self.s.largest[c]))
        return (question, box_string(box), "bounding box", "reference")

    def box_point(self) -> Row | None:
        found = self.point()
        if found is None:
            return None
        markup, _, label = found
        box = self.s.region_box(label)
        question = f"Give the bounding box of the region at {markup}."
        return (question, box_string(box), "bounding box", "point")

    def caption(self) -> Row:
        parts = [
            f"{_name(c)} (about {round(100 * self.s.counts[c] / SIZE**2)} %)"
            for c in self.present[:3]
        ]
        listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
        shown = f"showing {listed}" if parts else "with no labeled land cover"
        where = f"{self.info.country} taken in {self.info.season.lower()}"
        text = f"A Sentinel-2 image of {where}, {shown}."
        return ("Describe this Sentinel-2 image.", text, "captioning", "caption")


def _clear_position(x: float, y: float) -> bool:
    """Whether a centroid is far from the lines that separate the five positions."""
    if abs(x - 0.5) < 1 / 6 - 0.03 and abs(y - 0.5) < 1 / 6 - 0.03:
        return True
    outside = max(abs(x - 0.5), abs(y - 0.5)) > 1 / 6 + 0.03
    return outside and min(abs(x - 0.5), abs(y - 0.5)) > 0.05


def pair_rows(codes: np.ndarray, info: PairInfo, rng: np.random.Generator) -> list[Row]:
    """The text rows of one pair: ~8 binary, 7 mcq, up to 5 boxes, 1 caption, true of ``codes``."""
    ask = _Asker(map_stats(codes), info, rng)
    asked = ask.pick(ask.present, 1 + int(rng.random() < 0.5))
    asked += ask.pick(ask.absent, 3 - len(asked))
    binary: list[Row | None] = [ask.presence(c) for c in asked]
    binary += [*ask.area_binary(2), ask.adjacency(), ask.point_binary(), ask.point_binary()]
    mcq: list[Row | None] = [ask.largest(), ask.which_present(), ask.counting()]
    mcq.append(ask.relative_position())
    mcq += [ask.country(), ask.season(), ask.climate()]
    boxes: list[Row | None] = [ask.box_reference(c) for c in ask.pick(ask.referable(), 3)]
    boxes += [ask.box_point(), ask.box_point()]
    rows: dict[str, Row] = {}
    for row in (*binary, *mcq, *boxes, ask.caption()):
        if row is not None and row[0] not in rows:  # no question twice
            rows[row[0]] = row
    return list(rows.values())


# ---------------------------------------------------------------------------------------------
# Batching


class TextBuilder:
    """Turns pairs into record batches of :data:`TEXT_SCHEMA` with sequential IDs.

    Args:
        metadata: The drawn metadata rows (sorted by patch_id), for the plan.
        seed: The run's seed.
        batch_rows: Rows per emitted batch (a batch closes at the first pair boundary after it).
    """

    def __init__(self, metadata: pa.Table, seed: int, batch_rows: int = BATCH_ROWS) -> None:
        self.plan = plan_text(metadata, seed)
        self.batch_rows = batch_rows
        self.rows_emitted = 0
        self._cols: dict[str, list[object]] = {name: [] for name in TEXT_COLUMNS}

    def wants(self, index: int) -> bool:
        """Whether the pair at this metadata row gets text."""
        return bool(self.plan.has_text[index])

    def add(self, index: int, row: dict[str, object], codes: np.ndarray) -> pa.RecordBatch | None:
        """Add the text of one pair; returns a full batch when one is ready."""
        if not self.wants(index):
            return None
        info = pair_info(row, self.plan.splits[index])
        rows = pair_rows(codes, info, patch_rng(self.plan.keys[index], TEXT_STREAM))
        cols, n = self._cols, len(rows)
        start = self.rows_emitted + len(cols["ID"])
        cols["ID"].extend(range(start, start + n))
        for name, i in (("input", 0), ("output", 1), ("type", 2), ("category", 3)):
            cols[name].extend(r[i] for r in rows)
        for name in ("s1_name", "patch_id", "split", "latitude", "longitude", "country", "season"):
            cols[name].extend([getattr(info, name)] * n)
        cols["climate_zone"].extend([info.climate_zone] * n)
        return self.take() if len(cols["ID"]) >= self.batch_rows else None

    def take(self) -> pa.RecordBatch | None:
        """The rows added since the last batch, as a batch (None when there are none)."""
        if not self._cols["ID"]:
            return None
        batch = pa.RecordBatch.from_pydict(self._cols, schema=TEXT_SCHEMA)
        self.rows_emitted += batch.num_rows
        self._cols = {name: [] for name in TEXT_COLUMNS}
        return batch


def annotations_for(
    metadata: pa.Table, seed: int, *, maps: MapFn | None = None, batch_rows: int = BATCH_ROWS
) -> Iterator[pa.RecordBatch]:
    """BigEarthNet.txt rows for metadata rows, without writing rasters.

    The rows are those :func:`~pipelines.synth.synthesize` writes for the same rows and seed: the
    reference map of a patch is a function of ``(seed, patch_id)``.

    Args:
        metadata: Metadata rows (``METADATA_SCHEMA`` columns), sorted by patch_id.
        seed: The run's seed.
        maps: Optional ``(patch_id, labels) -> codes`` function; by default the synthetic map.
        batch_rows: About how many rows each batch holds.

    Yields:
        Record batches of :data:`TEXT_SCHEMA`, IDs sequential from 0.
    """
    builder = TextBuilder(metadata, seed, batch_rows)
    index = 0
    for batch in metadata.to_batches(max_chunksize=4096):
        for row in batch.to_pylist():
            if builder.wants(index):
                labels = list(row["labels"])
                if maps is None:
                    codes = land_cover_for_key(builder.plan.keys[index], labels).codes
                else:
                    codes = maps(str(row["patch_id"]), labels)
                full = builder.add(index, row, codes)
                if full is not None:
                    yield full
            index += 1
    last = builder.take()
    if last is not None:
        yield last
