"""nuImages annotation masks and the semantic ground truth of one image, as the devkit's
``NuImages.get_segmentation`` builds it.

A mask is ``{"size": [H, W], "counts": <base64 of a COCO compressed RLE string>}``: column-major
run lengths, decoded here with ``pycocotools.mask.decode`` after base64. Before decoding, the
RLE string is parsed (the COCO format: 6-bit characters from ``'0'``, 5 payload bits each, bit
0x20 = more characters follow, 0x10 of the last = negative, counts from the third on stored as
differences to the one two before) to check that its runs are non-negative and cover exactly
H x W pixels: pycocotools does not check this and decodes a corrupt string into a silently
wrong mask.

Ground truth (:func:`semantic_mask`): 0 = unlabelled; surfaces drawn first in table order, then
objects sorted by token; a later mask overwrites; null masks are skipped; fine indices from
:func:`fine_indices` (categories sorted by name get 1, 2, ... except ``flat.driveable_surface``
= 24 and ``vehicle.ego`` = 31, the devkit's ``name_to_index_mapping``).
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from pipeline.datasets.nuimages_tables import Annotation
from pipeline.errors import InputFileError

FIXED_INDICES: dict[str, int] = {"flat.driveable_surface": 24, "vehicle.ego": 31}
"""The categories the devkit numbers outside the alphabetical order."""


def fine_indices(names: Iterable[str]) -> dict[str, int]:
    """Category name → fine index, as the devkit numbers the categories of ``category.json``:
    the names other than :data:`FIXED_INDICES` sorted alphabetically get 1..n (n <= 23), then
    ``flat.driveable_surface`` 24 and ``vehicle.ego`` 31. With nuImages' 25 categories these equal
    the nuScenes lidarseg fine indices of the same names."""
    ordered = sorted(n for n in set(names) if n not in FIXED_INDICES)
    if len(ordered) > 23:
        raise ValueError(f"{len(ordered)} object categories; nuImages has 23 (besides {sorted(FIXED_INDICES)})")
    return {**{name: i for i, name in enumerate(ordered, start=1)}, **FIXED_INDICES}


def rle_counts(counts: bytes) -> list[int]:
    """The run lengths of a COCO compressed RLE string (bytes of characters ``'0'``..``'o'``).

    Raises ``ValueError`` on a character outside the alphabet or a string cut inside a number.
    """
    out: list[int] = []
    i, n = 0, len(counts)
    while i < n:
        value, shift, more = 0, 0, True
        while more:
            if i >= n:
                raise ValueError("the string ends inside a run length")
            c = counts[i] - 48
            if not 0 <= c < 64:
                raise ValueError(f"character {chr(counts[i])!r} at position {i} is not an RLE character")
            value |= (c & 0x1F) << shift
            more = bool(c & 0x20)
            i += 1
            shift += 5
            if not more and c & 0x10:
                value |= -1 << shift
        if len(out) > 2:
            value += out[-2]
        out.append(value)
    return out


def decode_mask(mask: dict, where: Path, record: str) -> np.ndarray:
    """Decode one annotation mask → (H, W) bool. Raises :class:`InputFileError` naming ``where``
    (the table file) and ``record`` (its token) when the mask is corrupt."""
    from pycocotools import mask as cocomask

    try:
        height, width = (int(v) for v in mask["size"])
        raw = base64.b64decode(mask["counts"], validate=True)
        runs = rle_counts(raw)
    except (binascii.Error, ValueError, TypeError) as err:
        raise InputFileError(where, f"record {record}: corrupt mask ({err}); re-extract the table") from None
    if height < 1 or width < 1 or min(runs, default=0) < 0 or sum(runs) != height * width:
        raise InputFileError(where, f"record {record}: corrupt mask (its runs cover {sum(runs)} pixels with "
                                    f"a minimum of {min(runs, default=0)}, size {width}x{height} has {width * height}); re-extract the table")
    return cocomask.decode({"size": [height, width], "counts": raw}).astype(bool)


def semantic_mask(
    surfaces: Sequence[Annotation], objects: Sequence[Annotation], index: dict[str, int], size: tuple[int, int],
    tables: tuple[Path, Path],
) -> tuple[np.ndarray, np.ndarray, int]:
    """The image's ground truth as ``get_segmentation`` builds it.

    ``surfaces`` / ``objects``: the image's surface_ann / object_ann records in table order;
    ``index``: category name → fine index (:func:`fine_indices`); ``size``: the image's (W, H);
    ``tables``: the surface_ann and object_ann files (for errors). Returns (semantic (H, W)
    uint8 fine index, 0 = unlabelled; instance (H, W) uint16, object i of the token order = i + 1,
    0 = none; the number of null masks skipped). A mask of another size is an error naming the
    record.
    """
    width, height = size
    semantic = np.zeros((height, width), np.uint8)
    instance = np.zeros((height, width), np.uint16)
    nulls = 0
    ordered = [(tables[0], a, 0) for a in surfaces]
    ordered += [(tables[1], a, i) for i, a in enumerate(sorted(objects, key=lambda a: a.token), start=1)]
    for path, ann, inst in ordered:
        if ann.mask is None:
            nulls += 1
            continue
        m = decode_mask(ann.mask, path, ann.token)
        if m.shape != (height, width):
            raise InputFileError(path, f"record {ann.token}: mask size {m.shape[1]}x{m.shape[0]} differs from its image's {width}x{height}")
        semantic[m] = index[ann.category]
        if inst:
            instance[m] = inst
    return semantic, instance, nulls


def encode_mask(mask: np.ndarray) -> dict:
    """A binary (H, W) mask → ``{"size": [H, W], "counts": base64 str}`` as nuImages stores it
    (``pycocotools.mask.encode`` of the Fortran-ordered mask, then base64)."""
    from pycocotools import mask as cocomask

    rle = cocomask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": base64.b64encode(rle["counts"]).decode("ascii")}
