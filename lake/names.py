"""Parse and build BigEarthNet v2.0 names: patch ids, S1 names, products, scenes, file paths.

``patch_id`` = ``S2{A|B}_MSIL2A_<YYYYMMDDTHHMMSS>_N9999_R<orbit>_T<tile>_<x>_<y>`` (x, y padded to
two digits); ``s1_name`` = ``S1{A|B}_IW_GRDH_1SDV_<YYYYMMDDTHHMMSS>_<tile>_<x>_<y>`` (not padded).
An ``s1_name`` is never derived from a ``patch_id``: it always comes from the metadata.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from lake.bigearthnet import REFERENCE_MAP, S1_BANDS, S2_BANDS
from lake.errors import BadInput

S2_PATTERN = re.compile(
    r"^(?P<platform>S2[AB])_MSIL2A_(?P<time>\d{8}T\d{6})_N9999_R(?P<orbit>\d{3})_"
    r"T(?P<tile>\d{2}[C-X][A-Z]{2})_(?P<x>\d{2,})_(?P<y>\d{2,})$",
    re.ASCII,  # \d is [0-9] only (no fullwidth digits); callers use fullmatch (no trailing \n)
)
S1_PATTERN = re.compile(
    r"^(?P<platform>S1[AB])_IW_GRDH_1SDV_(?P<time>\d{8}T\d{6})_"
    r"(?P<tile>\d{2}[C-X][A-Z]{2})_(?P<x>\d+)_(?P<y>\d+)$",
    re.ASCII,
)


def _time(value: str) -> datetime:
    return datetime.strptime(value, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)


@dataclass(frozen=True)
class S2Name:
    """The parts of a Sentinel-2 ``patch_id``.

    Attributes:
        patch_id: The full name.
        platform: ``S2A`` or ``S2B``.
        datetime: Sensing time (UTC).
        orbit: Relative orbit number.
        tile: MGRS tile without the leading ``T`` (e.g. ``33UUP``).
        x: Patch column inside the tile.
        y: Patch row inside the tile.
    """

    patch_id: str
    platform: str
    datetime: datetime
    orbit: int
    tile: str
    x: int
    y: int

    @property
    def product(self) -> str:
        """The product folder: the patch id without its last two fields."""
        return self.patch_id.rsplit("_", 2)[0]

    def band_path(self, band: str) -> str:
        """Path of one band inside ``BigEarthNet-S2/``."""
        return f"{self.product}/{self.patch_id}/{self.patch_id}_{band}.tif"

    def reference_map_path(self) -> str:
        """Path of the reference map inside ``Reference_Maps/``."""
        return f"{self.product}/{self.patch_id}/{self.patch_id}_reference_map.tif"


@dataclass(frozen=True)
class S1Name:
    """The parts of a Sentinel-1 ``s1_name``.

    Attributes:
        s1_name: The full name.
        platform: ``S1A`` or ``S1B``.
        datetime: Acquisition start time (UTC).
        tile: MGRS tile (e.g. ``33UUP``).
        x: Patch column inside the tile.
        y: Patch row inside the tile.
    """

    s1_name: str
    platform: str
    datetime: datetime
    tile: str
    x: int
    y: int

    @property
    def scene(self) -> str:
        """The scene folder: the name without its last three fields."""
        return self.s1_name.rsplit("_", 3)[0]

    def band_path(self, band: str) -> str:
        """Path of one polarisation inside ``BigEarthNet-S1/``."""
        return f"{self.scene}/{self.s1_name}/{self.s1_name}_{band}.tif"


def parse_patch_id(patch_id: str) -> S2Name:
    """Parse a Sentinel-2 patch id.

    Raises:
        BadInput: The string is not a BigEarthNet v2.0 patch id.
    """
    m = S2_PATTERN.fullmatch(patch_id)
    if m is None:
        raise BadInput(
            patch_id,
            "bad_name",
            "not a BigEarthNet v2.0 patch id "
            "(expected S2A|S2B_MSIL2A_<YYYYMMDDTHHMMSS>_N9999_R<orbit>_T<tile>_<x>_<y>)",
        )
    return S2Name(
        patch_id,
        m["platform"],
        _time(m["time"]),
        int(m["orbit"]),
        m["tile"],
        int(m["x"]),
        int(m["y"]),
    )


def parse_s1_name(s1_name: str) -> S1Name:
    """Parse a Sentinel-1 patch name.

    Raises:
        BadInput: The string is not a BigEarthNet v2.0 S1 name.
    """
    m = S1_PATTERN.fullmatch(s1_name)
    if m is None:
        raise BadInput(
            s1_name,
            "bad_name",
            "not a BigEarthNet v2.0 S1 name "
            "(expected S1A|S1B_IW_GRDH_1SDV_<YYYYMMDDTHHMMSS>_<tile>_<x>_<y>)",
        )
    return S1Name(s1_name, m["platform"], _time(m["time"]), m["tile"], int(m["x"]), int(m["y"]))


#: Official top-level folders (and archive names without ``.tar.zst``).
S2_ROOT = "BigEarthNet-S2"
S1_ROOT = "BigEarthNet-S1"
MAPS_ROOT = "Reference_Maps"
REFERENCE_MAP_SUFFIX = "reference_map"


def pair_files(patch_id: str, s1_name: str) -> dict[str, str]:
    """Every file of one pair, keyed by band name, as paths relative to the source root.

    Returns:
        ``{"B01": "BigEarthNet-S2/...", ..., "VV": "BigEarthNet-S1/...", "reference_map": ...}``.
    """
    s2 = parse_patch_id(patch_id)
    s1 = parse_s1_name(s1_name)
    files = {b: f"{S2_ROOT}/{s2.band_path(b)}" for b in S2_BANDS}
    files.update({b: f"{S1_ROOT}/{s1.band_path(b)}" for b in S1_BANDS})
    files[REFERENCE_MAP.name] = f"{MAPS_ROOT}/{s2.reference_map_path()}"
    return files


def split_member(path: str) -> tuple[str, str, str] | None:
    """Split a source file path into (root folder, patch or s1 name, band), or None.

    ``BigEarthNet-S2/<product>/<patch_id>/<patch_id>_B02.tif`` gives
    ``("BigEarthNet-S2", patch_id, "B02")``.
    Paths that are not band files of the official layout give None.
    """
    parts = path.strip("/").split("/")
    if len(parts) < 4 or not parts[-1].endswith(".tif"):
        return None
    root, name, filename = parts[-4], parts[-2], parts[-1][: -len(".tif")]
    if not filename.startswith(name + "_"):
        return None
    band = filename[len(name) + 1 :]
    if root in (S2_ROOT, S1_ROOT, MAPS_ROOT):
        return root, name, band
    return None
