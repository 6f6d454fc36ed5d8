"""Augmentations: 3D (rotation about up, flips, scale, jitter) and 2D (crop, horizontal flip).

3D augmentations move points but never reorder or drop them, so pairs (which index points)
stay valid; cropping (:func:`sphere_crop`) returns the kept indices for remapping. 2D crops
are described by a :class:`Crop`, which maps original label-resolution pixels to crop pixels
(pairs) and crop pixels back to original ones (SAM cells), so both sides stay consistent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from train.sparse.voxelize import point_voxel_keys


def augment_points(
    xyz: np.ndarray,
    rng: np.random.Generator,
    rotate: bool,
    flip: bool,
    scale: tuple[float, float],
    jitter: float,
) -> np.ndarray:
    """Randomly rotate about z, flip x/y, scale and jitter points (N, 3) float32 → (N, 3) float32.

    The draws are made in a fixed order whatever is enabled, so toggling one option leaves the
    others' draws unchanged.
    """
    angle = rng.uniform(0.0, 2.0 * np.pi)
    flips = rng.random(2) < 0.5
    factor = rng.uniform(scale[0], scale[1])
    noise = rng.standard_normal(xyz.shape).astype(np.float32)
    mat = np.eye(3)
    if rotate:
        c, s = np.cos(angle), np.sin(angle)
        mat = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    if flip:
        mat = np.diag([-1.0 if flips[0] else 1.0, -1.0 if flips[1] else 1.0, 1.0]) @ mat
    mat = (mat * factor).astype(np.float32)
    centre = xyz.mean(axis=0) if xyz.size else np.zeros(3, np.float32)
    rel = xyz - centre
    # explicit 3x3 product: numpy's matmul would call OpenBLAS, whose threads fight torch's
    out = np.empty_like(xyz, dtype=np.float32)
    for i in range(3):
        out[:, i] = rel[:, 0] * mat[i, 0] + rel[:, 1] * mat[i, 1] + rel[:, 2] * mat[i, 2] + centre[i]
    if jitter > 0:
        out += np.clip(noise * jitter, -4 * jitter, 4 * jitter)
    return out


def grid_sample(xyz: np.ndarray, voxel_size: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One uniformly random point per voxel (voxels as the network's: :func:`train.sparse.voxelize.voxel_keys`).

    ``xyz`` (P, 3) float32 metres → (chosen (M,) int64 point indices, one per voxel, in voxel key
    order, i.e. sorted by (x, y, z) voxel coordinates; voxel_of_point (P,) int64 row in ``chosen``
    of every point's voxel). Raises ``ValueError`` when the sample's extent does not fit a voxel key.
    """
    keys = point_voxel_keys(xyz, voxel_size)
    perm = rng.permutation(keys.size)
    _, first, inverse = np.unique(keys[perm], return_index=True, return_inverse=True)
    chosen = perm[first]
    voxel_of_point = np.empty(keys.size, dtype=np.int64)
    voxel_of_point[perm] = inverse.reshape(-1)
    return chosen.astype(np.int64), voxel_of_point


def sphere_crop(xyz: np.ndarray, max_points: int, rng: np.random.Generator) -> np.ndarray:
    """Indices (sorted) of the ``max_points`` points nearest to a random point (all if fewer)."""
    n = xyz.shape[0]
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    centre = xyz[rng.integers(n)]
    dist = np.sum((xyz - centre) ** 2, axis=1)
    keep = np.argpartition(dist, max_points - 1)[:max_points]
    return np.sort(keep).astype(np.int64)


@dataclass(frozen=True)
class Crop:
    """A crop of size ``(w, h)`` at ``(x0, y0)`` of an image of ``size`` (W, H), optionally
    mirrored. ``x0``/``y0`` may be negative when the image is smaller than the crop (padding)."""

    x0: int
    y0: int
    w: int
    h: int
    flip: bool
    size: tuple[int, int]

    @classmethod
    def random(cls, size: tuple[int, int], crop: tuple[int, int], rng: np.random.Generator, flip: bool) -> "Crop":
        """A uniformly random window of size ``crop`` (w, h) in an image of ``size`` (W, H), mirrored
        with probability 0.5 when ``flip`` (the draws are made whether or not ``flip`` is on)."""
        width, height = size
        cw, ch = crop
        x0 = int(rng.integers(0, width - cw + 1)) if width >= cw else -int(rng.integers(0, cw - width + 1))
        y0 = int(rng.integers(0, height - ch + 1)) if height >= ch else -int(rng.integers(0, ch - height + 1))
        mirrored = bool(rng.random() < 0.5) and flip
        return cls(x0, y0, cw, ch, mirrored, (width, height))

    def source_xy(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Original pixel (x, y) of every crop pixel → (xs (h, w), ys (h, w), inside (h, w) bool)."""
        cx = np.arange(self.w)
        if self.flip:
            cx = self.w - 1 - cx
        xs = np.broadcast_to(cx[None, :] + self.x0, (self.h, self.w))
        ys = np.broadcast_to(np.arange(self.h)[:, None] + self.y0, (self.h, self.w))
        inside = (xs >= 0) & (xs < self.size[0]) & (ys >= 0) & (ys < self.size[1])
        return xs, ys, inside

    def apply(self, image: np.ndarray, fill: float | int | bool) -> np.ndarray:
        """Crop (and mirror) an array (H, W, ...) → (h, w, ...); pixels outside get ``fill``."""
        xs, ys, inside = self.source_xy()
        out = np.full((self.h, self.w, *image.shape[2:]), fill, dtype=image.dtype)
        out[inside] = image[ys[inside], xs[inside]]
        return out

    def to_crop(self, flat_pixel: np.ndarray) -> np.ndarray:
        """Original flat pixels ``y * W + x`` (K,) → flat crop pixels ``y' * w + x'`` (K,), -1 outside."""
        width = self.size[0]
        x = flat_pixel % width - self.x0
        y = flat_pixel // width - self.y0
        if self.flip:
            x = self.w - 1 - x
        inside = (x >= 0) & (x < self.w) & (y >= 0) & (y < self.h)
        return np.where(inside, y * self.w + x, -1).astype(np.int64)
