"""The BigEarthNet lake: Zarr v3 patches, Parquet tables and releases on local disk or S3.

``import lake`` stays light; heavy parts (torch, dask) live in submodules that import them.

Example:
    >>> import lake
    >>> release = lake.open_lake("s3://bucket/lake").current   # doctest: +SKIP
    >>> release.patch("S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_75_43")["B04"]  # doctest: +SKIP
"""

from lake.config import StoreSpec, store_spec
from lake.errors import (
    BadInput,
    ConfigError,
    LakeError,
    LayoutError,
    PatchNotFound,
    PublishConflict,
    ReleaseNotFound,
    SourceError,
)

_LAZY = {
    "Lake": "lake.reader",
    "Release": "lake.reader",
    "connect": "lake.sql",
    "open_lake": "lake.reader",
}


def __getattr__(name: str) -> object:
    """Import the reader (zarr, pyarrow) only when it is used."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lake' has no attribute {name!r}")


__all__ = [
    "BadInput",
    "ConfigError",
    "Lake",
    "LakeError",
    "LayoutError",
    "PatchNotFound",
    "PublishConflict",
    "Release",
    "ReleaseNotFound",
    "SourceError",
    "StoreSpec",
    "connect",
    "open_lake",
    "store_spec",
]
__version__ = "0.1.0"
