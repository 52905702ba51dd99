"""``lake synth``: draw real metadata rows and write a synthetic BigEarthNet source for them.

The drawn rows keep their real patch ids, S1 names, labels, splits and countries; the rasters, the
reference maps and the BigEarthNet.txt rows are synthetic and consistent with each other (see
:mod:`pipelines.synth.landcover` and :mod:`pipelines.synth.text`). Pairs are generated and written
one at a time and text is written in row groups, so memory does not grow with N beyond the
metadata table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final, cast

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from lake.errors import ConfigError
from lake.names import parse_patch_id
from pipelines.sources.base import METADATA_SCHEMA, iter_rows, read_metadata
from pipelines.synth.landcover import land_cover_for_key, pair_bands, patch_key
from pipelines.synth.text import TEXT_SCHEMA, TextBuilder
from pipelines.synth.writers import DEFAULT_LEVEL, FORMATS, SynthPair, open_writer

#: The official metadata.parquet of the shared data folder (next to the repository).
DEFAULT_METADATA: Final = (
    Path(__file__).resolve().parents[2].parent / "shared/data/bigearthnet-v2/metadata.parquet"
)
METADATA_FILE: Final = "metadata.parquet"
TEXT_FILE: Final = "BigEarthNet.txt.parquet"


@dataclass(frozen=True)
class SynthReport:
    """What :func:`synthesize` wrote.

    Attributes:
        n_patches: Pairs written.
        n_text_rows: BigEarthNet.txt rows written (0 without text).
        bytes_written: Bytes of every file written (archives and LMDB as their files).
        seconds: Wall time.
        out: The output folder.
        fmt: ``folders``, ``tar.zst`` or ``lmdb``.
    """

    n_patches: int
    n_text_rows: int
    bytes_written: int
    seconds: float
    out: Path
    fmt: str

    @property
    def patches_per_second(self) -> float:
        """Throughput of the run."""
        return self.n_patches / self.seconds if self.seconds > 0 else float("inf")


def draw(metadata: pa.Table, n: int, seed: int) -> pa.Table:
    """``n`` rows of ``metadata`` drawn without replacement for ``seed``, kept in patch_id order.

    Raises:
        ConfigError: ``n`` is below 1 or above the number of rows.
    """
    if not 1 <= n <= metadata.num_rows:
        raise ConfigError(
            f"--patches {n}: must be between 1 and {metadata.num_rows} (the metadata's rows)"
        )
    picked = np.sort(np.random.default_rng(seed).choice(metadata.num_rows, size=n, replace=False))
    return metadata.take(pa.array(picked)).cast(METADATA_SCHEMA)


def _check_arguments(n: int, out: Path, fmt: str) -> None:
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r}: unknown format, use one of {', '.join(FORMATS)}")
    if n < 1:
        raise ConfigError(f"--patches {n}: must be at least 1")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out}: output folder exists and is not empty; choose a new folder")


def synthesize(
    n: int,
    out: str | Path,
    *,
    fmt: str = "folders",
    seed: int = 0,
    metadata_path: str | Path = DEFAULT_METADATA,
    progress: bool = False,
    text: bool = True,
    level: int = DEFAULT_LEVEL,
) -> SynthReport:
    """Write a synthetic BigEarthNet v2.0 source (plus BigEarthNet.txt) of ``n`` real pairs.

    Output, by format (all names as :func:`lake.names.pair_files` gives them):

    * ``folders``: ``BigEarthNet-S2/``, ``BigEarthNet-S1/``, ``Reference_Maps/`` GeoTIFF trees;
    * ``tar.zst``: ``BigEarthNet-S2.tar.zst``, ``BigEarthNet-S1.tar.zst``,
      ``Reference_Maps.tar.zst`` (the same member paths, with directory entries);
    * ``lmdb``: ``BigEarthNet.lmdb/`` as the reference encoder (rico-hdl) writes it;

    and always ``metadata.parquet`` (the drawn rows) and, with ``text``,
    ``BigEarthNet.txt.parquet``. The same arguments give byte-identical rasters and identical
    parquet contents.

    Args:
        n: How many pairs to draw from the metadata.
        out: The output folder (created; must not exist or be empty).
        fmt: ``folders``, ``tar.zst`` or ``lmdb``.
        seed: Seed of the draw, the maps, the pixels and the text.
        metadata_path: The official ``metadata.parquet`` to draw from.
        progress: Show a tqdm progress bar.
        text: Also write ``BigEarthNet.txt.parquet``.
        level: zstd level of the ``tar.zst`` archives.

    Returns:
        A :class:`SynthReport`.

    Raises:
        ConfigError: (a ``ValueError``) ``n`` out of range, unknown format, ``out`` not empty.
        SourceError: The metadata parquet is missing or invalid.
    """
    started = time.perf_counter()
    out = Path(out)
    _check_arguments(n, out, fmt)
    drawn = draw(read_metadata(metadata_path), n, seed)
    out.mkdir(parents=True, exist_ok=True)
    builder = TextBuilder(drawn, seed) if text else None
    text_writer = (
        pq.ParquetWriter(out / TEXT_FILE, TEXT_SCHEMA, compression="zstd") if text else None
    )
    writer = open_writer(fmt, out, expected_pairs=n, level=level)
    try:
        with tqdm(total=n, unit="pair", desc=f"synth {fmt}", disable=not progress) as bar:
            for index, row in enumerate(iter_rows(drawn)):
                patch_id, labels = str(row["patch_id"]), cast(list[str], row["labels"])
                key = builder.plan.keys[index] if builder else patch_key(seed, patch_id)
                cover = land_cover_for_key(key, labels)
                month = parse_patch_id(patch_id).datetime.month
                bands = pair_bands(key, cover, month)
                writer.write(SynthPair(patch_id, str(row["s1_name"]), bands))
                if builder is not None and text_writer is not None:
                    full = builder.add(index, row, cover.codes)
                    if full is not None:
                        text_writer.write_batch(full)
                bar.update()
    finally:
        written = writer.close()
        if builder is not None and text_writer is not None:
            last = builder.take()
            if last is not None:
                text_writer.write_batch(last)
            text_writer.close()
    pq.write_table(drawn, out / METADATA_FILE)
    written += (out / METADATA_FILE).stat().st_size
    if text:
        written += (out / TEXT_FILE).stat().st_size
    return SynthReport(
        n_patches=n,
        n_text_rows=builder.rows_emitted if builder else 0,
        bytes_written=written,
        seconds=time.perf_counter() - started,
        out=out,
        fmt=fmt,
    )
