"""The facts of BigEarthNet v2.0 that the lake honours: bands, shapes, dtypes, classes.

Everything here follows ``BIGEARTHNET.md`` of the shared data folder. Bands are addressed by
name, never by position.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

import numpy as np


@dataclass(frozen=True)
class ArraySpec:
    """One array of the patch group: which bands it stacks and at what size.

    Attributes:
        name: The Zarr array name (``s2_10m``, ``s1``, ...).
        bands: Band names along axis 1, in storage order (empty for single-band arrays).
        size: Pixels along each side (patches are square).
        dtype: NumPy dtype string of the values, as released.
        resolution_m: Ground sampling distance in metres.
        nodata: Nodata value of the source GeoTIFFs, or None when they carry none.
    """

    name: str
    bands: tuple[str, ...]
    size: int
    dtype: str
    resolution_m: int
    nodata: float | None

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample of this array (without the leading ``sample`` axis)."""
        if self.bands:
            return (len(self.bands), self.size, self.size)
        return (self.size, self.size)

    @property
    def nbytes(self) -> int:
        """Uncompressed bytes of one sample."""
        return int(np.prod(self.sample_shape)) * np.dtype(self.dtype).itemsize


S2_10M: Final = ArraySpec("s2_10m", ("B02", "B03", "B04", "B08"), 120, "uint16", 10, 0)
S2_20M: Final = ArraySpec("s2_20m", ("B05", "B06", "B07", "B8A", "B11", "B12"), 60, "uint16", 20, 0)
S2_60M: Final = ArraySpec("s2_60m", ("B01", "B09"), 20, "uint16", 60, 0)
S1: Final = ArraySpec("s1", ("VV", "VH"), 120, "float32", 10, None)
REFERENCE_MAP: Final = ArraySpec("reference_map", (), 120, "uint16", 10, 0)

#: The raster arrays of the patch group, in storage order.
ARRAYS: Final[tuple[ArraySpec, ...]] = (S2_10M, S2_20M, S2_60M, S1, REFERENCE_MAP)
ARRAYS_BY_NAME: Final = MappingProxyType({a.name: a for a in ARRAYS})

#: S2 bands in ESA order, as in the file names.
S2_BANDS: Final = (
    "B01",
    "B02",
    "B03",
    "B04",
    "B05",
    "B06",
    "B07",
    "B08",
    "B8A",
    "B09",
    "B11",
    "B12",
)
S1_BANDS: Final = ("VV", "VH")

#: Which array holds each band.
BAND_ARRAY: Final = MappingProxyType({b: a for a in ARRAYS for b in a.bands})

#: Central wavelength (micrometres) and STAC common name of each S2 band (Sentinel-2A MSI).
S2_BAND_INFO: Final = MappingProxyType(
    {
        "B01": (0.443, "coastal"),
        "B02": (0.490, "blue"),
        "B03": (0.560, "green"),
        "B04": (0.665, "red"),
        "B05": (0.705, "rededge071"),
        "B06": (0.740, "rededge075"),
        "B07": (0.783, "rededge078"),
        "B08": (0.842, "nir"),
        "B8A": (0.865, "nir08"),
        "B09": (0.945, "nir09"),
        "B11": (1.610, "swir16"),
        "B12": (2.190, "swir22"),
    }
)

#: Per-band train-split mean and std of the reference loaders (S2 in DN, S1 in dB).
BAND_STATS: Final = MappingProxyType(
    {
        "B01": (361.08, 575.07),
        "B02": (438.37, 607.03),
        "B03": (614.06, 603.30),
        "B04": (588.41, 684.57),
        "B05": (942.84, 738.43),
        "B06": (1769.93, 1100.46),
        "B07": (2049.55, 1275.81),
        "B08": (2193.29, 1369.37),
        "B8A": (2235.56, 1356.54),
        "B09": (2241.46, 1316.39),
        "B11": (1568.23, 1070.16),
        "B12": (997.73, 813.53),
        "VV": (-12.64, 5.13),
        "VH": (-19.35, 5.59),
    }
)

#: The 19 classes in the "original" order (torchgeo's), with their CLC level-3 codes.
CLASS_CODES: Final = MappingProxyType(
    {
        "Urban fabric": (111, 112),
        "Industrial or commercial units": (121,),
        "Arable land": (211, 212, 213),
        "Permanent crops": (221, 222, 223, 241),
        "Pastures": (231,),
        "Complex cultivation patterns": (242,),
        "Land principally occupied by agriculture, with significant areas of natural vegetation": (
            243,
        ),
        "Agro-forestry areas": (244,),
        "Broad-leaved forest": (311,),
        "Coniferous forest": (312,),
        "Mixed forest": (313,),
        "Natural grassland and sparsely vegetated areas": (321, 333),
        "Moors, heathland and sclerophyllous vegetation": (322, 323),
        "Transitional woodland, shrub": (324,),
        "Beaches, dunes, sands": (331,),
        "Inland wetlands": (411, 412),
        "Coastal wetlands": (421, 422),
        "Inland waters": (511, 512),
        "Marine waters": (521, 522, 523),
    }
)
CLASSES_ORIGINAL: Final[tuple[str, ...]] = tuple(CLASS_CODES)
#: The reference loaders' default multi-hot order.
CLASSES_SORTED: Final[tuple[str, ...]] = tuple(sorted(CLASS_CODES))
#: CLC codes that belong to no 19-class name.
UNLABELED_CODES: Final = (122, 123, 124, 131, 132, 133, 141, 142, 332, 334, 335, 423, 999)
CODE_TO_CLASS: Final = MappingProxyType({c: n for n, cs in CLASS_CODES.items() for c in cs})
#: A patch is kept only when less than this fraction of it is unlabeled.
MAX_UNLABELED_FRACTION: Final = 0.25

SPLITS: Final = ("train", "validation", "test")
TEXT_SPLITS: Final = ("train", "validation", "test", "bench")
SEASONS: Final = ("Spring", "Summer", "Fall", "Winter")
TEXT_TYPES: Final = ("binary", "mcq", "bounding box", "captioning")

#: Columns of metadata.parquet, in file order.
METADATA_COLUMNS: Final = (
    "patch_id",
    "labels",
    "split",
    "country",
    "s1_name",
    "s2v1_name",
    "contains_seasonal_snow",
    "contains_cloud_or_shadow",
)
#: Columns of BigEarthNet.txt.parquet, in file order.
TEXT_COLUMNS: Final = (
    "ID",
    "s1_name",
    "patch_id",
    "input",
    "output",
    "type",
    "category",
    "split",
    "latitude",
    "longitude",
    "country",
    "season",
    "climate_zone",
)


def multi_hot(
    labels: list[str] | tuple[str, ...], order: tuple[str, ...] = CLASSES_SORTED
) -> np.ndarray:
    """Encode 19-class names as a float32 multi-hot vector.

    Args:
        labels: Class names, each one of the 19 exact strings.
        order: Class order of the vector (sorted by default, or ``CLASSES_ORIGINAL``).

    Returns:
        A ``(19,)`` float32 array.

    Raises:
        KeyError: A name is not one of the 19 classes.
    """
    index = {n: i for i, n in enumerate(order)}
    out = np.zeros(len(order), dtype=np.float32)
    for name in labels:
        if name not in index:
            raise KeyError(f"{name!r} is not one of the 19 BigEarthNet classes")
        out[index[name]] = 1.0
    return out


def season_of(month: int) -> str:
    """Meteorological season (northern hemisphere) of a month, as BigEarthNet.txt spells it."""
    return SEASONS[((month % 12) // 3 + 3) % 4]
