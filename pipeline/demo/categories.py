"""Raw categories of the demo (ScanNet-style raw ids → nyu40) and each class's look.

ScanNet's 2D labels (``label-filt``) hold *raw category ids*, which
``scannetv2-labels.combined.tsv`` maps to nyu40 ids; several raw categories share one nyu40 id
("chair", "office chair", "armchair" → 5). The demo mirrors that: raw ids differ from the nyu40
ids, several raw categories map to each class, and instances of one class pick different raw
categories, so code that reads ``label-filt`` values as nyu40 ids fails visibly.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.vocab import NYU40_NAMES

TSV_COLUMNS: tuple[str, ...] = (
    "id", "raw_category", "category", "count", "nyu40id", "eigen13id", "nyuClass", "nyu40class",
    "eigen13class", "ModelNet40", "ModelNet10", "ShapeNetCore55", "synsetoffset", "wnsynsetid",
    "wnsynsetkey", "mpcat40index", "mpcat40",
)
"""Header of ScanNet's ``scannetv2-labels.combined.tsv`` (tab-separated)."""


@dataclass(frozen=True)
class RawCategory:
    """One row of the label map: raw id (as in ``label-filt``), its name and nyu40 id."""

    raw_id: int
    name: str
    nyu40: int
    count: int
    used: bool = True
    """False for rows that only make the table realistic (never drawn by the generator)."""


RAW_CATEGORIES: tuple[RawCategory, ...] = (
    RawCategory(2, "wall", 1, 8277),
    RawCategory(5, "floor", 2, 4397),
    RawCategory(13, "ceiling", 22, 806),
    RawCategory(7, "cabinet", 3, 1427),
    RawCategory(26, "kitchen cabinet", 3, 310),
    RawCategory(52, "file cabinet", 3, 217),
    RawCategory(11, "bed", 4, 370),
    RawCategory(3, "chair", 5, 4646),
    RawCategory(10, "office chair", 5, 595),
    RawCategory(21, "armchair", 5, 281),
    RawCategory(61, "couch", 6, 502),
    RawCategory(44, "sofa", 6, 96),
    RawCategory(4, "table", 7, 2037),
    RawCategory(22, "coffee table", 7, 258),
    RawCategory(57, "dining table", 7, 145),
    RawCategory(9, "door", 8, 1461),
    RawCategory(71, "bathroom door", 8, 64),
    RawCategory(15, "window", 9, 778),
    RawCategory(17, "bookshelf", 10, 360),
    RawCategory(88, "bookcase", 10, 69),
    RawCategory(14, "picture", 11, 875),
    RawCategory(65, "poster", 11, 124),
    RawCategory(31, "counter", 12, 264),
    RawCategory(92, "kitchen counter", 12, 110),
    RawCategory(12, "desk", 14, 680),
    RawCategory(19, "curtain", 16, 347),
    RawCategory(27, "refrigerator", 24, 154),
    RawCategory(95, "fridge", 24, 22),
    RawCategory(16, "toilet", 33, 256),
    RawCategory(18, "sink", 34, 488),
    RawCategory(103, "bathroom sink", 34, 33),
    RawCategory(37, "bathtub", 36, 144),
    RawCategory(45, "ottoman", 39, 111),
    RawCategory(48, "stand", 39, 82),
    RawCategory(50, "whiteboard", 30, 327),
    RawCategory(25, "lamp", 35, 419, used=False),
    RawCategory(23, "box", 29, 775, used=False),
    RawCategory(20, "book", 23, 318, used=False),
    RawCategory(36, "pillow", 18, 937, used=False),
)
"""The demo's label map. Raw ids never equal their nyu40 id (a test checks it)."""


def raw_ids_for(nyu40: int) -> tuple[int, ...]:
    """Raw ids the generator may draw for an instance of class ``nyu40`` (table order)."""
    ids = tuple(c.raw_id for c in RAW_CATEGORIES if c.nyu40 == nyu40 and c.used)
    if not ids:
        raise KeyError(f"no raw category for nyu40 id {nyu40}")
    return ids


def labels_tsv() -> str:
    """Text of ``scannetv2-labels.combined.tsv`` for the demo: real header, our rows.

    Columns the demo does not know stay empty, as many cells of the real file do.
    """
    lines = ["\t".join(TSV_COLUMNS)]
    for cat in RAW_CATEGORIES:
        row = {
            "id": str(cat.raw_id),
            "raw_category": cat.name,
            "category": cat.name,
            "count": str(cat.count),
            "nyu40id": str(cat.nyu40),
            "nyu40class": NYU40_NAMES[cat.nyu40 - 1],
        }
        lines.append("\t".join(row.get(col, "") for col in TSV_COLUMNS))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------
# Looks: base colour (linear 0..1 RGB), texture kind and texture scale (metres)
# --------------------------------------------------------------------------------------

NOISE, STRIPES, CHECKER, WEAVE = 0, 1, 2, 3
"""Texture kinds understood by :mod:`pipeline.demo.texture`."""


@dataclass(frozen=True)
class Look:
    """How a class looks: base colour (RGB in 0..1), texture kind and texture period (m)."""

    rgb: tuple[float, float, float]
    texture: int
    scale: float


_WOOD = Look((0.62, 0.46, 0.31), STRIPES, 0.07)
_LIGHT_WOOD = Look((0.74, 0.60, 0.42), STRIPES, 0.05)
_WHITE_CERAMIC = Look((0.92, 0.92, 0.94), NOISE, 0.30)

CLASS_LOOKS: dict[int, Look] = {
    1: Look((0.80, 0.77, 0.70), NOISE, 0.35),  # wall
    2: Look((0.55, 0.40, 0.28), STRIPES, 0.12),  # floor (wood; some scenes get tiles)
    22: Look((0.93, 0.93, 0.91), NOISE, 0.50),  # ceiling
    3: _WOOD,  # cabinet  } deliberately alike: cabinet vs counter
    12: _WOOD,  # counter }
    7: _LIGHT_WOOD,  # table } deliberately alike: table vs desk
    14: _LIGHT_WOOD,  # desk  }
    4: Look((0.34, 0.45, 0.72), WEAVE, 0.05),  # bed
    5: Look((0.72, 0.26, 0.20), NOISE, 0.06),  # chair
    6: Look((0.30, 0.56, 0.36), WEAVE, 0.04),  # sofa
    8: Look((0.50, 0.33, 0.21), STRIPES, 0.10),  # door
    9: Look((0.62, 0.78, 0.93), CHECKER, 0.25),  # window (panes)
    10: Look((0.42, 0.29, 0.18), STRIPES, 0.06),  # bookshelf
    11: Look((0.86, 0.62, 0.28), NOISE, 0.04),  # picture
    16: Look((0.74, 0.58, 0.76), STRIPES, 0.09),  # curtain (folds)
    24: Look((0.88, 0.89, 0.91), NOISE, 0.40),  # refrigerator
    30: Look((0.97, 0.97, 0.97), NOISE, 0.60),  # whiteboard (not a benchmark class)
    33: _WHITE_CERAMIC,  # toilet
    34: Look((0.85, 0.87, 0.91), NOISE, 0.25),  # sink
    36: _WHITE_CERAMIC,  # bathtub
    39: Look((0.46, 0.46, 0.52), CHECKER, 0.10),  # otherfurniture
}
UNANNOTATED_LOOK = Look((0.58, 0.52, 0.46), NOISE, 0.08)
"""Look of unannotated clutter (nyu40 0)."""
FLOOR_TILES = Look((0.70, 0.70, 0.66), CHECKER, 0.40)
"""Alternative floor look some scenes draw."""
