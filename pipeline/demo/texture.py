"""The surface colour function: one function for image pixels and mesh vertices.

A surface point is (box, face, world position). Its colour is the face's base colour times a
procedural pattern of the face's surface coordinates (metres from a face corner along the two
in-plane box axes) times a view-independent light term (fixed directional light + ambient), so a
vertex and the pixels around its projection agree, as ScanNet's vertex colours (baked from the
images) do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.demo.boxes import FACE_AXES, BoxSet
from pipeline.demo.categories import CHECKER, NOISE, STRIPES, WEAVE

_LIGHT = np.array([0.35, 0.25, 0.9]) / np.linalg.norm([0.35, 0.25, 0.9])
_PERM = np.random.default_rng(20231).permutation(256).astype(np.int32)
"""Fixed lattice-hash permutation (Perlin-style); a constant of the format, not a scene seed."""


_LEVELS = (_PERM / np.float32(255.0)).astype(np.float32)


def _hash01(ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
    """Lattice hash of int32 arrays (seed already added to ``ix``) → float32 in [0, 1], period 256."""
    return _LEVELS[(_PERM[ix & 255] + iy) & 255]


def value_noise(x: np.ndarray, y: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Smooth 2D value noise in [0, 1] with unit lattice spacing (float32, shape of ``x``)."""
    x0f, y0f = np.floor(x), np.floor(y)
    fx, fy = x - x0f, y - y0f
    ux, uy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
    x0 = x0f.astype(np.int32) + seed
    y0 = y0f.astype(np.int32)
    x1, y1 = x0 + 1, y0 + 1
    v00, v10 = _hash01(x0, y0), _hash01(x1, y0)
    v01, v11 = _hash01(x0, y1), _hash01(x1, y1)
    return (v00 + (v10 - v00) * ux) * (1 - uy) + (v01 + (v11 - v01) * ux) * uy


def pattern(kind: np.ndarray, ss: np.ndarray, tt: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Brightness factor (N,) around 1 of texture ``kind`` at surface coordinates in texture periods."""
    coarse = value_noise(ss, tt, seed) - np.float32(0.5)
    fine = value_noise(ss * np.float32(3.0), tt * np.float32(3.0), seed + 101) - np.float32(0.5)
    out = np.empty_like(ss)
    for k in (NOISE, STRIPES, CHECKER, WEAVE):
        m = kind == k
        if not m.any():
            continue
        s, t, c, f = ss[m], tt[m], coarse[m], fine[m]
        if k == NOISE:
            out[m] = 1 + 0.34 * c + 0.14 * f
        elif k == STRIPES:
            out[m] = 1 + 0.15 * np.sin(2 * np.pi * (s + 0.6 * c)) + 0.12 * f
        elif k == CHECKER:
            cx, cy = np.floor(s), np.floor(t)
            tile = np.where((cx + cy) % 2 == 0, 1.1, 0.9)
            out[m] = np.where(((s - cx) < 0.05) | ((t - cy) < 0.05), 0.62, tile) + 0.1 * f
        else:  # WEAVE
            out[m] = 1 + 0.12 * np.sin(2 * np.pi * s) * np.sin(2 * np.pi * t) + 0.16 * f
    return out


@dataclass(frozen=True)
class FaceTable:
    """Per-face constants, indexed by ``box * 6 + face`` (B*6 rows)."""

    s_axis: np.ndarray  # (B*6, 3) world direction of surface coordinate s, divided by the texture period
    s_offset: np.ndarray  # (B*6,)
    t_axis: np.ndarray  # (B*6, 3)
    t_offset: np.ndarray  # (B*6,)
    kind: np.ndarray  # (B*6,) int
    seed: np.ndarray  # (B*6,) int32, 0..255
    rgb: np.ndarray  # (B*6, 3) base colour times the face's light term


def face_table(boxes: BoxSet) -> FaceTable:
    """Precompute the per-face constants of :func:`surface_colour`."""
    n = len(boxes)
    face = np.tile(np.arange(6), n)
    box = np.repeat(np.arange(n), 6)
    axis = face // 2
    in_plane = np.asarray(FACE_AXES)[axis]
    rot, half, centre = boxes.rotation[box], boxes.half[box], boxes.centre[box]
    rows = np.arange(box.size)
    inv_scale = 1.0 / boxes.tex_scale.reshape(-1)
    out = {}
    for name, col in (("s", 0), ("t", 1)):
        ax = in_plane[:, col]
        direction = rot[rows, :, ax]  # world direction of the local axis
        # coordinate = (local axis component + half) / period = (dir . (p - c) + h) / period
        out[f"{name}_axis"] = direction * inv_scale[:, None]
        out[f"{name}_offset"] = (half[rows, ax] - np.einsum("ij,ij->i", direction, centre)) * inv_scale
    sign = np.where(face % 2 == 1, 1.0, -1.0) * np.where(boxes.inside[box], -1.0, 1.0)
    normal = rot[rows, :, axis] * sign[:, None]
    light = 0.62 + 0.38 * np.clip(normal @ _LIGHT, 0.0, 1.0)
    return FaceTable(
        out["s_axis"], out["s_offset"], out["t_axis"], out["t_offset"],
        boxes.texture.reshape(-1).astype(np.int64), ((boxes.tex_seed.reshape(-1) * 7 + face) % 256).astype(np.int32),
        boxes.colour.reshape(-1, 3) * light[:, None],
    )


def surface_colour(table: FaceTable, face_index: np.ndarray, points: np.ndarray) -> np.ndarray:
    """RGB (N, 3) float64 in [0, 1] of surface points.

    ``face_index`` (N,) is ``box * 6 + face`` of the face each point lies on; ``points`` are
    the world positions, (3, N) component-first (float64).
    """
    idx = np.asarray(face_index, dtype=np.int64)
    px, py, pz = points
    sa, ta = table.s_axis[idx], table.t_axis[idx]
    ss = sa[:, 0] * px + sa[:, 1] * py + sa[:, 2] * pz + table.s_offset[idx]
    tt = ta[:, 0] * px + ta[:, 1] * py + ta[:, 2] * pz + table.t_offset[idx]
    factor = pattern(table.kind[idx], ss.astype(np.float32), tt.astype(np.float32), table.seed[idx])
    return np.clip(table.rgb[idx] * factor[:, None], 0.0, 1.0)


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """Float RGB in [0, 1] → uint8 (rounded)."""
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)
