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
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pyarrow as pa

from lake.errors import BadInput, SourceError
from lake.names import MAPS_ROOT, S1_ROOT, S2_ROOT, pair_files
from pipelines.sources.base import (
    CheckedMetadata,
    Pair,
    Rejected,
    assemble_pair,
    check_metadata,
    no_metadata,
    stamp,
)
from pipelines.sources.geotiff import Band, read_band_file

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
        root: The folder that holds ``BigEarthNet-S2/``, ``BigEarthNet-S1/``, ``Reference_Maps/``.
        metadata_path: The metadata parquet (default ``<root>/metadata.parquet``).
        extra_metadata: More metadata parquets to include (e.g. the snow/cloud one).
        text_path: The BigEarthNet.txt parquet that comes with it, or None.
    """

    root: str
    metadata_path: str | None = None
    extra_metadata: tuple[str, ...] = ()
    text_path: str | None = None
    kind: ClassVar[str] = "folders"

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", os.fspath(self.root))
        if self.metadata_path is not None:
            object.__setattr__(self, "metadata_path", os.fspath(self.metadata_path))
        object.__setattr__(self, "extra_metadata", tuple(map(os.fspath, self.extra_metadata)))

    def _metadata_files(self) -> tuple[Path, tuple[Path, ...]]:
        return metadata_paths(self.root, self.metadata_path, self.extra_metadata)

    def fingerprint(self) -> str:
        """Root, metadata size/mtime, and the number of product/scene folders of each root."""
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

    def prepare(self, progress: bool = False) -> None:
        """Check that the root holds the official folders (nothing to stage).

        Raises:
            SourceError: The root or one of its three folders does not exist.
        """
        missing = [t for t, _ in TOP_FOLDERS if not os.path.isdir(os.path.join(self.root, t))]
        if missing:
            raise SourceError(
                f"{self.root}: missing folder(s) {', '.join(missing)}; a folder source holds "
                f"{', '.join(t for t, _ in TOP_FOLDERS)} as extracted from the official archives"
            )

    def metadata(self) -> pa.Table:
        """The valid metadata rows, sorted by patch_id (invalid ones: :meth:`checked_metadata`)."""
        return self.checked_metadata().table

    def checked_metadata(self) -> CheckedMetadata:
        """The valid metadata rows and a rejection for each invalid one."""
        main, extra = self._metadata_files()
        return check_metadata(main, extra)

    def read_band(self, relpath: str, band: str) -> Band:
        """Decode one band file given by its path relative to the root.

        Raises:
            BadInput: The file is missing, unreadable, or not the band.
        """
        return read_band_file(os.path.join(self.root, relpath), band)

    def read_pair(self, patch_id: str, s1_name: str) -> Pair:
        """Decode the 15 files of one pair.

        Raises:
            BadInput: ``no_files`` (named by patch id) when none of its files exist, otherwise the
                first bad file by path (``missing_file``, ``unreadable``, ``wrong_shape``...).
        """
        files = pair_files(patch_id, s1_name)
        bands = {}
        for band, rel in files.items():
            try:
                decoded = self.read_band(rel, band)
            except BadInput as exc:
                if exc.reason == "missing_file" and self._none_exist(files.values()):
                    raise BadInput(
                        patch_id, "no_files", f"no files for this patch in {self.root}"
                    ) from None
                raise
            bands[band] = (decoded.data, decoded.epsg, decoded.transform)
        return assemble_pair(patch_id, s1_name, bands)

    def _none_exist(self, relpaths: Iterable[str]) -> bool:
        return not any(os.path.exists(os.path.join(self.root, p)) for p in relpaths)

    def orphans(self, known_patch_ids: set[str], known_s1_names: set[str]) -> list[Rejected]:
        """Patch and S1 folders whose name is in no metadata row (one rejection per folder).

        Only the product/scene and patch folder levels are listed, never the band files.
        """
        out: list[Rejected] = []
        for top, name_kind in TOP_FOLDERS:
            known = known_s1_names if name_kind == "s1_name" else known_patch_ids
            for product in _subdirs(os.path.join(self.root, top)):
                for patch in _subdirs(product.path):
                    if patch.name not in known:
                        out.append(no_metadata(patch.path, patch.name))
        return out
