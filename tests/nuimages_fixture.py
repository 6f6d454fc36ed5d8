"""A tiny nuImages tree for tests, written with the demo's table builder: overlapping masks
(so draw order matters), surfaces in a chosen table order, object tokens whose table order is
not their sorted order, one null mask, random images. ``categories`` limits category.json."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.datasets.nuimages_masks import encode_mask
from pipeline.demo_nuimages.tables import Annotation, ImageRecord, build_tables
from pipeline.demo_nuscenes.files import write_jpeg

OBJECTS = ("vehicle.car", "human.pedestrian.adult", "movable_object.barrier", "vehicle.truck", "vehicle.bicycle", "animal")


@dataclass(frozen=True)
class NuImagesFixture:
    root: Path
    samples: dict[str, list[str]]  # split -> sample tokens
    null_object: str  # token of the object_ann with a null mask


def _blob(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    rx, ry = rng.uniform(4, w / 2), rng.uniform(3, h / 2)
    return ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1.0


def write_nuimages(root: Path, seed: int = 0, size: tuple[int, int] = (48, 32), per_split: int = 3,
                   categories: tuple[str, ...] | None = None) -> NuImagesFixture:
    """Write ``root`` with v1.0-train and v1.0-val (``per_split`` samples each)."""
    rng = np.random.default_rng(seed)
    records, samples, null_object = [], {"train": [], "val": []}, ""
    k = np.array([[40.0, 0, size[0] / 2], [0, 40.0, size[1] / 2], [0, 0, 1]])
    for split in ("train", "val"):
        for i in range(per_split):
            sample, sd = f"{split}{i:02d}".ljust(32, "s"), f"{split}{i:02d}".ljust(32, "d")
            filename = f"samples/CAM_FRONT/log__CAM_FRONT__{1000 + i}.jpg"
            filename = filename.replace("log", f"log-{split}")
            image = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            (root / filename).parent.mkdir(parents=True, exist_ok=True)
            write_jpeg(root / filename, image, 90)
            anns = [Annotation("surface", f"{sd[:8]}surf{j}".ljust(32, "0"), name, encode_mask(_blob(rng, size)))
                    for j, name in enumerate(("flat.driveable_surface", "vehicle.ego", "flat.driveable_surface"))]
            for j in range(6):
                token = f"{'zyxwvu'[j]}{sd[:8]}obj".ljust(32, "0")  # table order is the reverse of sorted order
                mask = None if (split, i, j) == ("train", 0, 2) else encode_mask(_blob(rng, size))
                if mask is None:
                    null_object = token
                anns.append(Annotation("object", token, OBJECTS[(i + j) % len(OBJECTS)], mask, (0, 0, 1, 1)))
            records.append(ImageRecord(split, f"log-{split}", "n008", "2018-08-01", "boston-seaport", sample, sd, "CAM_FRONT",
                                       1000 + i, filename, size[0], size[1], (1.0, 0.0, 1.5), (0.5, -0.5, 0.5, -0.5),
                                       k.tolist(), (0.01, -0.02, 0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0), anns))
            samples[split].append(sample)
    for version, tables in build_tables(seed, records).items():
        (root / version).mkdir(parents=True)
        if categories is not None:
            tables["category"] = [c for c in tables["category"] if c["name"] in categories]
        for table, rows in tables.items():
            (root / version / f"{table}.json").write_text(json.dumps(rows))
    return NuImagesFixture(root, samples, null_object)
