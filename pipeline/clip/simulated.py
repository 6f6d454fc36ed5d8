"""Simulated CLIP labels: ground truth through a noise model. A benchmark instrument only.

``clip.backend: simulated`` lets the learning stages be measured without CLIP weights: the
labels are the prepared store's 2D ground truth (mapped to benchmark classes) corrupted in
the ways MaskCLIP labels are wrong. It never replaces CLIP: it reads ground truth, which a
label-free method must not.

Noise, applied in this order (all deterministic given the seed, the sample id and the view's
frame number, so a view's labels do not depend on batching or on the other views):

1. *Systematic confusions*: fixed class pairs (cabinet→counter, desk→table, ...). The draw is
   made once per object (2D instance id, or the class within the sample when there are no
   instances) and reused in every view, so these errors do not average out across views.
2. *Boundary errors*: labels are resampled through a smooth random displacement field of
   amplitude ``boundary_width · H``, so labels bleed across ground-truth edges.
3. *Wrong blobs*: a smooth noise field marks ``blob_fraction`` of the view; there the label
   is a random class drawn from a coherent class field on CLIP's stride-16 patch grid.
4. Pixels without ground truth take the class field (CLIP labels everything), or stay 255.

``systematic_only`` keeps step 1 (and step 4) only. Confidence is a smooth field around 0.6,
lowered inside blobs and where boundary errors moved a label, clipped to [0.2, 0.85]
(systematic errors stay confident, as CLIP's do).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from pipeline.errors import UserError
from pipeline.vocab import IGNORE, Benchmark

_PATCH = 16  # CLIP ViT-B/16 stride: the scale of the blob class field


DEFAULT_CONFUSIONS: dict[str, tuple[tuple[str, str, float], ...]] = {
    "scannet20": (
        ("cabinet", "counter", 0.35), ("counter", "cabinet", 0.4), ("desk", "table", 0.5), ("table", "desk", 0.3),
        ("sofa", "chair", 0.4), ("chair", "sofa", 0.2), ("door", "wall", 0.45), ("picture", "window", 0.35),
        ("window", "picture", 0.25), ("curtain", "window", 0.3), ("bookshelf", "cabinet", 0.35),
        ("otherfurniture", "cabinet", 0.4), ("refrigerator", "cabinet", 0.35), ("shower curtain", "curtain", 0.5),
        ("bathtub", "sink", 0.3), ("sink", "counter", 0.3), ("bed", "sofa", 0.25),
    ),
    "nuscenes16": (
        ("truck", "car", 0.35), ("car", "truck", 0.15), ("bus", "truck", 0.3), ("trailer", "truck", 0.45),
        ("construction_vehicle", "truck", 0.45), ("motorcycle", "bicycle", 0.35), ("bicycle", "motorcycle", 0.25),
        ("traffic_cone", "barrier", 0.3), ("barrier", "manmade", 0.35), ("other_flat", "driveable_surface", 0.45),
        ("sidewalk", "driveable_surface", 0.3), ("terrain", "vegetation", 0.35), ("vegetation", "terrain", 0.15),
        ("pedestrian", "manmade", 0.15),
    ),
}
"""Per benchmark, the systematic confusions of ``clip.simulated.confusions: null``: class pairs a
CLIP model plausibly mixes up (similar appearance or co-occurrence), as (from, to, rate)."""


@dataclass(frozen=True)
class NoiseModel:
    """Parameters of the simulated backend (see the ``clip.simulated`` config section)."""

    n_classes: int
    confusions: tuple[tuple[int, int, float], ...] = ()
    seed: int = 0
    systematic_only: bool = False
    blob_fraction: float = 0.35
    blob_scale: float = 0.12
    boundary_width: float = 0.05
    ignore_fill: str = "noise"

    @classmethod
    def from_options(cls, options: Mapping[str, Any], bench: Benchmark) -> "NoiseModel":
        """Build from the validated ``clip.simulated`` dict; class names are checked against ``bench``."""
        index = {name: i for i, name in enumerate(bench.class_names)}
        pairs = []
        totals: dict[int, float] = {}
        confusions = options.get("confusions")
        if confusions is None:
            confusions = [{"from": f, "to": t, "rate": r} for f, t, r in DEFAULT_CONFUSIONS.get(bench.name, ())]
        for item in confusions:
            for key in ("from", "to"):
                if item[key] not in index:
                    raise UserError(
                        f"config key clip.simulated.confusions: unknown class {item[key]!r} for benchmark "
                        f"{bench.name!r}; known: {list(bench.class_names)}"
                    )
            src, dst = index[item["from"]], index[item["to"]]
            totals[src] = totals.get(src, 0.0) + float(item["rate"])
            pairs.append((src, dst, float(item["rate"])))
        over = [bench.class_names[c] for c, total in totals.items() if total > 1.0 + 1e-9]
        if over:
            raise UserError(f"config key clip.simulated.confusions: rates of classes {over} sum to more than 1")
        return cls(
            n_classes=bench.n_classes,
            confusions=tuple(pairs),
            seed=int(options.get("seed", 0)),
            systematic_only=bool(options.get("systematic_only", False)),
            blob_fraction=float(options.get("blob_fraction", 0.35)),
            blob_scale=float(options.get("blob_scale", 0.12)),
            boundary_width=float(options.get("boundary_width", 0.05)),
            ignore_fill=str(options.get("ignore_fill", "noise")),
        )


def _unit_hash(*parts: Any) -> float:
    """A uniform number in [0, 1) from the SHA-256 of the parts (stable across runs and platforms)."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") / 2.0**64


def view_rng(seed: int, sample_id: str, frame: int) -> np.random.Generator:
    """The random generator of one view: a function of (seed, sample id, frame number) only."""
    digest = hashlib.sha256(f"clip-sim/{seed}/{sample_id}/{int(frame)}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def smooth_field(rng: np.random.Generator, size: tuple[int, int], scale_px: float) -> np.ndarray:
    """A smooth random field (H, W) float32, about zero mean and unit variance.

    White noise on a grid of cells ``scale_px`` wide, upsampled bicubically.
    """
    from PIL import Image

    height, width = size
    cells_h = max(2, int(np.ceil(height / max(scale_px, 1.0))) + 1)
    cells_w = max(2, int(np.ceil(width / max(scale_px, 1.0))) + 1)
    coarse = rng.standard_normal((cells_h, cells_w)).astype(np.float32)
    field = np.asarray(Image.fromarray(coarse, mode="F").resize((width, height), Image.BICUBIC), dtype=np.float32)
    return (field - field.mean()) / (field.std() + 1e-6)


def systematic_confusion(
    classes: np.ndarray, instances: np.ndarray | None, noise: NoiseModel, sample_id: str
) -> np.ndarray:
    """Apply the per-object class-pair confusions to a class map (H, W) uint8.

    An object is a (instance id, class) pair, or (0, class) without instances; its draw
    depends only on (seed, sample id, instance, class), so it is identical in every view.
    """
    if not noise.confusions:
        return classes.copy()
    table: dict[int, list[tuple[int, float]]] = {}
    for src, dst, rate in noise.confusions:
        table.setdefault(src, []).append((dst, rate))
    inst = np.zeros(classes.shape, np.int64) if instances is None else instances.astype(np.int64)
    keys = inst * 256 + classes.astype(np.int64)
    unique, inverse = np.unique(keys, return_inverse=True)
    target = (unique % 256).astype(np.uint8)
    for i, key in enumerate(unique):
        cls = int(key % 256)
        if cls not in table:
            continue
        u = _unit_hash("confusion", noise.seed, sample_id, int(key // 256), cls)
        cumulative = 0.0
        for dst, rate in table[cls]:
            cumulative += rate
            if u < cumulative:
                target[i] = dst
                break
    return target[inverse.reshape(classes.shape)]


def _displace(labels: np.ndarray, rng: np.random.Generator, amplitude: float, scale_px: float) -> np.ndarray:
    height, width = labels.shape
    dy = smooth_field(rng, (height, width), scale_px) * amplitude
    dx = smooth_field(rng, (height, width), scale_px) * amplitude
    rows = np.clip(np.rint(np.arange(height)[:, None] + dy), 0, height - 1).astype(np.int64)
    cols = np.clip(np.rint(np.arange(width)[None, :] + dx), 0, width - 1).astype(np.int64)
    return labels[rows, cols]


def _class_field(rng: np.random.Generator, size: tuple[int, int], n_classes: int, scale_px: float) -> np.ndarray:
    """Coherent random classes: argmax of smooth per-class fields on the stride-16 grid, nearest-upsampled."""
    from pipeline.images import resize_labels

    height, width = size
    grid = (max(1, round(height / _PATCH)), max(1, round(width / _PATCH)))
    fields = np.stack([smooth_field(rng, grid, scale_px / _PATCH) for _ in range(n_classes)])
    return resize_labels(fields.argmax(axis=0).astype(np.uint8), (width, height))


def simulate_view(
    classes: np.ndarray,
    instances: np.ndarray | None,
    noise: NoiseModel,
    sample_id: str,
    frame: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Simulated CLIP output for one view.

    ``classes`` (H, W) uint8 ground-truth class indices (255 = no ground truth);
    ``instances`` (H, W) integer 2D instance ids (0 = none) or None.
    Returns label (H, W) uint8 and confidence (H, W) float16.
    """
    height, width = classes.shape
    rng = view_rng(noise.seed, sample_id, frame)
    blob_px = noise.blob_scale * height
    confused = systematic_confusion(classes, instances, noise, sample_id)
    class_field = _class_field(rng, (height, width), noise.n_classes, blob_px)
    confidence = 0.6 + 0.1 * smooth_field(rng, (height, width), blob_px)
    label = confused
    if not noise.systematic_only:
        if noise.boundary_width > 0:
            label = _displace(confused, rng, noise.boundary_width * height, blob_px / 2)
            confidence = confidence - 0.15 * (label != confused)
        if noise.blob_fraction > 0:
            blob_field = smooth_field(rng, (height, width), blob_px)
            blobs = blob_field >= np.quantile(blob_field, 1.0 - noise.blob_fraction)
            label = np.where(blobs, class_field, label)
            confidence = confidence - 0.2 * blobs
    if noise.ignore_fill == "noise":
        label = np.where(label == IGNORE, class_field, label)
    return label.astype(np.uint8), np.clip(confidence, 0.2, 0.85).astype(np.float16)


def simulate_views(
    classes: np.ndarray,
    instances: np.ndarray | None,
    frames: Sequence[int],
    noise: NoiseModel,
    sample_id: str,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`simulate_view` over a stack (V, H, W); returns (V, H, W) uint8 and float16."""
    labels, confidences = [], []
    for v, frame in enumerate(frames):
        label, conf = simulate_view(classes[v], None if instances is None else instances[v], noise, sample_id, int(frame))
        labels.append(label)
        confidences.append(conf)
    return np.stack(labels), np.stack(confidences)
