"""Class vocabularies: the one place that knows label ids and their meaning.

Datasets keep their raw ids in the prepared stores (nyu40 for ScanNet points, ScanNet raw
category ids for ``label-filt`` images). Everything downstream maps raw ids to a benchmark's
contiguous class indices here, so a vocabulary change never reruns ``prepare``.

Conventions
-----------
* class index: ``0 .. n_classes-1`` (uint8), :data:`IGNORE` (255) for "no class".
* a lookup table (LUT) maps a raw id to a class index; ids beyond the table map to IGNORE.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

IGNORE: int = 255
"""Class index meaning 'no label / not evaluated'."""

NYU40_NAMES: tuple[str, ...] = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window",
    "bookshelf", "picture", "counter", "blinds", "desk", "shelves", "curtain", "dresser",
    "pillow", "mirror", "floor mat", "clothes", "ceiling", "books", "refrigerator",
    "television", "paper", "towel", "shower curtain", "box", "whiteboard", "person",
    "night stand", "toilet", "sink", "lamp", "bathtub", "bag", "otherstructure",
    "otherfurniture", "otherprop",
)
"""NYU40 names; nyu40 id ``i`` (1-based) is ``NYU40_NAMES[i - 1]``; id 0 is unannotated."""

SCANNET20_NYU40_IDS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)
"""The 20 classes of the ScanNet v2 benchmark, as nyu40 ids, in benchmark order."""


NUSCENES16_NAMES: tuple[str, ...] = (
    "barrier", "bicycle", "bus", "car", "construction_vehicle", "motorcycle", "pedestrian",
    "traffic_cone", "trailer", "truck", "driveable_surface", "other_flat", "sidewalk", "terrain",
    "manmade", "vegetation",
)
"""The 16 classes of the nuScenes lidarseg benchmark in benchmark order; class ``c`` has
benchmark id ``c + 1`` (what the official ``_lidarseg.bin`` files hold; 0 = ignore)."""

NUSCENES_FINE_TO_CLASS: dict[str, str | None] = {
    "noise": None,
    "animal": None,
    "human.pedestrian.adult": "pedestrian",
    "human.pedestrian.child": "pedestrian",
    "human.pedestrian.construction_worker": "pedestrian",
    "human.pedestrian.personal_mobility": None,
    "human.pedestrian.police_officer": "pedestrian",
    "human.pedestrian.stroller": None,
    "human.pedestrian.wheelchair": None,
    "movable_object.barrier": "barrier",
    "movable_object.debris": None,
    "movable_object.pushable_pullable": None,
    "movable_object.trafficcone": "traffic_cone",
    "static_object.bicycle_rack": None,
    "vehicle.bicycle": "bicycle",
    "vehicle.bus.bendy": "bus",
    "vehicle.bus.rigid": "bus",
    "vehicle.car": "car",
    "vehicle.construction": "construction_vehicle",
    "vehicle.emergency.ambulance": None,
    "vehicle.emergency.police": None,
    "vehicle.motorcycle": "motorcycle",
    "vehicle.trailer": "trailer",
    "vehicle.truck": "truck",
    "flat.driveable_surface": "driveable_surface",
    "flat.other": "other_flat",
    "flat.sidewalk": "sidewalk",
    "flat.terrain": "terrain",
    "static.manmade": "manmade",
    "static.other": None,
    "static.vegetation": "vegetation",
    "vehicle.ego": None,
}
"""The 32 nuScenes fine (lidarseg) classes by *name*, in the order of the real ``category.json``
indices 0..31, → their ``nuscenes16`` class name (None = ignore). Map by name, never by index:
the lidarseg instructions list some indices wrongly (sidewalk, terrain, other flat, static
other, vegetation)."""


NUIMAGES_CATEGORIES: tuple[str, ...] = tuple(
    name for name in NUSCENES_FINE_TO_CLASS if name not in ("noise", "static.other") and not name.startswith(("flat.", "static."))
) + ("flat.driveable_surface",)
"""The 25 category names of nuImages' ``category.json``: the 23 object classes of nuScenes, then
``vehicle.ego`` and ``flat.driveable_surface`` (the devkit numbers them 31 and 24)."""

NUIMAGES_SCORED: tuple[str, ...] = (
    "barrier", "bicycle", "bus", "car", "construction_vehicle", "motorcycle", "pedestrian", "traffic_cone", "trailer",
    "truck", "driveable_surface",
)
"""The 11 ``nuscenes16`` classes that nuImages annotates (its object classes and driveable
surface); other_flat, sidewalk, terrain, manmade and vegetation are never annotated."""


@dataclass(frozen=True)
class Benchmark:
    """An evaluation vocabulary: class names and the raw-id → class-index mapping.

    ``raw_ids[c]`` is the raw id of class ``c`` (used for exports such as the ScanNet
    benchmark files, which want nyu40 ids). ``scored`` are the class indices that mIoU averages
    over (all classes unless the protocol says otherwise, e.g. ``nuimages11``); every class is
    still trained, predicted and prompted.
    """

    name: str
    class_names: tuple[str, ...]
    raw_ids: tuple[int, ...]
    lut: np.ndarray = field(repr=False)  # (max_raw_id + 1,) uint8
    scored: tuple[int, ...] | None = None

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def scored_classes(self) -> tuple[int, ...]:
        """Class indices that mIoU averages over (all by default)."""
        return tuple(range(self.n_classes)) if self.scored is None else self.scored

    def map(self, raw: np.ndarray) -> np.ndarray:
        """Map raw ids (any integer dtype, any shape) to class indices (uint8, same shape)."""
        raw = np.asarray(raw)
        out = np.full(raw.shape, IGNORE, dtype=np.uint8)
        valid = (raw >= 0) & (raw < self.lut.shape[0])
        out[valid] = self.lut[raw[valid].astype(np.int64)]
        return out

    def to_raw(self, classes: np.ndarray, ignore_raw: int = 0) -> np.ndarray:
        """Map class indices back to raw ids (int32); IGNORE becomes ``ignore_raw``."""
        table = np.full(256, ignore_raw, dtype=np.int32)
        table[: self.n_classes] = self.raw_ids
        return table[np.asarray(classes, dtype=np.uint8)]


def _benchmark(name: str, names: Sequence[str], raw_ids: Sequence[int], max_raw: int, scored: Sequence[str] | None = None) -> Benchmark:
    lut = np.full(max_raw + 1, IGNORE, dtype=np.uint8)
    for index, raw in enumerate(raw_ids):
        lut[raw] = index
    indices = None if scored is None else tuple(list(names).index(n) for n in scored)
    return Benchmark(name, tuple(names), tuple(int(r) for r in raw_ids), lut, indices)


_BENCHMARKS: dict[str, Benchmark] = {
    "scannet20": _benchmark(
        "scannet20",
        [NYU40_NAMES[i - 1] for i in SCANNET20_NYU40_IDS],
        SCANNET20_NYU40_IDS,
        max_raw=40,
    ),
    "nuscenes16": _benchmark("nuscenes16", NUSCENES16_NAMES, range(1, len(NUSCENES16_NAMES) + 1), max_raw=len(NUSCENES16_NAMES)),
    # nuImages' protocol (docs/method.md, "nuImages"): the 16 classes are prompted, trained and
    # predicted; mIoU averages over the 11 that nuImages annotates; unannotated pixels are ignored.
    "nuimages11": _benchmark("nuimages11", NUSCENES16_NAMES, range(1, len(NUSCENES16_NAMES) + 1), max_raw=len(NUSCENES16_NAMES),
                             scored=NUIMAGES_SCORED),
}

NUSCENES_CLASS_SPACES: tuple[str, ...] = ("nuscenes16", "nuimages11")
"""Benchmarks over the 16 nuScenes classes (fine indices map to them by name)."""


def benchmark(name: str) -> Benchmark:
    """Return the benchmark vocabulary called ``name`` (e.g. ``"scannet20"``)."""
    try:
        return _BENCHMARKS[name]
    except KeyError:
        raise KeyError(f"unknown benchmark vocabulary {name!r}; known: {sorted(_BENCHMARKS)}") from None


def read_scannet_label_map(path: str | Path, target: str = "nyu40id") -> dict[int, int]:
    """Read ``scannetv2-labels.combined.tsv``: raw category id (column ``id``) → ``target`` id.

    Rows whose target is empty map to 0 (unannotated). Raises ``ValueError`` naming the file
    when the header lacks a column or a value is not an integer.
    """
    path = Path(path)
    mapping: dict[int, int] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        if reader.fieldnames is None or "id" not in reader.fieldnames or target not in reader.fieldnames:
            raise ValueError(f"{path}: header must contain columns 'id' and {target!r}, found {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            try:
                raw = int(row["id"])
                value = int(row[target]) if row[target].strip() else 0
            except (TypeError, ValueError):
                raise ValueError(f"{path}:{line}: non-integer 'id' or {target!r} value") from None
            mapping[raw] = value
    return mapping


def label_map_lut(mapping: Mapping[int, int], default: int = 0) -> np.ndarray:
    """Turn a raw-id → id mapping into a LUT (int32); ids not in ``mapping`` give ``default``."""
    size = max(mapping, default=0) + 1
    lut = np.full(size, default, dtype=np.int32)
    for raw, value in mapping.items():
        lut[raw] = value
    return lut


def apply_lut(lut: np.ndarray, raw: np.ndarray, default: int = 0) -> np.ndarray:
    """Apply ``lut`` to integer array ``raw``; ids outside the table give ``default``."""
    raw = np.asarray(raw).astype(np.int64, copy=False)
    out = np.full(raw.shape, default, dtype=lut.dtype)
    valid = (raw >= 0) & (raw < lut.shape[0])
    out[valid] = lut[raw[valid]]
    return out


@dataclass(frozen=True)
class PromptVocabulary:
    """What the CLIP text classifier scores: prompt names and the class each maps to.

    Row ``i`` of the classifier is ``names[i]``; ``to_class[i]`` is its benchmark class index
    or :data:`IGNORE` for prompt-only classes (e.g. "ceiling"). Several rows may map to one
    class (synonyms).
    """

    benchmark: Benchmark
    names: tuple[str, ...]
    to_class: np.ndarray  # (n_prompts,) uint8

    def as_dict(self) -> dict:
        """JSON-able description, recorded in store metadata."""
        return {
            "benchmark": self.benchmark.name,
            "class_names": list(self.benchmark.class_names),
            "prompts": list(self.names),
            "prompt_to_class": [int(c) for c in self.to_class],
        }

    def map(self, prompt_index: np.ndarray) -> np.ndarray:
        """Prompt row indices (any shape) → class indices (uint8)."""
        return self.to_class[np.asarray(prompt_index, dtype=np.int64)]


_NUSCENES_PROMPTS: dict[str, tuple[str, ...]] = {
        "barrier": ("barrier", "traffic barrier", "concrete barrier"),
        "bicycle": ("bicycle", "bike"),
        "car": ("car", "sedan", "suv"),
        "construction_vehicle": ("construction vehicle", "excavator", "crane truck"),
        "motorcycle": ("motorcycle", "scooter"),
        "pedestrian": ("pedestrian", "person"),
        "truck": ("truck", "pickup truck"),
        "driveable_surface": ("road", "driveable surface", "street"),
        "other_flat": ("traffic island", "curb", "rail track"),
        "sidewalk": ("sidewalk", "pavement"),
        "terrain": ("grass", "terrain", "soil"),
        "manmade": ("building", "wall", "pole", "traffic sign", "fence"),
        "vegetation": ("tree", "vegetation", "bush"),
}
DEFAULT_PROMPTS: dict[str, dict[str, tuple[str, ...]]] = {
    "scannet20": {"otherfurniture": ("other furniture",)},
    "nuscenes16": _NUSCENES_PROMPTS,
    "nuimages11": _NUSCENES_PROMPTS,
}
"""Per benchmark, the prompt names (synonyms) of classes whose own name prompts poorly; the config's
``vocabulary.prompts`` overrides them class by class."""

DEFAULT_EXTRA_PROMPTS: dict[str, dict[str, tuple[str, ...]]] = {
    "scannet20": {"ceiling": ("ceiling",)},
    "nuscenes16": {"sky": ("sky",)},
    "nuimages11": {"sky": ("sky",)},
}
"""Per benchmark, prompt-only classes scored by CLIP and mapped to ignore (things every scene shows
that no class covers); ``vocabulary.extra_prompts`` overrides them by name (an empty list drops one)."""


def prompt_vocabulary(
    benchmark_name: str,
    prompts: Mapping[str, Sequence[str]] | None = None,
    extra_prompts: Mapping[str, Sequence[str]] | None = None,
) -> PromptVocabulary:
    """Build the prompt vocabulary from the ``vocabulary`` config section.

    ``prompts`` maps a benchmark class name to its prompt names (synonyms), over the benchmark's
    :data:`DEFAULT_PROMPTS`; other classes are prompted by their own name with ``_`` read as a
    space (``traffic_cone`` → "traffic cone"); an empty list drops the class from prompting.
    ``extra_prompts`` maps prompt-only class names to their prompt names, over
    :data:`DEFAULT_EXTRA_PROMPTS` (an empty list drops one), all scored but mapped to
    :data:`IGNORE`. Raises ``ValueError`` naming the key on unknown classes or an empty vocabulary.
    """
    bench = benchmark(benchmark_name)
    prompts = dict(prompts or {})
    unknown = sorted(set(prompts) - set(bench.class_names))
    if unknown:
        raise ValueError(
            f"vocabulary.prompts: unknown class names {unknown} for benchmark {bench.name!r}; known: {list(bench.class_names)}"
        )
    extra_prompts = dict(extra_prompts or {})
    clash = sorted(set(extra_prompts) & set(bench.class_names))
    if clash:
        raise ValueError(
            f"vocabulary.extra_prompts: {clash} are classes of benchmark {bench.name!r}, extra prompts map to ignore; "
            "give their synonyms under vocabulary.prompts"
        )
    dropped = sorted(k for k, v in extra_prompts.items() if not v and k not in DEFAULT_EXTRA_PROMPTS.get(bench.name, {}))
    if dropped:
        raise ValueError(
            f"vocabulary.extra_prompts: an empty list drops a default extra prompt, but {dropped} are none; "
            f"defaults: {sorted(DEFAULT_EXTRA_PROMPTS.get(bench.name, {}))}"
        )
    prompts = {**DEFAULT_PROMPTS.get(bench.name, {}), **prompts}
    names: list[str] = []
    to_class: list[int] = []
    for index, class_name in enumerate(bench.class_names):
        for prompt in prompts.get(class_name, [class_name.replace("_", " ")]):
            names.append(str(prompt))
            to_class.append(index)
    if not names:
        raise ValueError("vocabulary: empty vocabulary (every class has an empty prompt list)")
    for extra, synonyms in {**DEFAULT_EXTRA_PROMPTS.get(bench.name, {}), **extra_prompts}.items():
        for prompt in synonyms:
            names.append(str(prompt))
            to_class.append(IGNORE)
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"vocabulary: prompt names used twice: {duplicates}")
    return PromptVocabulary(bench, tuple(names), np.asarray(to_class, dtype=np.uint8))


LABEL_SPACES = ("nyu40", "scannet-raw", "nuscenes-lidarseg", "nuimages")
"""Raw label spaces a prepared store may declare (root attribute ``label_spaces``)."""


def nuscenes_fine_lut(categories: Sequence[Sequence], bench: Benchmark) -> np.ndarray:
    """LUT nuScenes fine (lidarseg) index → ``nuscenes16`` class index (uint8, IGNORE for the
    fine classes outside the benchmark and for indices not in ``categories``).

    ``categories`` are ``[index, name]`` pairs (the prepared store's root attribute
    ``lidarseg_categories``, from ``category.json``); the mapping goes by name. An unknown name
    raises ``ValueError``.
    """
    if bench.name not in NUSCENES_CLASS_SPACES:
        raise ValueError(f"no mapping from nuScenes/nuImages fine classes to benchmark {bench.name!r}; use one of {NUSCENES_CLASS_SPACES}")
    if not categories:
        raise ValueError("label space 'nuscenes-lidarseg' needs the lidarseg categories ([index, name] pairs)")
    lut = np.full(max(int(i) for i, _ in categories) + 1, IGNORE, dtype=np.uint8)
    for index, name in categories:
        if name not in NUSCENES_FINE_TO_CLASS:
            raise ValueError(f"unknown nuScenes fine class {name!r} (index {index}); known: {sorted(NUSCENES_FINE_TO_CLASS)}")
        target = NUSCENES_FINE_TO_CLASS[name]
        lut[int(index)] = IGNORE if target is None else bench.class_names.index(target)
    return lut


def ground_truth_lut(
    space: str,
    bench: Benchmark,
    label_map: Sequence[Sequence[int]] | None = None,
    categories: Sequence[Sequence] | None = None,
) -> np.ndarray:
    """LUT raw id (of label space ``space``) → benchmark class index (uint8, IGNORE elsewhere).

    ``nyu40``: direct. ``scannet-raw``: ScanNet raw category ids, first mapped to nyu40 by
    ``label_map`` (pairs ``[raw_id, nyu40_id]``, as the prepared store's root attribute
    ``label_map`` holds them), then to the benchmark. ``nuscenes-lidarseg``: fine indices, mapped
    by their names in ``categories`` (:func:`nuscenes_fine_lut`). ``nuimages``: the fine indices
    of ``get_segmentation`` (``categories`` = the store's ``nuimages_categories``), mapped the same way.
    """
    if space in ("nuscenes-lidarseg", "nuimages"):
        return nuscenes_fine_lut(categories or (), bench)
    if space == "nyu40":
        if bench.name != "scannet20":
            raise ValueError(f"no mapping from nyu40 to benchmark {bench.name!r}")
        return bench.lut.copy()
    if space == "scannet-raw":
        if not label_map:
            raise ValueError("label space 'scannet-raw' needs the raw -> nyu40 label map")
        raw_to_nyu = label_map_lut({int(r): int(n) for r, n in label_map})
        return bench.map(raw_to_nyu)
    raise ValueError(f"unknown label space {space!r}; known: {LABEL_SPACES}")


def prepared_ground_truth_luts(store_attrs: Mapping, bench: Benchmark) -> dict[str, np.ndarray]:
    """LUTs for a prepared store's point and view labels: ``{"points": lut, "views": lut}``.

    Reads the root attributes ``label_spaces`` ({"points": space, "views": space}),
    ``label_map`` and ``lidarseg_categories`` (``nuimages_categories`` for space ``nuimages``);
    entries whose space is absent are left out.
    """
    spaces = store_attrs.get("label_spaces", {})
    return {
        which: ground_truth_lut(space, bench, store_attrs.get("label_map"),
                                store_attrs.get("nuimages_categories" if space == "nuimages" else "lidarseg_categories"))
        for which, space in spaces.items()
        if space
    }
