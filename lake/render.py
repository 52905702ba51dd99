"""Render one pair as a PNG: true colour, a SAR composite and the reference map, side by side."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

#: The official CORINE Land Cover legend colours (RGB) of the level-3 codes.
CLC_COLOURS: Mapping[int, tuple[int, int, int]] = {
    111: (230, 0, 77),
    112: (255, 0, 0),
    121: (204, 77, 242),
    122: (204, 0, 0),
    123: (230, 204, 204),
    124: (230, 204, 230),
    131: (166, 0, 204),
    132: (166, 77, 0),
    133: (255, 77, 255),
    141: (255, 166, 255),
    142: (255, 230, 255),
    211: (255, 255, 168),
    212: (255, 255, 0),
    213: (230, 230, 0),
    221: (230, 128, 0),
    222: (242, 166, 77),
    223: (230, 166, 0),
    231: (230, 230, 77),
    241: (255, 230, 166),
    242: (255, 230, 77),
    243: (230, 204, 77),
    244: (242, 204, 166),
    311: (128, 255, 0),
    312: (0, 166, 0),
    313: (77, 255, 0),
    321: (204, 242, 77),
    322: (166, 255, 128),
    323: (166, 230, 77),
    324: (166, 242, 0),
    331: (230, 230, 230),
    332: (204, 204, 204),
    333: (204, 255, 204),
    334: (0, 0, 0),
    335: (166, 230, 204),
    411: (166, 166, 255),
    412: (77, 77, 255),
    421: (204, 204, 255),
    422: (230, 230, 255),
    423: (166, 166, 230),
    511: (0, 204, 242),
    512: (128, 242, 230),
    521: (0, 255, 166),
    522: (166, 255, 230),
    523: (230, 242, 255),
    999: (255, 255, 255),
}

PANEL = 240  # pixels per panel side (120 px patches shown at 2x)


def _stretch(band: np.ndarray, lo: float = 2, hi: float = 98) -> np.ndarray:
    """Scale to 0..255 between two percentiles (nodata 0 ignored for unsigned data)."""
    values = band.astype(np.float64)
    valid = values[values != 0] if np.issubdtype(band.dtype, np.unsignedinteger) else values
    if valid.size == 0:
        return np.zeros(band.shape, dtype=np.uint8)
    a, b = np.percentile(valid, [lo, hi])
    scaled = (values - a) / max(b - a, 1e-9)
    return (np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def true_colour(patch: Mapping[str, Any]) -> np.ndarray:
    """RGB (B04, B03, B02) with a 2-98 % stretch, uint8 (120, 120, 3)."""
    return np.dstack([_stretch(patch[b]) for b in ("B04", "B03", "B02")])


def sar_composite(patch: Mapping[str, Any]) -> np.ndarray:
    """RGB of VV, VH and VV-VH (dB), each stretched, uint8 (120, 120, 3)."""
    vv, vh = patch["VV"], patch["VH"]
    return np.dstack([_stretch(vv), _stretch(vh), _stretch(vv - vh)])


def reference_colours(reference_map: np.ndarray) -> np.ndarray:
    """The reference map in the CLC legend colours, uint8 (120, 120, 3); unknown codes grey."""
    out = np.full((*reference_map.shape, 3), 128, dtype=np.uint8)
    for code in np.unique(reference_map):
        out[reference_map == code] = CLC_COLOURS.get(int(code), (128, 128, 128))
    return out


def render_patch(
    patch: Mapping[str, Any], out: str | os.PathLike[str], title: str | None = None
) -> str:
    """Write the three panels of a pair to a PNG.

    Args:
        patch: A pair as returned by :meth:`lake.reader.Release.patch`.
        out: The PNG path.
        title: A caption line (default: the patch id and its labels).

    Returns:
        The path written.
    """
    panels = [true_colour(patch), sar_composite(patch), reference_colours(patch["reference_map"])]
    names = ["Sentinel-2 true colour", "Sentinel-1 VV / VH / VV-VH", "Reference map (CLC)"]
    meta = patch.get("metadata", {})
    caption = title or f"{meta.get('patch_id', '')}  {', '.join(meta.get('labels') or [])}"
    lines = textwrap.wrap(caption, width=120)[:3]
    pad, top = 8, 22 + 12 * len(lines)
    image = Image.new("RGB", (3 * PANEL + 4 * pad, PANEL + top + pad), "white")
    draw = ImageDraw.Draw(image)
    draw.multiline_text((pad, 4), "\n".join(lines), fill="black", spacing=2)
    for i, (panel, name) in enumerate(zip(panels, names, strict=True)):
        x = pad + i * (PANEL + pad)
        tile = Image.fromarray(panel).resize((PANEL, PANEL), Image.Resampling.NEAREST)
        image.paste(tile, (x, top))
        draw.text((x, top - 14), name, fill="black")
    path = os.fspath(out)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    image.save(path, format="PNG")
    return path
