"""BigEarthNet v2.0 as the official ``.tar.zst`` archives, streamed and staged for random access.

The archives are read as streams (zstd decompression feeding ``tarfile`` in ``r|`` mode) and never
extracted to disk as files. Ingest reads pairs in a shuffled order, which a stream cannot serve,
so :meth:`TarZstSource.prepare` copies the members' raw bytes, untouched, into one local LMDB keyed
by member path. Each archive gets a marker when it is staged completely, so a rerun after a crash
restages only unfinished archives and a finished stage is reused until the archive changes.

python-zstandard's ``stream_reader`` ends silently on a truncated file, and ``tarfile`` ends
silently when a stream stops at a member boundary: :class:`ZstdStream` therefore checks that the
last zstd frame is complete and raises otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import tarfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, ClassVar, TypedDict

import lmdb
import pyarrow as pa
import zstandard
from tqdm import tqdm

from lake.config import StoreSpec, store_spec
from lake.errors import BadInput, SourceError
from lake.names import MAPS_ROOT, S1_ROOT, S2_ROOT, pair_files, split_member
from pipelines.sources.base import (
    CheckedMetadata,
    Pair,
    PairHeader,
    Rejected,
    TaskRunner,
    assemble_header,
    assemble_pair,
    check_metadata,
    no_metadata,
    stamp,
)
from pipelines.sources.folders import METADATA_FILE, metadata_paths, or_error, stamp_url
from pipelines.sources.geotiff import Band, read_band_bytes, read_band_header
from pipelines.sources.lmdb_source import forget_reader, iter_keys, reader
from pipelines.sources.location import SourceFiles, is_url
from pipelines.sources.packs import PackStage, folder_of

#: The archive of each top-level folder.
ARCHIVES: dict[str, str] = {top: f"{top}.tar.zst" for top in (S2_ROOT, S1_ROOT, MAPS_ROOT)}
#: Default staging folder, inside the source root.
STAGING_DIRNAME = ".lake-staging"
#: Disk the staging LMDB takes per pair, measured by ``benchmarks/staging_disk.py``: the members'
#: own bytes (S2 164.6 KB, S1 116.0 KB, map about 1.2 KB, as in the real sample) in LMDB's 4 KiB
#: overflow pages (S2 182.9 KB, S1 122.9 KB, map 1.3 KB) plus its tree: 313.0 KB in data.mdb.
STAGING_BYTES_PER_PAIR = 313_000
#: The official archives hold 549,488 pairs (clean plus snow/cloud): about 172 GB staged.
FULL_SET_PAIRS = 549_488
_MARKER_PREFIX = b"\x00staged:"  # sorts before every member path
_COMMIT_BYTES = 64 << 20
_MAP_SIZE = 1 << 40  # address space only: the file grows with what is written
_CHUNK = 1 << 20


class ZstdStream:
    """A readable stream of a zstd file that raises on truncation instead of ending quietly.

    Multi-frame files (e.g. from ``pzstd``) are read frame after frame.
    """

    def __init__(self, raw: BinaryIO, chunk_size: int = _CHUNK) -> None:
        self._raw = raw
        self._chunk_size = chunk_size
        self._dctx = zstandard.ZstdDecompressor()
        self._obj = self._dctx.decompressobj()
        self._in_frame = False
        self._done = False
        self._data = b""
        self._offset = 0

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` decompressed bytes (all the rest when negative); ``b""`` at the end.

        Raises:
            EOFError: The file ends inside a zstd frame (truncated).
            zstandard.ZstdError: The compressed data is corrupt.
        """
        if size < 0:
            return b"".join(iter(lambda: self.read(self._chunk_size), b""))
        parts = []
        while size > 0 and (self._offset < len(self._data) or self._fill()):
            piece = self._data[self._offset : self._offset + size]
            self._offset += len(piece)
            size -= len(piece)
            parts.append(piece)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _fill(self) -> bool:
        while not self._done:
            chunk = self._raw.read(self._chunk_size)
            if not chunk:
                if self._in_frame:
                    raise EOFError("the zstd stream ends inside a frame: the file is truncated")
                self._done = True
                break
            out = self._decompress(chunk)
            if out:
                self._data, self._offset = out, 0
                return True
        return False

    def _decompress(self, data: bytes) -> bytes:
        outs = []
        while data:
            outs.append(self._obj.decompress(data))
            self._in_frame = not self._obj.eof
            if self._in_frame:
                break
            data = self._obj.unused_data
            self._obj = self._dctx.decompressobj()
        return b"".join(outs)


def _stream_members(raw: BinaryIO, top: str) -> Iterator[tuple[str, bytes]]:
    """``(staging key, bytes)`` of every regular file of a ``.tar.zst`` stream, in order."""
    with _open_stream(raw) as tar:
        for info in tar:
            if info.isfile():
                yield _member_key(info.name, top), tar.extractfile(info).read()  # type: ignore[union-attr]


def _open_stream(raw: BinaryIO) -> tarfile.TarFile:
    """A tar stream (``r|``: forward only, nothing extracted) over a zstd-compressed file."""
    return tarfile.open(fileobj=ZstdStream(raw), mode="r|")  # type: ignore[call-overload]


def staging_need(pairs: int = FULL_SET_PAIRS) -> str:
    """How much disk staging needs, as a person reads it (e.g. for an error message)."""
    total = pairs * STAGING_BYTES_PER_PAIR
    return (
        f"about {STAGING_BYTES_PER_PAIR // 1000} KB per pair "
        f"(about {total / 1e9:.0f} GB for {pairs:,} pairs, the whole official set)"
        if pairs == FULL_SET_PAIRS
        else f"about {total / 1e9:.1f} GB ({pairs:,} pairs)"
    )


def _member_key(name: str, top: str) -> str:
    """The staging key of an archive member: its path, always starting with the top folder."""
    name = name.lstrip("/")
    while name.startswith("./"):
        name = name[2:]
    return name if name.startswith(top + "/") else f"{top}/{name}"


def _marker_key(archive: str) -> bytes:
    return _MARKER_PREFIX + archive.encode()


def _read_marker(txn: lmdb.Transaction, archive: str) -> dict[str, object] | None:
    raw = txn.get(_marker_key(archive))
    return None if raw is None else json.loads(bytes(raw))


def _delete_prefix(txn: lmdb.Transaction, prefix: bytes) -> int:
    """Delete every key that starts with ``prefix``; return how many."""
    n = 0
    with txn.cursor() as cursor:
        if not cursor.set_range(prefix):
            return 0
        while bytes(cursor.key()).startswith(prefix):
            if not cursor.delete():
                break
            n += 1
    return n


def _counted(
    raw: BinaryIO, total: int | None, desc: str, progress: bool
) -> contextlib.AbstractContextManager[BinaryIO]:
    """``raw`` with a tqdm bar over its reads when ``progress`` (no bar, no tqdm thread, else)."""
    if not progress:
        return contextlib.nullcontext(raw)
    return tqdm.wrapattr(
        raw, "read", total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024
    )


def iter_members(archive: Path, progress: bool = False) -> Iterator[tuple[str, bytes]]:
    """``(path, bytes)`` of every regular file of a ``.tar.zst``, streamed in archive order.

    Raises:
        EOFError, tarfile.TarError, zstandard.ZstdError: The stream is truncated or corrupt.
    """
    with (
        open(archive, "rb") as raw,
        _counted(raw, os.path.getsize(archive), archive.name, progress) as counted,
        _open_stream(counted) as tar,
    ):
        for info in tar:
            if info.isfile():
                yield info.name, tar.extractfile(info).read()  # type: ignore[union-attr]


def _keep_or_wipe(env: lmdb.Environment, txn: lmdb.Transaction, top: str, exc: Exception) -> str:
    """After a failed stream: keep what was read, unless a checksum says it may be damaged."""
    if "checksum" not in str(exc):
        txn.commit()
        return "the staged members stay readable, the rest of this archive is missing"
    txn.abort()  # the damage could be anywhere in the frame
    with env.begin(write=True) as wipe:
        _delete_prefix(wipe, f"{top}/".encode())
    return "nothing of it was kept, since the damage cannot be located"


def stage_archive(env: lmdb.Environment, archive: Path, top: str, progress: bool = False) -> int:
    """Stream one archive into the staging LMDB; mark it complete at the end.

    Members are committed every 64 MB, so what was staged before a truncation or a corrupt block
    stays readable; a zstd checksum mismatch (found only at the end of a frame) wipes the archive's
    members, since any of them may be damaged. A stage of another version of the archive (other
    size/mtime) is wiped first.

    Args:
        env: The staging LMDB, open for writing.
        archive: The ``.tar.zst`` file.
        top: Its top-level folder (``BigEarthNet-S2``...), the prefix of its keys.
        progress: Show a tqdm bar over the compressed bytes.

    Returns:
        The number of members staged.

    Raises:
        SourceError: The archive is corrupt or truncated (naming how far staging got).
    """
    fingerprint = stamp(archive)
    with env.begin(write=True) as txn:
        old = _read_marker(txn, archive.name)
        if old is not None and old.get("fingerprint") != fingerprint:
            _delete_prefix(txn, f"{top}/".encode())
        marker = {"fingerprint": fingerprint, "complete": False, "members": 0, "bytes": 0}
        txn.put(_marker_key(archive.name), json.dumps(marker).encode())
    members = nbytes = pending = 0
    txn = env.begin(write=True)
    try:
        for name, data in iter_members(archive, progress):
            txn.put(_member_key(name, top).encode(), data)
            members, nbytes, pending = members + 1, nbytes + len(data), pending + len(data)
            if pending >= _COMMIT_BYTES:
                txn.commit()
                txn, pending = env.begin(write=True), 0
        marker.update(complete=True, members=members, bytes=nbytes)
        txn.put(_marker_key(archive.name), json.dumps(marker).encode())
        txn.commit()
    except (tarfile.TarError, zstandard.ZstdError, EOFError, OSError) as exc:
        kept = _keep_or_wipe(env, txn, top, exc)
        raise SourceError(
            f"{archive}: corrupt or truncated archive stream after {members} member(s) "
            f"({nbytes} bytes) were read ({type(exc).__name__}: {exc}); {kept}: "
            "re-download it and run prepare again"
        ) from None
    return members


class StageOutcome(TypedDict):
    """What one staging task did (:func:`stage_task`).

    Attributes:
        archive: The archive's file name (``BigEarthNet-S2.tar.zst``...).
        url: The archive's URL (or path).
        error: Why staging failed, naming the URL; None when the stage is complete.
        members: Members staged.
        seconds: Time the task took.
        pid: The process that staged it.
    """

    archive: str
    url: str
    error: str | None
    members: int
    seconds: float
    pid: int


def stage_task(top: str, source: TarZstSource, bars_in: int = 0) -> StageOutcome:
    """Stream one archive of ``source`` into its pack stage: a cluster task, one per archive.

    The task reads the archive from its URL and writes the packs, index and ``stage.json`` to
    the staging location itself; nothing passes through the driver. A failure is returned, not
    raised, so the other archives' tasks finish and every failure is reported together.

    Args:
        top: The archive's top-level folder (``BigEarthNet-S2``...).
        source: The source (archives and staging location).
        bars_in: The process that shows a bar over the archive's bytes (0: none).
    """
    t0 = time.perf_counter()
    files, stage, name = source.archive_files(), source.packs(), ARCHIVES[top]
    url = files.name(name)
    members, error = 0, None
    try:
        fingerprint = files.stamp(name)
        size = (files.info(name) or {}).get("size")
        with files.open(name) as raw, _counted(raw, size, name, bars_in == os.getpid()) as counted:
            members = stage.stage(name, _stream_members(counted, top), fingerprint).members
    except SourceError as exc:
        error = str(exc).replace(name, url, 1) if str(exc).startswith(name) else str(exc)
    except OSError as exc:
        error = (
            f"{url}: cannot stage it into {stage.files.url} ({type(exc).__name__}: {exc}); "
            "check that the archive is readable and the staging location writable (--staging-dir)"
        )
    seconds = round(time.perf_counter() - t0, 3)
    return StageOutcome(
        archive=name, url=url, error=error, members=members, seconds=seconds, pid=os.getpid()
    )


@dataclass(frozen=True)
class TarZstSource:
    """The official ``.tar.zst`` archives plus ``metadata.parquet``, staged into a local LMDB.

    With ``store`` (archives on object storage) or a URL as ``staging_dir``, the archives are
    streamed from wherever they are and staged as compressed packs
    (:mod:`pipelines.sources.packs`) at the staging location, which every worker of a cluster
    reads: no shared disk is needed.

    Attributes:
        root: The folder holding ``BigEarthNet-S2.tar.zst``, ``BigEarthNet-S1.tar.zst``,
            ``Reference_Maps.tar.zst`` and ``metadata.parquet``; its URL when ``store`` is given.
        staging_dir: Where the staging LMDB goes (default ``<root>/.lake-staging``; give a local
            cache folder when the root is read-only or slow: ``lake ingest --staging-dir``). It
            needs about 313 KB per pair, about 172 GB for the whole set (:func:`staging_need`).
        metadata_path: The metadata parquet (default ``<root>/metadata.parquet``).
        extra_metadata: More metadata parquets to include (e.g. the snow/cloud one).
        text_path: The BigEarthNet.txt parquet that comes with it, or None.
        store: For archives on object storage: the root's URL with the S3 options to read it
            (the staging location, when a URL, is read with the same options); None when local.
        staging_store: For local archives staged at a URL: the S3 options to write it with.
    """

    root: str
    staging_dir: str | None = None
    metadata_path: str | None = None
    extra_metadata: tuple[str, ...] = ()
    text_path: str | None = None
    store: StoreSpec | None = None
    staging_store: StoreSpec | None = None
    kind: ClassVar[str] = "tar.zst"

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", os.fspath(self.root))
        for name in ("staging_dir", "metadata_path"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, os.fspath(value))
        object.__setattr__(self, "extra_metadata", tuple(map(os.fspath, self.extra_metadata)))

    @property
    def staging(self) -> str:
        """The staging folder (or URL)."""
        if self.staging_dir:
            return self.staging_dir
        if self.store is not None:
            return f"{self.root.rstrip('/')}/{STAGING_DIRNAME}"
        return os.path.join(self.root, STAGING_DIRNAME)

    @property
    def uses_packs(self) -> bool:
        """Whether the archives are staged as compressed packs (archives or staging not local)."""
        return self.store is not None or is_url(self.staging)

    def packs(self) -> PackStage:
        """The pack stage (see :mod:`pipelines.sources.packs`)."""
        if is_url(self.staging):
            return PackStage(SourceFiles.of(self.staging, self.store or self.staging_store))
        return PackStage(SourceFiles(store_spec(self.staging, environ={})))

    def archive_files(self) -> SourceFiles:
        """The archives' location (a folder or a URL), as :class:`SourceFiles`."""
        return SourceFiles(self.store or store_spec(self.root, environ={}))

    def _metadata_urls(self) -> list[str]:
        main = self.metadata_path or f"{self.root.rstrip('/')}/{METADATA_FILE}"
        return [main, *self.extra_metadata]

    def archive(self, top: str) -> Path:
        """The archive file of a top-level folder."""
        return Path(self.root) / ARCHIVES[top]

    def fingerprint(self) -> str:
        """Root, size/mtime of the three archives and of the metadata parquets."""
        if self.store is not None:
            files = self.archive_files()
            return json.dumps(
                {
                    "kind": self.kind,
                    "root": files.url,
                    "archives": {a: files.stamp(a) for a in ARCHIVES.values()},
                    "metadata": [stamp_url(files, u) for u in self._metadata_urls()],
                },
                sort_keys=True,
            )
        main, extra = metadata_paths(self.root, self.metadata_path, self.extra_metadata)
        return json.dumps(
            {
                "kind": self.kind,
                "root": os.path.abspath(self.root),
                "archives": {a: stamp(self.archive(t)) for t, a in ARCHIVES.items()},
                "metadata": [stamp(p) for p in (main, *extra)],
            },
            sort_keys=True,
        )

    def staged(self) -> dict[str, bool]:
        """For each archive, whether a complete stage of its current version exists."""
        if self.uses_packs:
            stage, files = self.packs(), self.archive_files()
            return {a: stage.staged(a, files.stamp(a)) for a in ARCHIVES.values()}
        if not os.path.exists(os.path.join(self.staging, "data.mdb")):
            return dict.fromkeys(ARCHIVES.values(), False)
        with reader(self.staging).begin() as txn:
            return {
                a: (m := _read_marker(txn, a)) is not None
                and bool(m["complete"])
                and m["fingerprint"] == stamp(self.archive(t))
                for t, a in ARCHIVES.items()
            }

    def prepare(self, progress: bool = False, runner: TaskRunner | None = None) -> None:
        """Stage every archive that has no complete stage of its current version.

        All archives are attempted even when one fails; the errors are raised together at the end.
        Archives on object storage staged as packs go to ``runner`` when one is given: one task
        per archive to stage (:func:`stage_task`), so the three stage at once on different
        workers, each reading its archive from its URL and writing its packs itself. Local
        archives stage in this process, the one sure to see the files: into the LMDB (local
        staging) or as packs (staging at a URL).

        Args:
            progress: Bars over the archives' bytes when staging in this process (one bar over
                the archives when they stage on a cluster).
            runner: The cluster to stage on (the ingest's); None: in this process.

        Raises:
            SourceError: An archive is missing, corrupt or truncated (every such archive named
                by its URL or path).
        """
        if self.uses_packs:
            self._prepare_packs(progress, runner)
            return
        missing = [str(self.archive(t)) for t in ARCHIVES if not self.archive(t).is_file()]
        if missing:
            raise SourceError(f"missing archive(s) {', '.join(missing)}")
        todo = [t for t, done in zip(ARCHIVES, self.staged().values(), strict=True) if not done]
        if not todo:
            return
        forget_reader(self.staging)  # never hold a reader and a writer on one LMDB
        errors = []
        try:
            os.makedirs(self.staging, exist_ok=True)
            env = lmdb.open(self.staging, map_size=_MAP_SIZE, max_dbs=0, readahead=False)
            try:
                for top in todo:
                    try:
                        stage_archive(env, self.archive(top), top, progress)
                    except SourceError as exc:
                        errors.append(str(exc))
            finally:
                env.close()
        except (OSError, lmdb.Error) as exc:
            raise SourceError(
                f"{self.staging}: cannot stage the archives there ({type(exc).__name__}: {exc}); "
                f"give a writable local folder with room for {staging_need()} as "
                "--staging-dir (staging_dir= in Python)"
            ) from None
        if errors:
            raise SourceError("; ".join(errors))

    def _prepare_packs(self, progress: bool, runner: TaskRunner | None) -> list[StageOutcome]:
        """Stage every archive not staged yet into the pack stage; return what each task did.

        Raises:
            SourceError: An archive is missing, corrupt or truncated, or the source cannot be read.
        """
        files = self.archive_files()
        if self.store is not None:
            files.check_reachable()
        missing = [files.name(a) for a in ARCHIVES.values() if files.info(a) is None]
        if missing:
            raise SourceError(f"missing archive(s) {', '.join(missing)}")
        stage = self.packs()
        todo = [t for t, a in ARCHIVES.items() if not stage.staged(a, files.stamp(a))]
        if not todo:
            return []
        bars_in = os.getpid() if progress else 0  # byte bars only where the driver's terminal is
        if runner is None or self.store is None:
            outcomes = [stage_task(top, self, bars_in) for top in todo]
        else:
            tasks = runner.map(stage_task, todo, self, bars_in, desc="stage", progress=progress)
            outcomes = sorted(tasks, key=lambda o: list(ARCHIVES.values()).index(o["archive"]))
        for o in outcomes:
            stage.forget(o["archive"])  # this process may hold the index of an older stage
        errors = [o["error"] for o in outcomes if o["error"] is not None]
        if errors:
            raise SourceError("; ".join(errors))
        return outcomes

    def metadata(self) -> pa.Table:
        """The valid metadata rows, sorted by patch_id (invalid ones: :meth:`checked_metadata`)."""
        return self.checked_metadata().table

    def checked_metadata(self) -> CheckedMetadata:
        """The valid metadata rows and a rejection for each invalid one."""
        if self.store is not None:
            urls = self._metadata_urls()
            return check_metadata(urls[0], urls[1:], store=self.store)
        main, extra = metadata_paths(self.root, self.metadata_path, self.extra_metadata)
        return check_metadata(main, extra)

    def member_name(self, relpath: str) -> str:
        """How errors name a member: ``<archive>:<member path>``."""
        return f"{ARCHIVES[relpath.split('/', 1)[0]]}:{relpath}"

    def _staged_reader(self) -> lmdb.Environment:
        if not os.path.exists(os.path.join(self.staging, "data.mdb")):
            raise SourceError(
                f"{self.root}: the archives are not staged in {self.staging}; run prepare() first"
            )
        return reader(self.staging)

    def _get(self, relpath: str, txn: lmdb.Transaction) -> bytes:
        data = txn.get(relpath.encode())
        if data is None:
            archive = ARCHIVES[relpath.split("/", 1)[0]]
            marker = _read_marker(txn, archive)
            why = "not in the archive"
            if marker is None or not marker["complete"]:
                why += f" (staging of {archive} did not finish: it is corrupt or truncated)"
            raise BadInput(self.member_name(relpath), "missing_file", why)
        return bytes(data)

    def read_band(self, relpath: str, band: str) -> Band:
        """Decode one staged member given by its path (``BigEarthNet-S2/...``).

        Raises:
            BadInput: The member is missing, unreadable, or not the band.
            SourceError: The archives are not staged.
        """
        with self._staged_reader().begin() as txn:
            data = self._get(relpath, txn)
        return read_band_bytes(data, self.member_name(relpath), band)

    def read_pair(self, patch_id: str, s1_name: str) -> Pair:
        """Decode the 15 staged members of one pair.

        Raises:
            BadInput: ``no_files`` (named by patch id) when none of its members were staged,
                otherwise the first bad member as ``<archive>:<member>``.
            SourceError: The archives are not staged.
        """
        return self._read(patch_id, s1_name, None)

    def _read(self, patch_id: str, s1_name: str, found: dict[str, bytes] | None) -> Pair:
        files = pair_files(patch_id, s1_name)
        blobs = self._members(patch_id, files, found)
        bands = {}
        for band, data in blobs.items():
            decoded = read_band_bytes(data, self.member_name(files[band]), band)
            bands[band] = (decoded.data, decoded.epsg, decoded.transform)
        return assemble_pair(patch_id, s1_name, bands)

    def scan_pair(self, patch_id: str, s1_name: str) -> PairHeader:
        """Check the 15 staged members of one pair from their headers; decode no pixel.

        Raises:
            BadInput: As :meth:`read_pair`, for what a header shows.
            SourceError: The archives are not staged.
        """
        return self._scan(patch_id, s1_name, None)

    def _scan(self, patch_id: str, s1_name: str, found: dict[str, bytes] | None) -> PairHeader:
        files = pair_files(patch_id, s1_name)
        blobs = self._members(patch_id, files, found)
        bands = {
            band: read_band_header(data, self.member_name(files[band]), band, len(data))
            for band, data in blobs.items()
        }
        return assemble_header(patch_id, bands)

    def _members(
        self, patch_id: str, files: dict[str, str], found: dict[str, bytes] | None = None
    ) -> dict[str, bytes]:
        """The staged bytes of a pair's members, by band.

        Raises:
            BadInput: ``no_files`` when none was staged, else ``missing_file`` for the first.
        """
        if self.uses_packs:
            return self._pack_members(patch_id, files, found)
        with self._staged_reader().begin() as txn:
            raw = {band: txn.get(rel.encode()) for band, rel in files.items()}
            if all(data is None for data in raw.values()):
                raise BadInput(patch_id, "no_files", f"no member for this patch in {self.root}")
            return {b: self._get(files[b], txn) if d is None else d for b, d in raw.items()}

    def _fetch_packed(self, relpaths: Iterable[str]) -> dict[str, bytes]:
        """Staged members by path, their runs fetched together (one ranged GET per run)."""
        stage = self.packs()
        by_archive: dict[str, set[str]] = {}
        for rel in relpaths:
            by_archive.setdefault(ARCHIVES[rel.split("/", 1)[0]], set()).add(folder_of(rel))
        found: dict[str, bytes] = {}
        for archive, folders in by_archive.items():
            for folder, members in stage.read_folders(archive, sorted(folders)).items():
                found.update({f"{folder}/{name}": data for name, data in members.items()})
        return found

    def read_pairs(self, rows: Sequence[tuple[str, str]]) -> list[Pair | BadInput]:
        """Decode several pairs; from a pack stage their runs are fetched together."""
        found = self._prefetch(rows)
        return [or_error(self._read, pid, s1, found) for pid, s1 in rows]

    def scan_pairs(self, rows: Sequence[tuple[str, str]]) -> list[PairHeader | BadInput]:
        """Scan several pairs; from a pack stage their runs are fetched together."""
        found = self._prefetch(rows)
        return [or_error(self._scan, pid, s1, found) for pid, s1 in rows]

    def _prefetch(self, rows: Sequence[tuple[str, str]]) -> dict[str, bytes] | None:
        if not self.uses_packs:
            return None
        return self._fetch_packed(rel for pid, s1 in rows for rel in pair_files(pid, s1).values())

    def _pack_members(
        self, patch_id: str, files: dict[str, str], found: dict[str, bytes] | None = None
    ) -> dict[str, bytes]:
        """A pair's members from the pack stage (one ranged GET per archive), by band.

        Raises:
            BadInput: ``no_files`` when none was staged, else ``missing_file`` for the first.
        """
        stage = self.packs()
        if found is None:
            found = self._fetch_packed(files.values())
        if not any(rel in found for rel in files.values()):
            raise BadInput(patch_id, "no_files", f"no member for this patch in {self.root}")
        out = {}
        for band, rel in files.items():
            if rel not in found:
                archive = ARCHIVES[rel.split("/", 1)[0]]
                marker = stage.marker(archive) or {}
                why = "not in the archive"
                if not marker.get("complete"):
                    why += f" (staging of {archive} did not finish: it is corrupt or truncated)"
                raise BadInput(self.member_name(rel), "missing_file", why)
            out[band] = found[rel]
        return out

    def orphans(self, known_patch_ids: set[str], known_s1_names: set[str]) -> list[Rejected]:
        """Staged member folders whose name is in no metadata row (one rejection per folder).

        Raises:
            SourceError: The archives are not staged.
        """
        out: list[Rejected] = []
        seen: set[str] = set()
        if self.uses_packs:
            stage = self.packs()
            for top, archive in ARCHIVES.items():
                for folder in stage.folders(archive):
                    steps = folder.split("/")
                    if len(steps) != 3 or steps[0] != top or folder in seen:
                        continue
                    seen.add(folder)
                    name = steps[2]
                    if name not in (known_s1_names if top == S1_ROOT else known_patch_ids):
                        out.append(no_metadata(self.member_name(folder), name))
            return out
        for key in iter_keys(self._staged_reader()):
            parts = split_member(key)
            folder = key.rsplit("/", 1)[0]
            if parts is None or folder in seen:
                continue
            seen.add(folder)
            top, name, _ = parts
            if name not in (known_s1_names if top == S1_ROOT else known_patch_ids):
                out.append(no_metadata(self.member_name(folder), name))
        return out
