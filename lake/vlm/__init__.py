"""Vision-language-model helpers: boxes, images, augmentation and text rows (no torch).

The package is pure NumPy / pyarrow / PIL; importing it imports none of its modules:

* :mod:`lake.vlm.boxes`: the coordinate convention, box and point formats of the dataset and of
  VLMs (``unit``, ``pixel``, ``qwen``, ``internvl``, ``geochat``), parsing, conversion, IoU;
* :mod:`lake.vlm.rows`: :class:`~lake.vlm.rows.TextRow` and the rows of an annotations table;
* :mod:`lake.vlm.composite`: the RGB and S1 false-colour uint8 composites, their stretch and
  resizing to model sizes;
* :mod:`lake.vlm.augment`: the 8 flips/rotations of the square on images, boxes, points and
  text (direction words included), so that labels stay true after augmentation.

See ``docs/vlm.md``.
"""
