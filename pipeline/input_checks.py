"""Input checks that count instead of failing: one table for adapters, store metadata, manifest and report.

A dataset adapter refuses inputs that would make a result wrong (an :class:`~pipeline.errors.InputFileError`
naming the file); inputs that may be fine but change what the pipeline does are *counted*: the
adapter puts ``{name: count}`` in the sample attribute ``input_checks``, ``prepare`` sums them
into the store's root attribute ``input_checks`` (plus the dataset-level counts) and logs one
warning line, the manifest has one column per sample-level counter and the pseudo-label report
lists the non-zero ones. The policy, errors included, is the table "Input checks" of
``docs/data-layout.md``; :data:`COUNTED` is its counted half.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping


@dataclass(frozen=True)
class CountedCheck:
    """One counter: ``name`` (the key in ``input_checks``), what it counts (``unit``), whether it
    is per ``sample`` or per ``dataset`` (split file), and what the pipeline does about it."""

    name: str
    unit: str
    level: str
    action: str


COUNTED: tuple[CountedCheck, ...] = (
    CountedCheck("invalid_pose_views", "views", "sample", "view skipped (pose/N.txt non-finite or not rigid)"),
    CountedCheck("depth_without_color", "frames", "sample", "frame skipped (depth/N.png without color/N.jpg)"),
    CountedCheck("missing_label_views", "views", "sample", "view kept, its 2D labels 0 = unannotated (no label-filt/N.png)"),
    CountedCheck("unmapped_raw_label_pixels", "pixels", "sample",
                 "pixel kept, evaluated as unannotated (label-filt raw id absent from the label map)"),
    CountedCheck("labels_outside_nyu40", "vertices", "sample", "vertex kept, ignored in evaluation (labels.ply id > 40)"),
    CountedCheck("mesh_without_faces", "samples", "sample", "no back-face test in project (the ply has no faces)"),
    CountedCheck("mesh_without_colors", "samples", "sample", "3D colour input is grey 128 (the ply has no red/green/blue)"),
    CountedCheck("null_masks", "annotations", "sample", "annotation skipped, its pixels keep what was drawn before (nuImages mask null)"),
    CountedCheck("split_duplicates", "lines", "dataset", "scene read once (listed more than once in its split file)"),
)
"""Every counter, in the order the manifest columns and the report list them."""

SAMPLE_COUNTERS: tuple[str, ...] = tuple(c.name for c in COUNTED if c.level == "sample")
"""Counters an adapter reports per sample (the manifest's columns)."""


def total(counts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """Sum ``{name: count}`` mappings key by key (keys in :data:`COUNTED` order, unknown keys last)."""
    out: dict[str, int] = {}
    for item in counts:
        for name, value in item.items():
            out[name] = out.get(name, 0) + int(value)
    order = {c.name: i for i, c in enumerate(COUNTED)}
    return dict(sorted(out.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))


def describe(counts: Mapping[str, int]) -> str:
    """``"3 unmapped_raw_label_pixels, 1 mesh_without_faces"``: the non-zero counts, or ``""``."""
    return ", ".join(f"{int(v)} {k}" for k, v in total([counts]).items() if int(v))
