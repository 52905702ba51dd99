"""BigEarthNet v2.0 as extracted folders: one GeoTIFF per band, the official layout.

```
<root>/BigEarthNet-S2/<product>/<patch_id>/<patch_id>_<BAND>.tif
<root>/BigEarthNet-S1/<scene>/<s1_name>/<s1_name>_<VV|VH>.tif
<root>/Reference_Maps/<product>/<patch_id>/<patch_id>_reference_map.tif
<root>/metadata.parquet
```
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pyarrow as pa

from lake.config import StoreSpec
from lake.errors import BadInput, SourceError
from lake.names import MAPS_ROOT, S1_ROOT, S2_ROOT, pair_files
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
from pipelines.sources.geotiff import (
    HEADER_BYTES,
    Band,
    BandHeader,
    HeaderIncomplete,
    read_band_bytes,
    read_band_file,
    read_band_header,
)
from pipelines.sources.location import SourceFiles

T = TypeVar("T")

#: File name of the metadata parquet inside a source root.
METADATA_FILE = "metadata.parquet"
#: The official top-level folders, each with the kind of name its patch folders carry.
TOP_FOLDERS: tuple[tuple[str, str], ...] = (
    (S2_ROOT, "patch_id"),
    (S1_ROOT, "s1_name"),
    (MAPS_ROOT, "patch_id"),
)


def metadata_paths(
    root: str, metadata_path: str | None, extra: Sequence[str]
) -> tuple[Path, tuple[Path, ...]]:
    """The metadata parquet of a source (``<root>/metadata.parquet`` by default) and its extras."""
    main = Path(metadata_path) if metadata_path else Path(root) / METADATA_FILE
    return main, tuple(Path(p) for p in extra)


def or_error(read: Callable[..., T], *args: Any) -> T | BadInput:
    """``read(*args)``, or the :class:`BadInput` it raised."""
    try:
        return read(*args)
    except BadInput as exc:
        return exc


def stamp_url(files: SourceFiles, url: str) -> str:
    """:func:`~pipelines.sources.base.stamp` of a file on object storage, given by its URL."""
    base = files.url.rstrip("/") + "/"
    if url.startswith(base):
        return files.stamp(url[len(base) :])
    return SourceFiles.of(url.rsplit("/", 1)[0], files.spec).stamp(url.rsplit("/", 1)[1])


def _subdirs(path: str) -> Iterator[os.DirEntry[str]]:
    """The sub-folders of a folder (none when it does not exist)."""
    try:
        with os.scandir(path) as it:
            yield from (e for e in it if e.is_dir())
    except FileNotFoundError:
        return


@dataclass(frozen=True)
class FolderSource:
    """Extracted BigEarthNet v2.0 folders plus ``metadata.parquet``.

    Attributes:
        root: The folder that holds ``BigEarthNet-S2/``, ``BigEarthNet-S1/``, ``Reference_Maps/``,
            or its URL (``s3://bucket/prefix``) when ``store`` is given.
        metadata_path: The metadata parquet (default ``<root>/metadata.parquet``; a URL for a
            source on object storage).
        extra_metadata: More metadata parquets to include (e.g. the snow/cloud one).
        text_path: The BigEarthNet.txt parquet that comes with it, or None.
        store: For a source on object storage: the root's URL with the S3 options to read it
            (:func:`pipelines.sources.open.open_source` builds it from the lake's); None for a
            local folder.
    """

    root: str
    metadata_path: str | None = None
    extra_metadata: tuple[str, ...] = ()
    text_path: str | None = None
    store: StoreSpec | None = None
    kind: ClassVar[str] = "folders"

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", os.fspath(self.root))
        if self.metadata_path is not None:
            object.__setattr__(self, "metadata_path", os.fspath(self.metadata_path))
        object.__setattr__(self, "extra_metadata", tuple(map(os.fspath, self.extra_metadata)))

    def _metadata_files(self) -> tuple[Path, tuple[Path, ...]]:
        return metadata_paths(self.root, self.metadata_path, self.extra_metadata)

    @property
    def files(self) -> SourceFiles | None:
        """The files on object storage, or None for a local folder."""
        return None if self.store is None else SourceFiles(self.store)

    def fingerprint(self) -> str:
        """Root, metadata size/mtime, and the number of product/scene folders of each root."""
        files = self.files
        if files is not None:
            return json.dumps(
                {
                    "kind": self.kind,
                    "root": files.url,
                    "metadata": [
                        stamp_url(files, u) for u in (self.metadata_url, *self.extra_metadata)
                    ],
                    "folders": {top: len(files.subdirs(top)) for top, _ in TOP_FOLDERS},
                },
                sort_keys=True,
            )
        main, extra = self._metadata_files()
        folders = {
            top: sum(1 for _ in _subdirs(os.path.join(self.root, top))) for top, _ in TOP_FOLDERS
        }
        return json.dumps(
            {
                "kind": self.kind,
                "root": os.path.abspath(self.root),
                "metadata": [stamp(p) for p in (main, *extra)],
                "folders": folders,
            },
            sort_keys=True,
        )

    def prepare(self, progress: bool = False, runner: TaskRunner | None = None) -> None:
        """Check that the root holds the official folders (nothing to stage).

        Raises:
            SourceError: The root or one of its three folders does not exist (or, on object
                storage, cannot be read with the credentials given).
        """
        files = self.files
        if files is not None:
            files.check_reachable()
            missing = [t for t, _ in TOP_FOLDERS if not files.isdir(t)]
        else:
            missing = [t for t, _ in TOP_FOLDERS if not os.path.isdir(os.path.join(self.root, t))]
        if missing:
            raise SourceError(
                f"{self.root}: missing folder(s) {', '.join(missing)}; a folder source holds "
                f"{', '.join(t for t, _ in TOP_FOLDERS)} as extracted from the official archives"
            )

    @property
    def metadata_url(self) -> str:
        """The metadata parquet (a URL for a source on object storage)."""
        if self.metadata_path:
            return self.metadata_path
        if self.store is not None:
            return f"{self.root.rstrip('/')}/{METADATA_FILE}"
        return os.path.join(self.root, METADATA_FILE)

    def metadata(self) -> pa.Table:
        """The valid metadata rows, sorted by patch_id (invalid ones: :meth:`checked_metadata`)."""
        return self.checked_metadata().table

    def checked_metadata(self) -> CheckedMetadata:
        """The valid metadata rows and a rejection for each invalid one."""
        if self.store is not None:
            return check_metadata(self.metadata_url, self.extra_metadata, store=self.store)
        main, extra = self._metadata_files()
        return check_metadata(main, extra)

    def read_band(self, relpath: str, band: str) -> Band:
        """Decode one band file given by its path relative to the root.

        Raises:
            BadInput: The file is missing, unreadable, or not the band.
        """
        files = self.files
        if files is None:
            return read_band_file(os.path.join(self.root, relpath), band)
        try:
            data = files.read(relpath)
        except FileNotFoundError:
            raise BadInput(files.name(relpath), "missing_file", "file does not exist") from None
        return read_band_bytes(data, files.name(relpath), band)

    def read_pair(self, patch_id: str, s1_name: str) -> Pair:
        """Decode the 15 files of one pair.

        Raises:
            BadInput: ``no_files`` (named by patch id) when none of its files exist, otherwise the
                first bad file by path (``missing_file``, ``unreadable``, ``wrong_shape``...).
        """
        files = pair_files(patch_id, s1_name)
        blobs = None
        if self.store is not None:
            blobs = SourceFiles(self.store).read_many(list(files.values()))
        return self._read(patch_id, s1_name, blobs)

    def read_pairs(self, rows: Sequence[tuple[str, str]]) -> list[Pair | BadInput]:
        """Decode several pairs; on object storage their files are fetched together.

        Returns:
            Per row, the pair or the :class:`BadInput` that :meth:`read_pair` would raise.
        """
        blobs = None
        if self.store is not None:
            wanted = [rel for pid, s1 in rows for rel in pair_files(pid, s1).values()]
            blobs = SourceFiles(self.store).read_many(wanted)
        return [or_error(self._read, pid, s1, blobs) for pid, s1 in rows]

    def scan_pairs(self, rows: Sequence[tuple[str, str]]) -> list[PairHeader | BadInput]:
        """Scan several pairs; on object storage their headers are fetched together.

        Returns:
            Per row, the header or the :class:`BadInput` that :meth:`scan_pair` would raise.
        """
        if self.store is None:
            return [or_error(self.scan_pair, pid, s1) for pid, s1 in rows]
        wanted = [rel for pid, s1 in rows for rel in pair_files(pid, s1).values()]
        heads = SourceFiles(self.store).read_heads(wanted, HEADER_BYTES)
        return [or_error(self._scan, pid, s1, heads, {}) for pid, s1 in rows]

    def _read(
        self, patch_id: str, s1_name: str, blobs: Mapping[str, bytes | Exception] | None
    ) -> Pair:
        """:meth:`read_pair` with the files fetched already (object storage) or not (local)."""
        files = pair_files(patch_id, s1_name)
        if blobs is not None:
            self._check_found(patch_id, files, blobs)
        bands = {}
        for band, rel in files.items():
            try:
                if blobs is None:
                    decoded = self.read_band(rel, band)
                else:
                    decoded = read_band_bytes(blobs[rel], self._name(rel), band)  # type: ignore[arg-type]
            except BadInput as exc:
                if exc.reason == "missing_file" and self._none_exist(files.values()):
                    raise BadInput(
                        patch_id, "no_files", f"no files for this patch in {self.root}"
                    ) from None
                raise
            bands[band] = (decoded.data, decoded.epsg, decoded.transform)
        return assemble_pair(patch_id, s1_name, bands)

    def scan_pair(self, patch_id: str, s1_name: str) -> PairHeader:
        """Check the 15 files of one pair from their headers and georeference it.

        No pixel is decoded: ingest decodes each pair once, when it writes it.

        Raises:
            BadInput: As :meth:`read_pair`, for what a header shows.
        """
        heads, sizes = self._heads(pair_files(patch_id, s1_name))
        return self._scan(patch_id, s1_name, heads, sizes)

    def _scan(
        self,
        patch_id: str,
        s1_name: str,
        heads: Mapping[str, bytes | Exception],
        sizes: Mapping[str, int],
    ) -> PairHeader:
        """:meth:`scan_pair` with the files' first bytes (and local sizes) read already."""
        files = pair_files(patch_id, s1_name)
        if self.store is not None:
            self._check_found(patch_id, files, heads)
        bands: dict[str, BandHeader] = {}
        for band, rel in files.items():
            head = heads[rel]
            if isinstance(head, FileNotFoundError):
                if self._none_exist(files.values()):
                    raise BadInput(patch_id, "no_files", f"no files for this patch in {self.root}")
                raise BadInput(self._name(rel), "missing_file", "file does not exist")
            if isinstance(head, OSError):
                raise BadInput(self._name(rel), "unreadable", f"cannot be read ({head.strerror})")
            try:
                bands[band] = read_band_header(head, self._name(rel), band, sizes.get(rel))  # type: ignore[arg-type]
            except HeaderIncomplete:
                whole = self._read_whole(rel)
                bands[band] = read_band_header(whole, self._name(rel), band, len(whole))
        return assemble_header(patch_id, bands)

    def _name(self, rel: str) -> str:
        files = self.files
        return os.path.join(self.root, rel) if files is None else files.name(rel)

    def _read_whole(self, rel: str) -> bytes:
        files = self.files
        if files is not None:
            return files.read(rel)
        with open(os.path.join(self.root, rel), "rb") as f:
            return f.read()

    def _heads(self, files: dict[str, str]) -> tuple[dict[str, bytes | Exception], dict[str, int]]:
        """The first bytes of each file, and the sizes known (every one for a local folder)."""
        remote = self.files
        if remote is not None:
            return remote.read_heads(list(files.values()), HEADER_BYTES), {}
        heads: dict[str, bytes | Exception] = {}
        sizes: dict[str, int] = {}
        for rel in files.values():
            try:
                with open(os.path.join(self.root, rel), "rb") as f:
                    heads[rel] = f.read(HEADER_BYTES)
                    sizes[rel] = os.fstat(f.fileno()).st_size
            except OSError as exc:
                heads[rel] = exc
        return heads, sizes

    def _check_found(
        self, patch_id: str, files: dict[str, str], blobs: Mapping[str, bytes | Exception]
    ) -> None:
        """On object storage: ``no_files`` when none of the pair's files exist."""
        if all(isinstance(blobs[rel], FileNotFoundError) for rel in files.values()):
            raise BadInput(patch_id, "no_files", f"no files for this patch in {self.root}")
        for rel in files.values():
            if isinstance(blobs[rel], Exception):
                raise BadInput(self._name(rel), "missing_file", "file does not exist")

    def _none_exist(self, relpaths: Iterable[str]) -> bool:
        files = self.files
        if files is not None:
            return all(files.info(p) is None for p in relpaths)
        return not any(os.path.exists(os.path.join(self.root, p)) for p in relpaths)

    def orphans(self, known_patch_ids: set[str], known_s1_names: set[str]) -> list[Rejected]:
        """Patch and S1 folders whose name is in no metadata row (one rejection per folder).

        Only the product/scene and patch folder levels are listed, never the band files.
        """
        out: list[Rejected] = []
        files = self.files
        if files is not None:
            for top, name_kind in TOP_FOLDERS:
                known = known_s1_names if name_kind == "s1_name" else known_patch_ids
                for _, product_rel in files.subdirs(top):
                    for name, patch_rel in files.subdirs(product_rel):
                        if name not in known:
                            out.append(no_metadata(files.name(patch_rel), name))
            return out
        for top, name_kind in TOP_FOLDERS:
            known = known_s1_names if name_kind == "s1_name" else known_patch_ids
            for product in _subdirs(os.path.join(self.root, top)):
                for patch in _subdirs(product.path):
                    if patch.name not in known:
                        out.append(no_metadata(patch.path, patch.name))
        return out
