"""Lossless codec pipelines of the patch arrays: the default set and the portable one.

The choice and its numbers are in ``docs/decisions/0002-compression.md`` (ADR 0002); the
measurements come from ``benchmarks/codecs.py``. Every pipeline here decodes with plain
``zarr.open_group`` / ``xarray.open_zarr``, so no project code is needed to read the lake. Two
sets (:data:`CodecSet`), picked per lake at ingest (``lake ingest --codecs``):

* ``pcodec`` (the default, the measured best): the ``numcodecs.pcodec`` serializer for the
  rasters, which a reader can only decode with the ``pcodec`` package (``pip install pcodec``);
  without it zarr raises when it reads values (opening the group works).
* ``portable``: only codecs of the Zarr v3 core specification (``bytes``, ``blosc`` and
  ``gzip``; ``crc32c`` and ``sharding_indexed`` from ZEP 2), so readers that implement the core
  set and nothing more (GDAL's Zarr driver with its blosc support, tensorstore, zarrita.js,
  zarrs) read the rasters. ``zstd`` is *not* a core codec (it is a registered extension,
  https://github.com/zarr-developers/zarr-extensions) and ``numcodecs.*`` ones are zarr-python's
  own, so neither appears in this set. The core list:
  https://zarr-specs.readthedocs.io/en/latest/v3/codecs/index.html. The string arrays
  (``patch_id``, ``s1_name``, band names) keep zarr's ``string`` data type and ``vlen-utf8``
  serializer, which are registered extensions too: no core alternative holds variable-length
  text, and the rasters do not depend on them.

Layout 2 ends every chain with the standard ``crc32c`` codec (4 bytes per chunk), which zarr
checks on every read; the decision and its cost are in ``docs/decisions/0008-chunk-checksums.md``.
"""

from __future__ import annotations

import warnings
from typing import Any, Final, Literal

from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, GzipCodec, ZstdCodec
from zarr.codecs.numcodecs import PCodec

from lake.errors import ConfigError

#: The codec sets a lake can be written with (``lake ingest --codecs``).
CodecSet = Literal["pcodec", "portable"]
CODEC_SETS: Final[tuple[CodecSet, ...]] = ("pcodec", "portable")
DEFAULT_CODECS: Final[CodecSet] = "pcodec"
#: The codecs of the Zarr v3 core specification (and ZEP 2) that the portable set may use.
CORE_CODECS: Final = frozenset(
    {"bytes", "transpose", "blosc", "gzip", "crc32c", "sharding_indexed"}
)

#: pcodec compression level (0-12): 8 is its default and the knee of size against encode speed.
PCODEC_LEVEL: Final = 8
#: zstd level of the reference map: the maps are piecewise constant; level 15 stores about 25 %
#: less than level 3 and encodes at ~25 MB/s (level 19 saves 5 % more at 3 MB/s).
MAP_ZSTD_LEVEL: Final = 15
#: Blosc level of the portable set. On the real sample patch, level 9 stores 4 % less than 5 but
#: encodes at 1 MB/s instead of 10 MB/s (0.3 MB/s instead of 98 MB/s for the reference map).
BLOSC_LEVEL: Final = 5
#: gzip level of the portable string arrays (they are a few bytes per sample).
STRING_GZIP_LEVEL: Final = 6
#: zstd level of the string arrays (``patch_id``, ``s1_name``, band names): zarr's default.
STRING_ZSTD_LEVEL: Final = 0

_S2_ARRAYS: Final = frozenset({"s2_10m", "s2_20m", "s2_60m"})
_ARRAYS: Final = _S2_ARRAYS | {"s1", "reference_map"}


def check_codec_set(value: str) -> CodecSet:
    """Return ``value`` if it names a codec set.

    Raises:
        ConfigError: It is not one of :data:`CODEC_SETS` (the message names it and the choices).
    """
    if value not in CODEC_SETS:
        raise ConfigError(
            f"--codecs {value!r}: unknown codec set; use one of {', '.join(CODEC_SETS)} "
            "(portable: Zarr v3 core codecs only, for readers without pcodec)"
        )
    return value


def codecs_for(array_name: str, *, portable: bool = False, checksum: bool = True) -> dict[str, Any]:
    """The codec arguments of one patch array, to pass to ``zarr.create_array``.

    The decision and its measurements are in ``docs/decisions/0002-compression.md``. The
    returned pipeline encodes one chunk (one sample); pass ``chunks``/``shards`` separately,
    zarr nests these codecs inside the sharding codec.

    * ``s2_10m``, ``s2_20m``, ``s2_60m`` (uint16) and ``s1`` (float32): the
      ``numcodecs.pcodec`` serializer at level 8, no filter, no compressor.
    * ``reference_map`` (uint16, piecewise constant): raw bytes then zstd level 15.
    * ``portable=True``: Zarr v3 core codecs only (:data:`CORE_CODECS`): every array is raw
      bytes then ``blosc`` (zstd inside blosc, level 5, byte shuffle). On the real sample patch
      the S2 and S1 rasters store 10 % more than with pcodec (S2 12 %, S1 7 %); the former
      ``numcodecs.delta`` filter saved 1.4 % of S2 and is not a core codec.
    * ``checksum=True`` (layout 2): every pipeline ends with ``crc32c``, the CRC32C of the
      encoded chunk appended as 4 bytes, which zarr checks on every read (ADR 0008).

    Args:
        array_name: ``s2_10m``, ``s2_20m``, ``s2_60m``, ``s1`` or ``reference_map``.
        portable: Return the Zarr v3 core pipeline (the ``portable`` codec set) that any core
            reader decodes.
        checksum: End with ``crc32c`` (layout 2); False gives layout 1's pipelines.

    Returns:
        A dict with the keys ``filters``, ``serializer`` and ``compressors``, ready for
        ``zarr.create_array(..., **codecs_for(name))``.

    Raises:
        ValueError: ``array_name`` is not an array of the patch group.
    """
    if array_name not in _ARRAYS:
        raise ValueError(f"unknown patch array {array_name!r}; expected one of {sorted(_ARRAYS)}")
    crc: tuple[Any, ...] = (Crc32cCodec(),) if checksum else ()
    with warnings.catch_warnings():
        # zarr warns that numcodecs.* codecs are outside the v3 spec; the ADR accepts that.
        warnings.simplefilter("ignore")
        if portable:
            blosc = BloscCodec(cname="zstd", clevel=BLOSC_LEVEL, shuffle="shuffle")
            return {"filters": (), "serializer": BytesCodec(), "compressors": (blosc, *crc)}
        if array_name == "reference_map":
            return {
                "filters": (),
                "serializer": BytesCodec(),
                "compressors": (ZstdCodec(level=MAP_ZSTD_LEVEL), *crc),
            }
        return {"filters": (), "serializer": PCodec(level=PCODEC_LEVEL), "compressors": crc}


def string_codecs(*, portable: bool = False, checksum: bool = True) -> dict[str, Any]:
    """The codec arguments of the string arrays (``patch_id``, ``s1_name``, band names).

    zarr's own choice for strings (``vlen-utf8`` then zstd level 0), ending with ``crc32c`` in
    layout 2 (``checksum=True``); the portable set compresses with the core ``gzip`` instead of
    ``zstd``.

    Returns:
        A dict with the key ``compressors`` (zarr picks the ``vlen-utf8`` serializer).
    """
    crc: tuple[Any, ...] = (Crc32cCodec(),) if checksum else ()
    if portable:
        return {"compressors": (GzipCodec(level=STRING_GZIP_LEVEL), *crc)}
    return {"compressors": (ZstdCodec(level=STRING_ZSTD_LEVEL), *crc)}
