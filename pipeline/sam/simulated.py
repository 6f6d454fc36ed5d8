"""The ``simulated`` SAM backend: masks and features from ground-truth 2D instances.

A benchmark instrument for the learning stages when no SAM weights are at hand, never a
substitute for SAM. Per view, with a generator seeded by (seed, sample id, view):

* **object masks**: one per ground-truth instance (``views/instance`` > 0, at least ``min_area``
  pixels); with ``merge_prob`` an instance is merged with an adjacent one into one mask
  (under-segmentation);
* **part masks**: with ``split_prob`` an instance also gets 2..``max_parts`` nested parts (slabs
  along a random direction); then with ``drop_object_prob`` its object mask is dropped
  (over-segmentation); with ``subpart_prob`` a part gets two sub-part slabs nested inside it
  (SAM's third level: whole, part, sub-part);
* **boundary jitter**: each mask grows or shrinks by up to ``jitter_px`` pixels, following a
  smooth random field;
* **spurious masks**: a Poisson(``spurious_per_view``) number of random ellipses;
* **features**: every pixel gets ``normalise(w * class_code + (1 - w) * instance_code)`` (unit
  random 256-d codes: class codes shared by all samples, instance codes per sample and instance
  id; ``w = class_weight``; pixels without instance use the class code alone), averaged over the
  pixels of each valid SAM cell (:func:`pipeline.camera.sam_cell_index`), plus Gaussian noise of
  norm ≈ ``feature_noise``.

``mode`` gives the defaults of the five mask-structure probabilities (:data:`MODE_DEFAULTS`):
``merge`` (the original model: an instance is merged a third as often as it is split) or ``oversegment``
(real-SAM-like: parts, sub-parts and part-only objects common, merges rare). An option given
explicitly (not null) overrides its mode value.

``zero_noise: true`` gives exactly one mask per instance id > 0 (no size limit, no jitter, no
merges, parts or spurious masks; scores 1) and noise-free features.
"""

from __future__ import annotations

import zlib
from typing import Any, Mapping

import numpy as np

from pipeline.camera import sam_cell_index, sam_valid_grid
from pipeline.images import resize_labels
from pipeline.stores.sam_codecs import FEATURE_DIM
from pipeline.sam.masks import ViewMasks

MODE_DEFAULTS: dict[str, dict[str, float | int]] = {
    # the original model; its values and random draws are unchanged
    "merge": {"merge_prob": 0.1, "split_prob": 0.3, "max_parts": 3, "drop_object_prob": 0.2, "subpart_prob": 0.0},
    # real SAM over-segments far more often than it merges (docs/method.md, "The simulated backend")
    "oversegment": {"merge_prob": 0.02, "split_prob": 0.7, "max_parts": 4, "drop_object_prob": 0.4, "subpart_prob": 0.3},
}
"""``sam.simulated.mode`` → the values its null (not given) mask-structure options take."""

DEFAULT_MODE = "merge"

ZERO_NOISE = {
    "merge_prob": 0.0,
    "split_prob": 0.0,
    "drop_object_prob": 0.0,
    "subpart_prob": 0.0,
    "jitter_px": 0,
    "spurious_per_view": 0.0,
    "min_area": 0,
    "feature_noise": 0.0,
}


def effective_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The ``sam.simulated`` options as used: ``mode`` (default ``merge``) fills the mask-structure
    options that are missing or null, explicit values win; then ``zero_noise`` overrides everything."""
    opts = dict(options)
    mode = opts.get("mode") or DEFAULT_MODE
    if mode not in MODE_DEFAULTS:
        raise ValueError(f"sam.simulated.mode {mode!r}: expected one of {sorted(MODE_DEFAULTS)}")
    opts["mode"] = mode
    for key, value in MODE_DEFAULTS[mode].items():
        if opts.get(key) is None:
            opts[key] = value
    if opts.get("zero_noise"):
        opts.update(ZERO_NOISE)
    return opts


def view_rng(seed: int, sample_id: str, view: int) -> np.random.Generator:
    """The random generator of one view (independent of shard membership and order)."""
    return np.random.default_rng([int(seed), zlib.crc32(sample_id.encode()), int(view)])


def _code(seed: int, kind: int, *key: int) -> np.ndarray:
    vec = np.random.default_rng([int(seed), kind, *[int(k) for k in key]]).standard_normal(FEATURE_DIM)
    return vec / np.linalg.norm(vec)


def _shift_max(mask: np.ndarray, r: int, axis: int) -> np.ndarray:
    out = mask.copy()
    n = mask.shape[axis]
    for d in range(1, r + 1):
        if d >= n:
            break
        lo = [slice(None)] * 2
        hi = [slice(None)] * 2
        lo[axis], hi[axis] = slice(0, n - d), slice(d, n)
        out[tuple(lo)] |= mask[tuple(hi)]
        out[tuple(hi)] |= mask[tuple(lo)]
    return out


def dilate(mask: np.ndarray, r: int) -> np.ndarray:
    """Binary dilation of (H, W) bool by a (2r+1)^2 square."""
    return _shift_max(_shift_max(mask, r, 0), r, 1) if r > 0 else mask.copy()


def erode(mask: np.ndarray, r: int) -> np.ndarray:
    """Binary erosion of (H, W) bool by a (2r+1)^2 square (outside the image counts as background)."""
    if r <= 0:
        return mask.copy()
    padded = np.pad(~mask, r, constant_values=True)
    return ~dilate(padded, r)[r:-r, r:-r]


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], cell: int = 16) -> np.ndarray:
    """A smooth random field (H, W) float32: Gaussian values on a coarse grid, bilinearly upsampled."""
    h, w = shape
    gh, gw = h // cell + 2, w // cell + 2
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    ys = np.arange(h) / cell
    xs = np.arange(w) / cell
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    g00 = grid[y0[:, None], x0[None, :]]
    g01 = grid[y0[:, None], x0[None, :] + 1]
    g10 = grid[y0[:, None] + 1, x0[None, :]]
    g11 = grid[y0[:, None] + 1, x0[None, :] + 1]
    return (g00 * (1 - fy) * (1 - fx) + g01 * (1 - fy) * fx + g10 * fy * (1 - fx) + g11 * fy * fx).astype(np.float32)


def jitter(mask: np.ndarray, r: int, rng: np.random.Generator) -> np.ndarray:
    """Move the boundary of ``mask`` out (field > 0) or in (field < 0) by up to ``r`` pixels."""
    if r <= 0:
        return mask
    field = smooth_field(rng, mask.shape)
    out = np.where(field > 0, dilate(mask, r), erode(mask, r))
    return out if out.any() else mask


def _adjacent(instance: np.ndarray, a: int, b: int) -> bool:
    grown = dilate(instance == a, 1)
    return bool(np.any(grown & (instance == b)))


def _split(mask: np.ndarray, parts: int, rng: np.random.Generator) -> list[np.ndarray]:
    ys, xs = np.nonzero(mask)
    angle = rng.uniform(0, np.pi)
    proj = xs * np.cos(angle) + ys * np.sin(angle)
    cuts = np.quantile(proj, np.linspace(0, 1, parts + 1)[1:-1])
    which = np.searchsorted(cuts, proj, side="right")
    out = []
    for p in range(parts):
        part = np.zeros_like(mask)
        sel = which == p
        part[ys[sel], xs[sel]] = True
        if part.any():
            out.append(part)
    return out


def _ellipse(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    h, w = shape
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    ry, rx = rng.uniform(0.05, 0.2) * h, rng.uniform(0.05, 0.2) * w
    yy, xx = np.mgrid[:h, :w]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def _subparts(parts: list[np.ndarray], prob: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Two sub-part slabs for each part with probability ``prob`` (no draws when ``prob`` is 0, so
    the merge mode's masks are those of the original model)."""
    out: list[np.ndarray] = []
    if prob <= 0:
        return out
    for part in parts:
        if rng.random() < prob:
            sub = _split(part, 2, rng)
            if len(sub) > 1:
                out.extend(sub)
    return out


def simulate_masks(
    instance: np.ndarray, options: Mapping[str, Any], rng: np.random.Generator, nesting_order: str
) -> ViewMasks:
    """Nested masks of one view from its instance map (Hl, Wl) at label resolution (module doc)."""
    opts = effective_options(options)
    shape = instance.shape
    ids, counts = np.unique(instance[instance > 0], return_counts=True)
    ids = [int(i) for i, c in zip(ids, counts) if c >= int(opts["min_area"])]
    # under-segmentation: merge some instances with an adjacent one
    group = {i: i for i in ids}
    if opts["merge_prob"] > 0:
        for i in rng.permutation(ids):
            i = int(i)
            if group[i] != i or rng.random() >= opts["merge_prob"]:
                continue
            partners = [j for j in ids if j != i and group[j] == j and _adjacent(instance, i, j)]
            partners = [j for j in partners if sum(1 for k in ids if group[k] == j) == 1]
            if partners:
                group[int(rng.choice(partners))] = i
    masks: list[np.ndarray] = []
    scores: list[float] = []
    noisy = not options.get("zero_noise")
    for root in sorted(set(group.values())):
        members = [i for i in ids if group[i] == root]
        obj = np.isin(instance, members)
        keep_object = True
        if len(members) == 1 and opts["split_prob"] > 0 and rng.random() < opts["split_prob"]:
            parts = _split(obj, int(rng.integers(2, int(opts["max_parts"]) + 1)), rng)
            if len(parts) > 1:
                parts = parts + _subparts(parts, float(opts["subpart_prob"]), rng)
                masks.extend(parts)
                scores.extend(rng.uniform(0.85, 1.0, len(parts)).tolist())
                keep_object = rng.random() >= opts["drop_object_prob"]
        if keep_object:
            masks.append(obj)
            scores.append(float(rng.uniform(0.85, 1.0)) if noisy else 1.0)
    for _ in range(int(rng.poisson(opts["spurious_per_view"])) if opts["spurious_per_view"] > 0 else 0):
        masks.append(_ellipse(shape, rng))
        scores.append(float(rng.uniform(0.6, 0.9)))
    masks = [jitter(m, int(opts["jitter_px"]), rng) for m in masks]
    order = np.argsort(-np.asarray(scores), kind="stable") if scores else np.zeros(0, int)
    stack = np.stack([masks[i] for i in order]) if masks else np.zeros((0, *shape), bool)
    iou = np.asarray([scores[i] for i in order], np.float32)
    return ViewMasks.from_masks(stack, iou, iou.copy(), nesting_order)


def simulate_features(
    instance: np.ndarray,
    label: np.ndarray,
    sample_id: str,
    options: Mapping[str, Any],
    seed: int,
    rng: np.random.Generator,
    long_side: int = 1024,
    patch: int = 16,
) -> np.ndarray:
    """Feature map (Hc, Wc, 256) float32 of one view from its instance and raw label maps (H, W),
    at the resolution SAM would see (the working resolution)."""
    opts = effective_options(options)
    h, w = instance.shape
    rows, cols = sam_valid_grid((w, h), long_side, patch)
    col_of_x = sam_cell_index(np.stack([np.arange(w), np.zeros(w, int)], axis=1), (w, h), long_side, patch)[:, 0]
    row_of_y = sam_cell_index(np.stack([np.zeros(h, int), np.arange(h)], axis=1), (w, h), long_side, patch)[:, 1]
    cell = (row_of_y[:, None] * cols + col_of_x[None, :]).ravel()
    combo = instance.astype(np.int64).ravel() * (1 << 17) + label.astype(np.int64).ravel()
    keys, which = np.unique(combo, return_inverse=True)
    weight = float(opts["class_weight"])
    codes = np.empty((keys.size, FEATURE_DIM), np.float64)
    sample_key = zlib.crc32(sample_id.encode())
    for k, key in enumerate(keys):
        inst, lab = int(key) >> 17, int(key) & ((1 << 17) - 1)
        vec = _code(seed, 11, lab)
        if inst > 0:
            vec = weight * vec + (1.0 - weight) * _code(seed, 7, sample_key, inst)
        codes[k] = vec / max(np.linalg.norm(vec), 1e-12)
    hist = np.bincount(cell * keys.size + which.ravel(), minlength=rows * cols * keys.size).reshape(rows * cols, keys.size)
    feats = hist @ codes / np.maximum(hist.sum(axis=1, keepdims=True), 1)
    if opts["feature_noise"] > 0:
        feats = feats + rng.standard_normal(feats.shape) * (opts["feature_noise"] / np.sqrt(FEATURE_DIM))
    return feats.reshape(rows, cols, FEATURE_DIM).astype(np.float32)


class SimulatedBackend:
    """Masks and features from a prepared store's ``views/instance`` and ``views/label``."""

    name = "simulated"

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = dict(options.get("simulated", {}))
        self.seed = int(options.get("seed", 0))
        self.nesting_order = options.get("nesting_order", "part")

    def metadata(self) -> dict[str, Any]:
        return {"backend": self.name, "simulated": effective_options(self.options), "long_side": 1024, "patch": 16}

    def grid(self, image_size: tuple[int, int]) -> tuple[int, int]:
        return sam_valid_grid(image_size)

    def run_views(self, reader, sample_id: str, views: list[int], label_size: tuple[int, int]):
        """Yield ``(ViewMasks, features (Hc, Wc, 256) float32)`` per view."""
        from pipeline.errors import UserError

        for name in ("views/instance", "views/label"):
            if not reader.has(sample_id, name):
                raise UserError(
                    f"{reader.path}: sample {sample_id!r} has no {name}; the simulated SAM backend needs "
                    "ground-truth 2D instances and labels in the prepared store"
                )
        inst_arr = reader.array(sample_id, "views/instance")
        label_arr = reader.array(sample_id, "views/label")
        for v in views:
            instance = np.asarray(inst_arr[v])
            label = np.asarray(label_arr[v])
            rng = view_rng(self.seed, sample_id, v)
            small = resize_labels(instance, label_size)
            masks = simulate_masks(small, self.options, rng, self.nesting_order)
            feats = simulate_features(instance, label, sample_id, self.options, self.seed, rng)
            yield masks, feats
