"""Synthetic BigEarthNet sources: real metadata rows, synthetic rasters, maps and text.

``synthesize`` writes a source in any of the three official formats (the ``lake synth`` command);
``annotations_for`` produces the BigEarthNet.txt rows alone, identical to those ``synthesize``
writes for the same rows and seed. :mod:`pipelines.synth.scenes` writes Sentinel-2 L2A scenes
(COGs and their STAC Items) around patches, what the time-series job cuts.
"""

from pipelines.synth.generate import DEFAULT_METADATA, SynthReport, draw, synthesize
from pipelines.synth.landcover import land_cover, reference_map
from pipelines.synth.text import TEXT_SCHEMA, annotations_for

__all__ = [
    "DEFAULT_METADATA",
    "TEXT_SCHEMA",
    "SynthReport",
    "annotations_for",
    "draw",
    "land_cover",
    "reference_map",
    "synthesize",
]
