"""Compressed staging of ``.tar.zst`` archives in packs on any storage (a folder or S3).

Ingest reads pairs in a shuffled order, which a tar stream cannot serve, so an archive is staged
once. The LMDB stage of :mod:`pipelines.sources.tarzst` is local and uncompressed (313 KB per
pair, about 172 GB for the whole set) and only the machine that staged it can read it. A pack
stage is what Dask Gateway workers without a shared disk need: it lives on the lake's kind of
storage (``s3://bucket/staging`` or a folder), it is compressed, and a worker reads a pair with
one ranged GET per archive.

Layout below the staging root, per archive::

    <archive>/pack-000000.bin     runs, back to back; a run is one zstd frame holding the
                                  members of one patch folder: a 4-byte little-endian header
                                  length, a JSON header ``[[name, size], ...]``, the members' bytes
    <archive>/index.parquet       folder, pack, offset, length: where each folder's run is
    <archive>/stage.json          the archive's fingerprint, complete (bool), counts and bytes,
                                  who staged it (``staged_by``: host and pid), when, how long
                                  (``seconds``; ``cpu_seconds``: the staging thread's CPU time)

Packs are written whole (one PUT each, about :data:`PACK_BYTES`); ``stage.json`` is written last,
so a stage is used only when complete and of the same archive. A run compresses a folder's
members together (the twelve S2 bands of a patch are alike), with zstd level :data:`LEVEL`.
"""

from __future__ import annotations

import io
import json
import os
import socket
import struct
import tarfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import zstandard

from lake.errors import SourceError
from pipelines.sources.location import SourceFiles

#: Bytes of compressed runs per pack object.
PACK_BYTES: Final = 64 << 20
#: zstd level of the runs (level 3, zstd's default: about 300 MB/s per core here).
LEVEL: Final = 3
_HEADER: Final = struct.Struct("<I")
INDEX_SCHEMA: Final = pa.schema(
    [
        ("folder", pa.string()),
        ("pack", pa.int32()),
        ("offset", pa.int64()),
        ("length", pa.int64()),
    ]
)


@dataclass(frozen=True)
class StageReport:
    """What staging one archive did.

    Attributes:
        members: Regular files staged.
        raw_bytes: Their bytes, uncompressed.
        staged_bytes: Bytes of the packs and the index.
        complete: Whether the whole archive was read.
    """

    members: int
    raw_bytes: int
    staged_bytes: int
    complete: bool


def encode_run(members: Sequence[tuple[str, bytes]], cctx: zstandard.ZstdCompressor) -> bytes:
    """One run: the members of one folder, with their names and sizes, as one zstd frame."""
    header = json.dumps([[name, len(data)] for name, data in members]).encode()
    return cctx.compress(b"".join([_HEADER.pack(len(header)), header, *(d for _, d in members)]))


def decode_run(blob: bytes, where: str) -> dict[str, bytes]:
    """The members of a run, by name.

    Raises:
        SourceError: The run is damaged (naming ``where``: restage with ``--restart``).
    """
    try:
        raw = zstandard.ZstdDecompressor().decompress(blob)
        (n,) = _HEADER.unpack_from(raw)
        names = json.loads(raw[_HEADER.size : _HEADER.size + n])
        out, at = {}, _HEADER.size + n
        for name, size in names:
            out[str(name)] = raw[at : at + size]
            at += size
    except (zstandard.ZstdError, struct.error, ValueError) as exc:
        raise SourceError(
            f"{where}: damaged staging run ({exc}); delete the staging folder and ingest again"
        ) from None
    return out


def folder_of(key: str) -> str:
    """The folder part of a member key."""
    return key.rsplit("/", 1)[0]


@dataclass(frozen=True, eq=False)
class PackIndex:
    """Where the runs of an archive's folders are, as sorted arrays searched by bisection.

    The whole set has about 550,000 folders per archive; as Python dicts of tuples their index
    took about 430 bytes per folder in every worker. Here a run costs its folder name's UTF-8
    bytes (NumPy fixed-width ``S<n>``, ``n`` the longest name: the official names differ by a
    few characters) plus 20 bytes of integers (measured by ``benchmarks/pack_index.py``, ADR
    0010). A folder whose members were split over several runs has one row per run, in archive
    order.

    Attributes:
        names: The runs' folder names, UTF-8, sorted (stable: archive order among equals).
        pack: The pack number of each run.
        offset: Its byte offset in the pack.
        length: Its length in bytes.
    """

    names: np.ndarray
    pack: np.ndarray
    offset: np.ndarray
    length: np.ndarray

    @classmethod
    def from_table(cls, table: pa.Table, where: str = "index.parquet") -> PackIndex:
        """The index of an ``index.parquet`` table (:data:`INDEX_SCHEMA`, runs in any order).

        Raises:
            SourceError: A column is missing or a folder is null (naming ``where``: restage).
        """
        try:
            table = table.select([f.name for f in INDEX_SCHEMA]).cast(INDEX_SCHEMA)
        except (KeyError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise SourceError(
                f"{where}: not a staging index ({exc}); delete the staging folder and ingest again"
            ) from None
        if table["folder"].null_count:
            raise SourceError(
                f"{where}: damaged staging index (a null folder); delete the staging folder and "
                "ingest again"
            )
        order = pc.sort_indices(table, sort_keys=[("folder", "ascending")])  # stable
        table = table.take(order)
        return cls(
            _fixed_width(table["folder"].combine_chunks()),
            table["pack"].to_numpy(),
            table["offset"].to_numpy(),
            table["length"].to_numpy(),
        )

    def __len__(self) -> int:
        """The number of runs."""
        return len(self.names)

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays."""
        return sum(a.nbytes for a in (self.names, self.pack, self.offset, self.length))

    def runs(self, folders: Sequence[str]) -> list[tuple[str, int, int, int]]:
        """``(folder, pack, offset, length)`` of every run of ``folders``, in their order.

        A folder that was not staged has no run.
        """
        if not folders or not len(self.names):
            return []
        wanted = np.array([f.encode() for f in folders], dtype=np.bytes_)
        lo = np.searchsorted(self.names, wanted, side="left")
        hi = np.searchsorted(self.names, wanted, side="right")
        return [
            (folder, int(self.pack[i]), int(self.offset[i]), int(self.length[i]))
            for folder, a, b in zip(folders, lo.tolist(), hi.tolist(), strict=True)
            for i in range(a, b)
        ]

    def folders(self) -> list[str]:
        """Every folder with a run, once each, sorted."""
        if not len(self.names):
            return []
        first = np.ones(len(self.names), bool)
        first[1:] = self.names[1:] != self.names[:-1]
        return [name.decode() for name in self.names[first].tolist()]


def _fixed_width(names: pa.StringArray, block: int = 1 << 16) -> np.ndarray:
    """A string array as NumPy fixed-width UTF-8 bytes (``S<longest>``), copied from its buffers.

    No Python string per name is made on the way (half a million of them would cost more than
    the result), and the rows are copied ``block`` at a time to bound the scratch memory.
    """
    n = len(names)
    offsets = np.frombuffer(names.buffers()[1], np.int32)[names.offset : names.offset + n + 1]
    lengths = np.diff(offsets)
    width = max(int(lengths.max()) if n else 0, 1)
    data = names.buffers()[2]
    raw = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
    out = np.zeros((n, width), np.uint8)
    columns = np.arange(width)
    for start in range(0, n, block):
        stop = min(start + block, n)
        mask = columns < lengths[start:stop, None]
        out[start:stop][mask] = raw[offsets[start] : offsets[stop]]
    return out.view(f"S{width}").reshape(n)


# One index per (staging URL, archive, process): loaded on first use, never pickled.
_INDEXES: dict[tuple[str, str, int], PackIndex] = {}


@dataclass(frozen=True)
class PackStage:
    """The pack stage of the archives of one source.

    Attributes:
        files: The staging root (a folder or ``s3://...``).
    """

    files: SourceFiles

    def marker(self, archive: str) -> dict[str, Any] | None:
        """The archive's ``stage.json``, or None."""
        try:
            return json.loads(self.files.read(f"{archive}/stage.json"))
        except FileNotFoundError:
            return None

    def staged(self, archive: str, fingerprint: str) -> bool:
        """Whether a complete stage of this version of the archive exists."""
        m = self.marker(archive)
        return m is not None and bool(m.get("complete")) and m.get("fingerprint") == fingerprint

    def stage(
        self,
        archive: str,
        members: Iterator[tuple[str, bytes]],
        fingerprint: str,
    ) -> StageReport:
        """Stage an archive's members (``(key, bytes)`` in archive order) as packs.

        Raises:
            SourceError: The stream breaks (what was read is recorded as incomplete).
            OSError: The staging location cannot be written.
        """
        t0, cpu0 = time.perf_counter(), time.thread_time()
        fs = self.files.fs()
        cctx = zstandard.ZstdCompressor(level=LEVEL)
        index: dict[str, list[Any]] = {f.name: [] for f in INDEX_SCHEMA}
        buf = io.BytesIO()
        state = {"pack": 0, "staged": 0, "members": 0, "raw": 0}
        run: list[tuple[str, bytes]] = []
        run_folder: str | None = None

        def flush_run() -> None:
            if not run:
                return
            blob = encode_run(run, cctx)
            index["folder"].append(run_folder)
            index["pack"].append(state["pack"])
            index["offset"].append(buf.tell())
            index["length"].append(len(blob))
            buf.write(blob)
            run.clear()
            if buf.tell() >= PACK_BYTES:
                flush_pack()

        def flush_pack() -> None:
            if buf.tell():
                data = buf.getvalue()
                fs.pipe_file(self.files.path(f"{archive}/pack-{state['pack']:06d}.bin"), data)
                state["staged"] += len(data)
                state["pack"] += 1
                buf.seek(0)
                buf.truncate()

        error: str | None = None
        stream = iter(members)
        while True:
            try:  # only the stream's errors mean a damaged archive; a failed write raises
                key, data = next(stream)
            except StopIteration:
                break
            except (tarfile.TarError, zstandard.ZstdError, EOFError, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}"
                break
            folder = folder_of(key)
            if folder != run_folder:
                flush_run()
                run_folder = folder
            run.append((key.rsplit("/", 1)[-1], data))
            state["members"] += 1
            state["raw"] += len(data)
        flush_run()
        flush_pack()
        table = pa.table(index, schema=INDEX_SCHEMA)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        body = sink.getvalue().to_pybytes()
        fs.pipe_file(self.files.path(f"{archive}/index.parquet"), body)
        staged = state["staged"] + len(body)
        marker = {
            "fingerprint": fingerprint,
            "complete": error is None,
            "members": state["members"],
            "bytes": state["raw"],
            "staged_bytes": staged,
            "packs": state["pack"],
            "staged_by": {"host": socket.gethostname(), "pid": os.getpid()},
            "staged_at": time.time(),
            "seconds": round(time.perf_counter() - t0, 3),
            "cpu_seconds": round(time.thread_time() - cpu0, 3),
        }
        fs.pipe_file(self.files.path(f"{archive}/stage.json"), json.dumps(marker).encode())
        self.forget(archive)
        if error is not None:
            raise SourceError(
                f"{archive}: corrupt or truncated archive stream after {state['members']} "
                f"member(s) ({state['raw']} bytes) were read ({error}); the staged members stay "
                "readable, the rest of this archive is missing: re-upload it and ingest again"
            )
        return StageReport(state["members"], state["raw"], staged, True)

    def index(self, archive: str) -> PackIndex:
        """Where the runs of an archive's folders are (loaded once per process).

        Raises:
            SourceError: The archive was never staged here, or its index is damaged.
        """
        key = (self.files.url, archive, os.getpid())
        found = _INDEXES.get(key)
        if found is None:
            where = self.files.name(f"{archive}/index.parquet")
            try:
                body = self.files.read(f"{archive}/index.parquet")
            except FileNotFoundError:
                raise SourceError(
                    f"{self.files.name(archive)}: {archive} is not staged there; run prepare() "
                    "first (ingest does)"
                ) from None
            try:
                table = pq.read_table(pa.BufferReader(body))
            except (pa.ArrowInvalid, OSError) as exc:
                raise SourceError(
                    f"{where}: damaged staging index ({exc}); delete the staging folder and "
                    "ingest again"
                ) from None
            found = _INDEXES[key] = PackIndex.from_table(table, where)
        return found

    def forget(self, archive: str) -> None:
        """Drop this process's index of an archive (after another process staged it again)."""
        _INDEXES.pop((self.files.url, archive, os.getpid()), None)

    def read_folders(self, archive: str, folders: Sequence[str]) -> dict[str, dict[str, bytes]]:
        """The members of several folders of one archive, by folder then name.

        One ranged GET per run, all fetched together; a folder not staged maps to an empty dict.
        """
        wanted = self.index(archive).runs(folders)
        out: dict[str, dict[str, bytes]] = {f: {} for f in folders}
        if not wanted:
            return out
        paths = [self.files.path(f"{archive}/pack-{p:06d}.bin") for _, p, _, _ in wanted]
        starts = [o for _, _, o, _ in wanted]
        ends = [o + n for _, _, o, n in wanted]
        blobs = self.files.read_ranges(paths, starts, ends)
        for (folder, pack, offset, _), blob in zip(wanted, blobs, strict=True):
            where = self.files.name(f"{archive}/pack-{pack:06d}.bin") + f"@{offset}"
            if isinstance(blob, Exception):
                raise SourceError(f"{where}: cannot read the staging pack ({blob})")
            out[folder].update(decode_run(blob, where))
        return out

    def folders(self, archive: str) -> list[str]:
        """Every staged folder of an archive, sorted."""
        return self.index(archive).folders()
