"""Lossless codec pipelines of the patch arrays.

The choice and its numbers are in ``docs/decisions/0002-compression.md`` (ADR 0002); the
measurements come from ``benchmarks/codecs.py``. Every pipeline here decodes with plain
``zarr.open_group`` / ``xarray.open_zarr``: the codecs are zarr v3 built-ins or the
``numcodecs.*`` codecs that zarr itself registers, so no project code is needed to read the lake.
The ``numcodecs.pcodec`` serializer needs the ``pcodec`` package (``pcodec>=1.0``) on the reader's
machine; ``portable=True`` gives the fallback that needs nothing beyond zarr and numcodecs.
"""

from __future__ import annotations

import warnings
from typing import Any, Final

from zarr.codecs import BloscCodec, BytesCodec, ZstdCodec
from zarr.codecs.numcodecs import Delta, PCodec

#: pcodec compression level (0-12): 8 is its default and the knee of size against encode speed.
PCODEC_LEVEL: Final = 8
#: zstd level of the reference map: the maps are piecewise constant; level 15 stores about 25 %
#: less than level 3 and encodes at ~25 MB/s (level 19 saves 5 % more at 3 MB/s).
MAP_ZSTD_LEVEL: Final = 15
#: Blosc level of the portable fallback (level 9 maps to zstd's slowest levels: 4-9 MB/s encode).
BLOSC_LEVEL: Final = 5

_S2_ARRAYS: Final = frozenset({"s2_10m", "s2_20m", "s2_60m"})
_ARRAYS: Final = _S2_ARRAYS | {"s1", "reference_map"}


def codecs_for(array_name: str, *, portable: bool = False) -> dict[str, Any]:
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

    Args:
        array_name: ``s2_10m``, ``s2_20m``, ``s2_60m``, ``s1`` or ``reference_map``.
        portable: Return the fallback that decodes with zarr + numcodecs alone (about 9 % more
            bytes than the default).

    Returns:
        A dict with the keys ``filters``, ``serializer`` and ``compressors``, ready for
        ``zarr.create_array(..., **codecs_for(name))``.

    Raises:
        ValueError: ``array_name`` is not an array of the patch group.
    """
    if array_name not in _ARRAYS:
        raise ValueError(f"unknown patch array {array_name!r}; expected one of {sorted(_ARRAYS)}")
    with warnings.catch_warnings():
        # zarr warns that numcodecs.* codecs are outside the v3 spec; the ADR accepts that.
        warnings.simplefilter("ignore")
        if array_name == "reference_map":
            return {
                "filters": (),
                "serializer": BytesCodec(),
                "compressors": (ZstdCodec(level=MAP_ZSTD_LEVEL),),
            }
        if not portable:
            return {"filters": (), "serializer": PCodec(level=PCODEC_LEVEL), "compressors": ()}
        blosc = BloscCodec(cname="zstd", clevel=BLOSC_LEVEL, shuffle="shuffle")
        if array_name in _S2_ARRAYS:
            return {
                "filters": (Delta(dtype="<u2"),),
                "serializer": BytesCodec(),
                "compressors": (blosc,),
            }
        return {"filters": (), "serializer": BytesCodec(), "compressors": (blosc,)}
