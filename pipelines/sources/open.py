"""Open a BigEarthNet source from a path: folders, ``.tar.zst`` archives or a rico-hdl LMDB.

The kind is detected from the folder's content:

* ``folders``: ``BigEarthNet-S2/``, ``BigEarthNet-S1/`` or ``Reference_Maps/`` folders;
* ``tar.zst``: ``BigEarthNet-S2.tar.zst``, ``BigEarthNet-S1.tar.zst`` or ``Reference_Maps.tar.zst``;
* ``lmdb``: a ``BigEarthNet.lmdb/`` folder, or the path itself holds ``data.mdb``.

``metadata.parquet`` and ``BigEarthNet.txt.parquet`` are looked up in the same folder (for an LMDB
folder given directly, also in its parent).

A source may also be a URL (``s3://bucket/prefix``), read with the lake's S3 options: folders or
``.tar.zst`` archives (the archives are streamed from the bucket and staged as compressed packs,
:mod:`pipelines.sources.packs`), so that the workers of a cluster need no shared disk. An LMDB
must be local (LMDB maps a local file).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from lake.config import StoreSpec
from lake.errors import SourceError
from lake.names import MAPS_ROOT, S1_ROOT, S2_ROOT
from pipelines.sources.base import Source
from pipelines.sources.folders import METADATA_FILE, FolderSource
from pipelines.sources.lmdb_source import LmdbSource
from pipelines.sources.location import SourceFiles, is_url
from pipelines.sources.tarzst import ARCHIVES, TarZstSource

KINDS = ("folders", "tar.zst", "lmdb")
#: The LMDB folder name looked for inside a source root.
LMDB_DIRNAME = "BigEarthNet.lmdb"
#: The BigEarthNet.txt parquet looked for inside a source root.
TEXT_FILE = "BigEarthNet.txt.parquet"


def detect_kinds(root: Path) -> list[str]:
    """Every source kind whose files are present in ``root``, in ``KINDS`` order."""
    found = []
    if any((root / top).is_dir() for top in (S2_ROOT, S1_ROOT, MAPS_ROOT)):
        found.append("folders")
    if any((root / name).is_file() for name in ARCHIVES.values()):
        found.append("tar.zst")
    if (root / "data.mdb").is_file() or (root / LMDB_DIRNAME / "data.mdb").is_file():
        found.append("lmdb")
    return found


def _lmdb_path(root: Path) -> Path:
    return root if (root / "data.mdb").is_file() else root / LMDB_DIRNAME


def _find(name: str, folders: Sequence[Path]) -> Path | None:
    return next((f / name for f in folders if (f / name).is_file()), None)


def _pick_kind(root: Path, kind: str | None) -> str:
    if kind is not None and kind not in KINDS:
        raise SourceError(f"unknown source kind {kind!r}; use one of {', '.join(KINDS)}")
    found = detect_kinds(root)
    if kind is not None:
        if kind not in found:
            others = ", ".join(found) or "none"
            raise SourceError(f"{root}: no {kind} source here (found: {others})")
        return kind
    if not found:
        raise SourceError(
            f"{root}: not a BigEarthNet source: expected the folders {S2_ROOT}/, {S1_ROOT}/, "
            f"{MAPS_ROOT}/, or the archives {', '.join(ARCHIVES.values())}, or an LMDB "
            f"({LMDB_DIRNAME}/ or a folder with data.mdb)"
        )
    if len(found) > 1:
        raise SourceError(
            f"{root}: holds more than one kind of source ({', '.join(found)}); "
            "choose one with kind=... (or --kind)"
        )
    return found[0]


def open_source(
    path: str | os.PathLike[str],
    kind: str | None = None,
    *,
    metadata_path: str | os.PathLike[str] | None = None,
    extra_metadata: Sequence[str | os.PathLike[str]] = (),
    text_path: str | os.PathLike[str] | None = None,
    staging_dir: str | os.PathLike[str] | None = None,
    store: StoreSpec | None = None,
) -> Source:
    """Describe the BigEarthNet source at ``path`` (nothing is staged yet).

    Args:
        path: The source folder (or an LMDB folder), or a URL (``s3://bucket/prefix``) of
            folders or archives on object storage.
        kind: ``folders``, ``tar.zst`` or ``lmdb``; detected from the content when None.
        metadata_path: The metadata parquet (default: ``metadata.parquet`` next to the data).
        extra_metadata: More metadata parquets (e.g. the snow/cloud one).
        text_path: The BigEarthNet.txt parquet (default: ``BigEarthNet.txt.parquet`` next to the
            data, when present).
        staging_dir: For ``tar.zst``: where to stage the archives (default
            ``<path>/.lake-staging``); a URL stages compressed packs there, which every worker
            of a cluster reads.
        store: The S3 options (endpoint, credentials) to read a URL with, as a lake spec (the
            lake's, typically); None: from the environment.

    Returns:
        A picklable :class:`~pipelines.sources.base.Source`.

    Raises:
        SourceError: The path does not exist, holds no source or several kinds, or has no
            metadata parquet; for a URL also: the storage refuses the credentials.
    """
    if is_url(path):
        return _open_remote(
            os.fspath(path), kind, metadata_path, extra_metadata, text_path, staging_dir, store
        )
    # Absolute paths: the source travels to workers that may run in another folder.
    root = Path(path).absolute()
    if not root.is_dir():
        raise SourceError(f"{root}: source folder does not exist")
    chosen = _pick_kind(root, kind)
    folders = [root] if chosen != "lmdb" or root != _lmdb_path(root) else [root, root.parent]
    metadata = Path(metadata_path).absolute() if metadata_path else _find(METADATA_FILE, folders)
    if metadata is None or not metadata.is_file():
        raise SourceError(
            f"{metadata or root / METADATA_FILE}: metadata parquet does not exist; "
            "pass metadata_path= (or --metadata)"
        )
    found_text = Path(text_path).absolute() if text_path else _find(TEXT_FILE, folders)
    text = None if found_text is None else str(found_text)
    extra = tuple(os.fspath(Path(p).absolute()) for p in extra_metadata)
    if chosen == "folders":
        return FolderSource(str(root), str(metadata), extra, text)
    if chosen == "tar.zst":
        staging = None if staging_dir is None else os.fspath(staging_dir)
        if staging is not None and not is_url(staging):
            staging = os.fspath(Path(staging).absolute())
        return TarZstSource(str(root), staging, str(metadata), extra, text, staging_store=store)
    return LmdbSource(str(_lmdb_path(root)), str(metadata), extra, text)


def detect_remote_kinds(files: SourceFiles) -> list[str]:
    """Every source kind whose files are below a URL, in ``KINDS`` order (no LMDB)."""
    found = []
    if any(files.isdir(top) for top in (S2_ROOT, S1_ROOT, MAPS_ROOT)):
        found.append("folders")
    if any(files.isfile(name) for name in ARCHIVES.values()):
        found.append("tar.zst")
    return found


def _open_remote(
    url: str,
    kind: str | None,
    metadata_path: str | os.PathLike[str] | None,
    extra_metadata: Sequence[str | os.PathLike[str]],
    text_path: str | os.PathLike[str] | None,
    staging_dir: str | os.PathLike[str] | None,
    store: StoreSpec | None,
) -> Source:
    """:func:`open_source` for a source on object storage."""
    if kind is not None and kind not in KINDS:
        raise SourceError(f"unknown source kind {kind!r}; use one of {', '.join(KINDS)}")
    if kind == "lmdb":
        raise SourceError(
            f"{url}: an LMDB source must be a local folder (LMDB maps a local file); copy it to "
            "local disk, or ingest the folders or .tar.zst archives from the bucket"
        )
    files = SourceFiles.of(url, store)
    files.check_reachable()
    found = detect_remote_kinds(files)
    if kind is None:
        if not found:
            raise SourceError(
                f"{files.url}: not a BigEarthNet source: expected the folders {S2_ROOT}/, "
                f"{S1_ROOT}/, {MAPS_ROOT}/ or the archives {', '.join(ARCHIVES.values())} "
                "below this prefix"
            )
        if len(found) > 1:
            raise SourceError(
                f"{files.url}: holds more than one kind of source ({', '.join(found)}); "
                "choose one with kind=... (or --kind)"
            )
        kind = found[0]
    elif kind not in found:
        raise SourceError(
            f"{files.url}: no {kind} source here (found: {', '.join(found) or 'none'})"
        )
    metadata = os.fspath(metadata_path) if metadata_path else files.name(METADATA_FILE)
    if not metadata_path and files.info(METADATA_FILE) is None:
        raise SourceError(
            f"{metadata}: metadata parquet does not exist; pass metadata_path= (or --metadata)"
        )
    text = os.fspath(text_path) if text_path else None
    if text is None and files.info(TEXT_FILE) is not None:
        text = files.name(TEXT_FILE)
    extra = tuple(os.fspath(p) for p in extra_metadata)
    if kind == "folders":
        return FolderSource(files.url, metadata, extra, text, store=files.spec)
    staging = None if staging_dir is None else os.fspath(staging_dir)
    if staging is not None and not is_url(staging):
        staging = os.fspath(Path(staging).absolute())
    return TarZstSource(files.url, staging, metadata, extra, text, store=files.spec)
