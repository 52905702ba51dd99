"""Lossless codec pipelines of the patch arrays.

The choice and its numbers are in ``docs/decisions/0002-compression.md`` (ADR 0002); the
measurements come from ``benchmarks/codecs.py``. Every pipeline here decodes with plain
``zarr.open_group`` / ``xarray.open_zarr``: the codecs are zarr v3 built-ins or the
``numcodecs.*`` codecs that zarr itself registers, so no project code is needed to read the lake.
The ``numcodecs.pcodec`` serializer needs the ``pcodec`` package (``pcodec>=1.0``) on the reader's
machine; ``portable=True`` gives the fallback that needs nothing beyond zarr and numcodecs.

Layout 2 ends every chain with the standard ``crc32c`` codec (4 bytes per chunk), which zarr
checks on every read; the decision and its cost are in ``docs/decisions/0008-chunk-checksums.md``.
"""

from __future__ import annotations

import warnings
from typing import Any, Final

from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, ZstdCodec
from zarr.codecs.numcodecs import Delta, PCodec

#: pcodec compression level (0-12): 8 is its default and the knee of size against encode speed.
PCODEC_LEVEL: Final = 8
#: zstd level of the reference map: the maps are piecewise constant; level 15 stores about 25 %
#: less than level 3 and encodes at ~25 MB/s (level 19 saves 5 % more at 3 MB/s).
MAP_ZSTD_LEVEL: Final = 15
#: Blosc level of the portable fallback (level 9 maps to zstd's slowest levels: 4-9 MB/s encode).
BLOSC_LEVEL: Final = 5
#: zstd level of the string arrays (``patch_id``, ``s1_name``, band names): zarr's default.
STRING_ZSTD_LEVEL: Final = 0

_S2_ARRAYS: Final = frozenset({"s2_10m", "s2_20m", "s2_60m"})
_ARRAYS: Final = _S2_ARRAYS | {"s1", "reference_map"}


def codecs_for(array_name: str, *, portable: bool = False, checksum: bool = True) -> dict[str, Any]:
    """The codec arguments of one patch array, to pass to ``zarr.create_array``.

    The decision and its measurements are in ``docs/decisions/0002-compression.md``. The
    returned pipeline encodes one chunk (one sample); pass ``chunks``/``shards`` separately,
    zarr nests these codecs inside the sharding codec.

    * ``s2_10m``, ``s2_20m``, ``s2_60m`` (uint16) and ``s1`` (float32): the
      ``numcodecs.pcodec`` serializer at level 8, no filter, no compressor.
    * ``reference_map`` (uint16, piecewise constant): raw bytes then zstd level 15.
    * ``portable=True``: no extra package. S2 uses a ``numcodecs.delta`` filter (horizontal
      difference) then Blosc-zstd with byte shuffle; S1 Blosc-zstd with byte shuffle; the map is
      unchanged.
    * ``checksum=True`` (layout 2): every pipeline ends with ``crc32c``, the CRC32C of the
      encoded chunk appended as 4 bytes, which zarr checks on every read (ADR 0008).

    Args:
        array_name: ``s2_10m``, ``s2_20m``, ``s2_60m``, ``s1`` or ``reference_map``.
        portable: Return the fallback that decodes with zarr + numcodecs alone (about 9 % more
            bytes than the default).
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
        if array_name == "reference_map":
            return {
                "filters": (),
                "serializer": BytesCodec(),
                "compressors": (ZstdCodec(level=MAP_ZSTD_LEVEL), *crc),
            }
        if not portable:
            return {"filters": (), "serializer": PCodec(level=PCODEC_LEVEL), "compressors": crc}
        blosc = BloscCodec(cname="zstd", clevel=BLOSC_LEVEL, shuffle="shuffle")
        if array_name in _S2_ARRAYS:
            return {
                "filters": (Delta(dtype="<u2"),),
                "serializer": BytesCodec(),
                "compressors": (blosc, *crc),
            }
        return {"filters": (), "serializer": BytesCodec(), "compressors": (blosc, *crc)}


def string_codecs(*, checksum: bool = True) -> dict[str, Any]:
    """The codec arguments of the string arrays (``patch_id``, ``s1_name``, band names).

    zarr's own choice for strings (``vlen-utf8`` then zstd level 0), ending with ``crc32c`` in
    layout 2 (``checksum=True``).

    Returns:
        A dict with the key ``compressors`` (zarr picks the ``vlen-utf8`` serializer).
    """
    crc: tuple[Any, ...] = (Crc32cCodec(),) if checksum else ()
    return {"compressors": (ZstdCodec(level=STRING_ZSTD_LEVEL), *crc)}
