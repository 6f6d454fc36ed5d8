"""Which points each view sees, and at which pixel: the vectorised core of the project stage.

Conventions are those of :mod:`pipeline.camera` (OpenCV camera axes, cam-to-world poses,
integer pixel centres, nearest pixel ``floor(u + 0.5)``, inside iff ``0 <= floor(u + 0.5) < W``).

The decision rule (:func:`reference_pairs` is its literal float64 statement)
-----------------------------------------------------------------------------
For point ``p`` and view ``v`` with pose ``(R, c)`` (cam-to-world rotation, camera centre),
``q = R^T (p - c)`` is the point in the camera frame, ``z = q_z``.

1. *In front*: ``z > 0`` for RGB-D views; ``z >= min_depth`` for views without depth
   (lidar samples: there is no depth image to test occlusion against).
2. *Inside the label map*: ``u = fx q_x / z + cx`` (``v`` likewise) with the COLOUR intrinsics
   scaled to the label resolution; pixel ``(floor(u + 0.5), floor(v + 0.5))`` inside the map.
3. *RGB-D only, not occluded*: the same projection with the DEPTH intrinsics gives ``(ud, vd)``
   in the depth image. The point's *footprint* is the 2x2 depth pixels around it
   (``floor(ud) + {0, 1}``; or the one nearest pixel ``floor(ud + 0.5)``); pixels up to
   ``border`` beyond the edge extend the edge linearly (:func:`border_depth`). Footprint
   pixels holding a measurement ``d > 0`` (0 = missing) must *bracket* the point:
   ``min d - tol <= z <= max d + tol``, with ``tol`` = ``threshold`` metres (absolute) or
   ``threshold * z`` (relative). With no measured
   footprint pixel the point is not visible. On a plane the depth at the point lies between its
   2x2 neighbours' depths, so slanted surfaces pass without a loose tolerance; a point behind
   an occluder has every neighbour in front of it. (``nearest`` reduces to ``|z - d| <= tol``.)

How it runs
-----------
* Points are grouped once into spatially compact blocks (Morton order, ``block_size`` points).
  Per view, blocks whose bounding sphere lies outside the label frustum are culled in float64
  (conservatively), so only (view, block) *rows* that can hold visible points are computed.
* Rows are processed in chunks of about ``chunk_pairs`` (view, point) pairs, in float32, by one
  kernel written against :mod:`pipeline.project.backend` (numpy on CPU, torch on CUDA). Peak
  memory is bounded by the chunk size, whatever the scene size.
* Float32 decides exactly as float64 would: every pair whose float32 quantities lie within a
  proven error bound of a decision boundary (pixel rounding, image edges, ``z`` limits, the
  occlusion threshold) is *uncertain* and re-decided by :func:`reference_pairs` in float64. The
  bounds are per-view constants (:func:`guard_bands`); docs/method.md derives them.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

OCCLUSION_MODES: tuple[str, ...] = ("relative", "absolute")
EPS32: float = 2.0**-24
"""Unit roundoff of float32."""
GUARD_SAFETY: float = 2.0
"""Factor applied on top of the derived float32 error bounds."""


FOOTPRINTS: tuple[str, ...] = ("bilinear", "nearest")
EXTRAPOLATE_MAX_SLOPE: float = 0.02
"""Steepest depth change per pixel, as a fraction of the edge depth, that footprint pixels beyond
the depth image's edge extend linearly (a surface up to ~80 degrees from facing the camera at
the demo's 320-pixel depth, ~85 at 640); steeper edges (discontinuities) are read flat."""


@dataclass(frozen=True)
class Occlusion:
    """The depth test (module docstring, rule 3).

    ``footprint``: the depth pixels a point is compared with: ``bilinear`` = the 2x2 pixels
    around it (``floor(u)``, ``floor(u) + 1``), ``nearest`` = the one nearest pixel
    (``floor(u + 0.5)``). ``border``: depth pixels beyond the image edge that still count,
    extending the edge linearly (:func:`border_depth`; the colour field of view may be a
    little wider than the depth one). ``threshold``: metres (``absolute``) or a fraction of the
    point's depth ``z`` (``relative``).
    """

    mode: str = "absolute"
    threshold: float = 0.01
    footprint: str = "bilinear"
    border: int = 8

    def __post_init__(self) -> None:
        if self.mode not in OCCLUSION_MODES:
            raise ValueError(f"occlusion mode must be one of {OCCLUSION_MODES}, got {self.mode!r}")
        if not (self.threshold > 0 and math.isfinite(self.threshold)):
            raise ValueError(f"occlusion threshold must be positive, got {self.threshold}")
        if self.footprint not in FOOTPRINTS:
            raise ValueError(f"occlusion footprint must be one of {FOOTPRINTS}, got {self.footprint!r}")
        if not (isinstance(self.border, int) and 0 <= self.border <= 64):
            raise ValueError(f"occlusion border must be an integer in 0..64, got {self.border!r}")

    @property
    def offset(self) -> float:
        """Added to the projected coordinate before ``floor``: 0.5 for nearest, 0 for bilinear."""
        return 0.5 if self.footprint == "nearest" else 0.0

    @property
    def taps(self) -> tuple[tuple[int, int], ...]:
        """(dx, dy) of the footprint pixels relative to ``floor(u + offset), floor(v + offset)``."""
        return ((0, 0),) if self.footprint == "nearest" else ((0, 0), (1, 0), (0, 1), (1, 1))


@dataclass
class Cameras:
    """The views of one sample (float64 as stored), at the resolution of their label maps.

    ``poses`` (V, 4, 4) cam-to-sample-frame; ``label_k`` (V, 3, 3) colour intrinsics scaled to
    ``label_size`` (W, H); ``depth`` (V, Hd, Wd) uint16 in units of ``1 / depth_scale`` m with
    ``depth_k`` (V, 3, 3), or None for views without depth (then ``min_depth`` applies).
    """

    poses: np.ndarray
    label_k: np.ndarray
    label_size: tuple[int, int]
    depth: np.ndarray | None = None
    depth_k: np.ndarray | None = None
    depth_scale: float = 1000.0
    occlusion: Occlusion = field(default_factory=Occlusion)
    min_depth: float = 1.0

    def __post_init__(self) -> None:
        self.poses = np.asarray(self.poses, dtype=np.float64)
        self.label_k = np.asarray(self.label_k, dtype=np.float64)
        n = self.poses.shape[0]
        if self.poses.shape != (n, 4, 4) or self.label_k.shape != (n, 3, 3):
            raise ValueError(f"poses must be (V, 4, 4) and label_k (V, 3, 3), got {self.poses.shape} and {self.label_k.shape}")
        if not np.all(np.isfinite(self.poses)):
            raise ValueError("poses must be finite")
        self.label_size = (int(self.label_size[0]), int(self.label_size[1]))
        _check_k(self.label_k, "label")
        if self.depth is not None:
            self.depth = np.asarray(self.depth)
            if self.depth.dtype != np.uint16 or self.depth.ndim != 3 or self.depth.shape[0] != n:
                raise ValueError(f"depth must be (V, Hd, Wd) uint16, got {self.depth.dtype} {self.depth.shape}")
            if min(self.depth.shape[1:]) < 2:
                raise ValueError(f"depth images must be at least 2x2 pixels, got {self.depth.shape[1:]}")
            if self.depth_k is None:
                raise ValueError("depth needs depth_k")
            self.depth_k = np.asarray(self.depth_k, dtype=np.float64)
            if self.depth_k.shape != (n, 3, 3):
                raise ValueError(f"depth_k must be (V, 3, 3), got {self.depth_k.shape}")
            _check_k(self.depth_k, "depth")
            if not self.depth_scale > 0:
                raise ValueError(f"depth_scale must be positive, got {self.depth_scale}")
        elif not self.min_depth >= 0:
            raise ValueError(f"min_depth must be >= 0, got {self.min_depth}")

    @property
    def n_views(self) -> int:
        return self.poses.shape[0]

    @property
    def depth_size(self) -> tuple[int, int] | None:
        return None if self.depth is None else (self.depth.shape[2], self.depth.shape[1])


def _check_k(k: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(k)) or np.any(k[:, 0, 0] <= 0) or np.any(k[:, 1, 1] <= 0):
        raise ValueError(f"{what} intrinsics must be finite with positive focal lengths")
    if np.any(np.abs(k[:, 0, 1]) > 1e-9) or np.any(np.abs(k[:, 2] - [0.0, 0.0, 1.0]) > 1e-9) or np.any(np.abs(k[:, 1, 0]) > 1e-9):
        raise ValueError(f"{what} intrinsics must be pinhole matrices without skew")


# --------------------------------------------------------------------------------------
# The float64 statement of the rule
# --------------------------------------------------------------------------------------


def reference_pairs(points: np.ndarray, view: np.ndarray, point: np.ndarray, cams: Cameras) -> tuple[np.ndarray, np.ndarray]:
    """Decide pairs ``(view[i], point[i])`` in float64 by the rule of the module docstring.

    ``points`` (P, 3) any float dtype (converted to float64). Returns ``visible`` (N,) bool and
    ``pixel`` (N,) int64 (flat ``y * Wl + x`` at label resolution; -1 where not visible).
    """
    view = np.asarray(view, dtype=np.int64)
    p = np.asarray(points, dtype=np.float64)[np.asarray(point, dtype=np.int64)]
    rot = cams.poses[view, :3, :3]
    d = p - cams.poses[view, :3, 3]
    q = d[:, 0:1] * rot[:, 0, :] + d[:, 1:2] * rot[:, 1, :] + d[:, 2:3] * rot[:, 2, :]  # R^T (p - c)
    z = q[:, 2]
    width, height = cams.label_size
    with np.errstate(divide="ignore", invalid="ignore"):
        front = z > 0 if cams.depth is not None else z >= cams.min_depth
        kl = cams.label_k[view]
        xl = np.floor(kl[:, 0, 0] * q[:, 0] / z + kl[:, 0, 2] + 0.5)
        yl = np.floor(kl[:, 1, 1] * q[:, 1] / z + kl[:, 1, 2] + 0.5)
        visible = front & (xl >= 0) & (xl < width) & (yl >= 0) & (yl < height)
        if cams.depth is not None:
            occ = cams.occlusion
            kd = cams.depth_k[view]
            dh, dw = cams.depth.shape[1:]
            xd = np.floor(kd[:, 0, 0] * q[:, 0] / z + kd[:, 0, 2] + occ.offset)
            yd = np.floor(kd[:, 1, 1] * q[:, 1] / z + kd[:, 1, 2] + occ.offset)
            taps = np.asarray(occ.taps, dtype=np.float64)  # (T, 2): every footprint pixel at once
            x, y = xd[None, :] + taps[:, 0:1], yd[None, :] + taps[:, 1:2]  # (T, N)
            ok = visible[None, :] & (x >= -occ.border) & (x < dw + occ.border) & (y >= -occ.border) & (y < dh + occ.border)
            d = np.zeros(x.shape, dtype=np.float64)
            d[ok] = border_depth(cams, np.broadcast_to(view, x.shape)[ok], x[ok].astype(np.int64), y[ok].astype(np.int64))
            ok &= d > 0
            d_min = np.where(ok, d, np.inf).min(axis=0, initial=np.inf)
            d_max = np.where(ok, d, -np.inf).max(axis=0, initial=-np.inf)
            tol = occ.threshold * (z if occ.mode == "relative" else 1.0)
            visible &= (z <= d_max + tol) & (z >= d_min - tol)  # false where no footprint pixel has depth
    pixel = np.full(view.shape, -1, dtype=np.int64)
    pixel[visible] = yl[visible].astype(np.int64) * width + xl[visible].astype(np.int64)
    return visible, pixel


def border_depth(cams: Cameras, view: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Depth (N,) float64 in metres at depth pixel ``(x, y)`` of ``view`` (int64 arrays), pixels
    beyond the image edge included (0 = missing).

    Inside the image: the measurement. Beyond an edge by ``k`` pixels: the edge pixel's depth
    extended linearly by the slope between the edge pixel and its inner neighbour, ``k`` times,
    per axis, when both are measured and the slope is at most :data:`EXTRAPOLATE_MAX_SLOPE` of
    the edge depth per pixel; otherwise the edge pixel's depth (an edge on a depth discontinuity
    is not extended).
    """
    dh, dw = cams.depth.shape[1:]
    cx, cy = np.clip(x, 0, dw - 1), np.clip(y, 0, dh - 1)
    edge = cams.depth[view, cy, cx].astype(np.float64) / cams.depth_scale
    kx, ky = x - cx, y - cy
    if not (kx.any() or ky.any()):
        return edge
    out = edge.copy()
    for k, inner in ((kx, (cy, np.where(x < 0, min(1, dw - 1), max(0, dw - 2)))),
                     (ky, (np.where(y < 0, min(1, dh - 1), max(0, dh - 2)), cx))):
        beyond = k != 0
        if not beyond.any():
            continue
        nb = cams.depth[view[beyond], inner[0][beyond], inner[1][beyond]].astype(np.float64) / cams.depth_scale
        e = edge[beyond]
        slope = e - nb
        ok = (e > 0) & (nb > 0) & (np.abs(slope) <= EXTRAPOLATE_MAX_SLOPE * e)
        out[beyond] += np.where(ok, np.abs(k[beyond]) * slope, 0.0)
    return np.where(edge > 0, np.maximum(out, 0.0), 0.0)


# --------------------------------------------------------------------------------------
# Blocks and culling
# --------------------------------------------------------------------------------------


@dataclass
class PointBlocks:
    """Points grouped into spatially compact blocks of ``B`` points (last block padded).

    ``xyz`` (3, NB, B) float32 planar coordinates (padding NaN); ``index`` (NB, B) int64 point
    indices (padding -1); ``centre`` (NB, 3) float64 and ``radius`` (NB,) float64 bounding
    spheres; ``lo``/``hi`` (3,) the points' bounding box.
    """

    xyz: np.ndarray
    index: np.ndarray
    centre: np.ndarray
    radius: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    @property
    def n_blocks(self) -> int:
        return self.index.shape[0]

    @property
    def block_size(self) -> int:
        return self.index.shape[1]


def _spread_bits(x: np.ndarray) -> np.ndarray:
    """Spread the low 10 bits of ``x`` (uint32) two zeros apart (Morton interleave helper)."""
    x = x & np.uint32(0x3FF)
    x = (x | (x << np.uint32(16))) & np.uint32(0x030000FF)
    x = (x | (x << np.uint32(8))) & np.uint32(0x0300F00F)
    x = (x | (x << np.uint32(4))) & np.uint32(0x030C30C3)
    x = (x | (x << np.uint32(2))) & np.uint32(0x09249249)
    return x


def morton_order(points: np.ndarray) -> np.ndarray:
    """Permutation (P,) int64 sorting ``points`` (P, 3) along a 3D Morton curve (1024^3 grid)."""
    if np.shape(points)[0] == 0:
        return np.zeros(0, dtype=np.int64)
    cols = np.ascontiguousarray(np.asarray(points).T)  # (3, P): row reductions are fast, column ones are not
    lo = cols.min(axis=1).astype(np.float64)
    span = max(float((cols.max(axis=1).astype(np.float64) - lo).max()), 1e-12)
    key = np.zeros(cols.shape[1], dtype=np.uint32)
    for axis in range(3):  # 30-bit keys: uint32 arithmetic is twice as fast as uint64
        q = np.clip((cols[axis] - lo[axis]) * (1023.0 / span), 0, 1023).astype(np.uint32)
        key |= _spread_bits(q) << np.uint32(axis)
    # stable sort as two stable radix passes over 16-bit halves (numpy radix-sorts 16-bit keys):
    # the same permutation as a stable sort of the 30-bit keys, ~6x faster
    low = np.argsort((key & np.uint32(0xFFFF)).astype(np.uint16), kind="stable")
    return low[np.argsort((key[low] >> np.uint32(16)).astype(np.uint16), kind="stable")]


def make_blocks(points: np.ndarray, block_size: int = 128) -> PointBlocks:
    """Group ``points`` (P, 3) float32 into Morton-ordered blocks of ``block_size`` points."""
    pts = np.asarray(points, dtype=np.float32)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"points must be (P, 3), got {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise ValueError("points must be finite")
    if block_size < 1:
        raise ValueError("block_size must be >= 1")
    n = pts.shape[0]
    order = morton_order(pts)
    n_blocks = max(1, math.ceil(n / block_size))
    index = np.full(n_blocks * block_size, -1, dtype=np.int64)
    index[:n] = order
    index = index.reshape(n_blocks, block_size)
    xyz = np.full((3, n_blocks * block_size), np.nan, dtype=np.float32)
    xyz[:, :n] = pts[order].T
    xyz = xyz.reshape(3, n_blocks, block_size)
    lo_b = np.zeros((n_blocks, 3))
    hi_b = np.zeros((n_blocks, 3))
    full = n // block_size  # blocks without padding; the last one may hold fewer points
    if full:
        lo_b[:full] = xyz[:, :full].min(axis=2).T
        hi_b[:full] = xyz[:, :full].max(axis=2).T
    if n > full * block_size:
        lo_b[full] = xyz[:, full, : n - full * block_size].min(axis=1)
        hi_b[full] = xyz[:, full, : n - full * block_size].max(axis=1)
    centre = (lo_b + hi_b) / 2
    radius = np.linalg.norm(hi_b - lo_b, axis=1) / 2 * (1 + 1e-6) + 1e-6
    lo = lo_b.min(axis=0) if n else np.zeros(3)
    hi = hi_b.max(axis=0) if n else np.zeros(3)
    return PointBlocks(xyz, index, centre, radius, lo, hi)


def _frustum_planes(k: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Unit normals (V, 4, 3) of the side planes of the pixel-edge frustum (inside: n . q >= 0)."""
    width, height = size
    fx, fy, cx, cy = k[:, 0, 0], k[:, 1, 1], k[:, 0, 2], k[:, 1, 2]
    zero = np.zeros_like(fx)
    planes = np.stack(
        [
            np.stack([fx, zero, cx + 0.5], axis=1),  # u >= -0.5
            np.stack([-fx, zero, width - 0.5 - cx], axis=1),  # u < W - 0.5
            np.stack([zero, fy, cy + 0.5], axis=1),  # v >= -0.5
            np.stack([zero, -fy, height - 0.5 - cy], axis=1),  # v < H - 0.5
        ],
        axis=1,
    )
    return planes / np.linalg.norm(planes, axis=2, keepdims=True)


def cull_blocks(blocks: PointBlocks, cams: Cameras, views: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(view, block) rows whose block may hold a visible point, view-major (both (N,) int64).

    Conservative: a block is dropped only if its bounding sphere lies entirely outside a side
    plane of the label frustum, or entirely behind the near limit (0, or ``min_depth`` without
    depth), by more than a small margin. (Culling occluded blocks with a max-depth pyramid was
    measured too: it removed 17 % of the rows of bench/project.py's scene but cost more to build.)
    """
    views = np.arange(cams.n_views) if views is None else np.asarray(views, dtype=np.int64)
    if views.size == 0 or blocks.n_blocks == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    poses = cams.poses[views]
    rot = poses[:, :3, :3]
    centre_cam = blocks.centre @ rot - (poses[:, None, :3, 3] @ rot)  # (V, NB, 3): R^T (m - c)
    margin = blocks.radius[None, :] * (1 + 1e-6) + 1e-4
    planes = _frustum_planes(cams.label_k[views], cams.label_size)
    dist = centre_cam @ planes.transpose(0, 2, 1)  # (V, NB, 4)
    keep = np.all(dist >= -margin[:, :, None], axis=2)
    near = 0.0 if cams.depth is not None else cams.min_depth
    keep &= centre_cam[:, :, 2] >= near - margin
    v_local, block = np.nonzero(keep)
    return views[v_local], block.astype(np.int64)


# --------------------------------------------------------------------------------------
# Float32 guard bands
# --------------------------------------------------------------------------------------


def guard_bands(blocks: PointBlocks, cams: Cameras) -> dict[str, np.ndarray]:
    """Per-view float32 error bounds (float64 arrays (V,)) of the quantities the rule compares.

    ``label`` / ``depth``: pixel units, bound on ``|u32 - u|`` and ``|v32 - v|`` for points near
    the image; ``z``: metres, bound on ``|z32 - z|``; ``occ``: metres, bound on the error of
    ``|z - d| - tolerance``. See docs/method.md for the derivation.
    """
    corners = np.array([[x, y, z] for x in (blocks.lo[0], blocks.hi[0]) for y in (blocks.lo[1], blocks.hi[1]) for z in (blocks.lo[2], blocks.hi[2])])
    dist = np.linalg.norm(corners[None, :, :] - cams.poses[:, None, :3, 3], axis=2).max(axis=1)  # (V,)
    sizes = [(cams.label_k, cams.label_size, 2)]
    if cams.depth is not None:
        sizes.append((cams.depth_k, cams.depth_size, 3 + cams.occlusion.border))
    # |x/z| and |y/z| of points within a few pixels of an image (only those can change a decision)
    a = np.max([(np.maximum(np.abs(k[:, 0, 2] + 0.5), np.abs(s[0] - 0.5 - k[:, 0, 2])) + m) / k[:, 0, 0] for k, s, m in sizes], axis=0)
    b = np.max([(np.maximum(np.abs(k[:, 1, 2] + 0.5), np.abs(s[1] - 0.5 - k[:, 1, 2])) + m) / k[:, 1, 1] for k, s, m in sizes], axis=0)
    rho = np.sqrt(1 + a**2 + b**2)  # |p - c| / z near images
    c_cam = 8.0  # |q32 - q| <= c_cam * eps * |p - c|  (two subtractions, 3-term dot product)

    def pixel_bound(k: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        f = np.maximum(k[:, 0, 0], k[:, 1, 1])
        c = np.maximum(np.abs(k[:, 0, 2]), np.abs(k[:, 1, 2]))
        r = np.maximum(a, b)
        return GUARD_SAFETY * EPS32 * (f * (c_cam * rho * (1 + r) + 3 * r) + c + max(size) + 3)

    out = {
        "label": pixel_bound(cams.label_k, cams.label_size),
        "z": GUARD_SAFETY * EPS32 * (c_cam * dist + cams.min_depth + 1),
    }
    if cams.depth is not None:
        out["depth"] = pixel_bound(cams.depth_k, cams.depth_size)
        dmax = cams.depth.reshape(cams.n_views, -1).max(axis=1).astype(np.float64) / cams.depth_scale
        thr = cams.occlusion.threshold
        # m = z (1 -+ thr) - d or d - z (1 +- thr), or z - d -+ thr: z is off by c_cam eps rho z,
        # d (a float32 product) by 2 eps d, and each of the 3 operations rounds once more
        z_term = (1 + thr) if cams.occlusion.mode == "relative" else 1.0
        out["occ"] = GUARD_SAFETY * EPS32 * (c_cam * rho * dist * z_term + 4 * (dist * z_term + dmax) + 4 * thr)
    return out


# --------------------------------------------------------------------------------------
# The float32 pass
# --------------------------------------------------------------------------------------

_P_ROT, _P_CHI, _P_CLO, _P_KL, _P_KD, _P_GUARD = slice(0, 9), slice(9, 12), slice(12, 15), slice(15, 19), slice(19, 23), slice(23, 27)
_N_PARAMS = 27
"""Columns: R row-major (0-8), centre hi (9-11), centre lo (12-14), label fx fy cx+.5 cy+.5
(15-18), depth fx fy cx+o cy+o with o the footprint offset (19-22), guard bands label, depth,
z, occlusion (23-26)."""


def _view_params(cams: Cameras, guards: dict[str, np.ndarray]) -> np.ndarray:
    """Per-view float32 parameters (V, 27): R (row-major), centre hi/lo, label K, depth K, guards."""
    v = cams.n_views
    params = np.zeros((v, _N_PARAMS), dtype=np.float32)
    params[:, _P_ROT] = cams.poses[:, :3, :3].reshape(v, 9)
    centre = cams.poses[:, :3, 3]
    hi = centre.astype(np.float32)
    params[:, _P_CHI] = hi
    params[:, _P_CLO] = (centre - hi.astype(np.float64)).astype(np.float32)
    kl = cams.label_k
    params[:, _P_KL] = np.stack([kl[:, 0, 0], kl[:, 1, 1], kl[:, 0, 2] + 0.5, kl[:, 1, 2] + 0.5], axis=1)
    if cams.depth is not None:
        kd = cams.depth_k
        off = cams.occlusion.offset
        params[:, _P_KD] = np.stack([kd[:, 0, 0], kd[:, 1, 1], kd[:, 0, 2] + off, kd[:, 1, 2] + off], axis=1)
        params[:, _P_GUARD] = np.stack([guards["label"], guards["depth"], guards["z"], guards["occ"]], axis=1)
    else:
        params[:, _P_GUARD] = np.stack([guards["label"], np.zeros(v), guards["z"], np.zeros(v)], axis=1)
    return params


class _Workspace:
    """Preallocated buffers for the float32 pass over up to ``rows`` x ``block`` pairs.

    Every operation writes into these buffers: fresh multi-megabyte temporaries per operation
    cost page faults that, measured here, take longer than the arithmetic itself.
    """

    _FLOATS = ("dx", "dy", "dz", "qx", "qy", "qz", "fa", "fb", "tmp", "pix")
    _BOOLS = ("front", "unsure", "visible", "b1", "geo")

    def __init__(self, xp, rows: int, block: int) -> None:
        n = rows * block
        self.block = block
        self.xp = xp
        self.xyz = xp.empty(3 * n, "float32")
        self.f = {k: xp.empty(n, "float32") for k in self._FLOATS}
        self.b = {k: xp.empty(n, "bool") for k in self._BOOLS}
        self.idx = xp.empty(n, "int64")
        self.raw = xp.empty(n, "int16")

    def views(self, rows: int):
        n = rows * self.block
        shape = (rows, self.block)
        view = self.xp.view
        f = {k: view(v[:n], shape) for k, v in self.f.items()}
        b = {k: view(v[:n], shape) for k, v in self.b.items()}
        return view(self.xyz[: 3 * n], (3, rows, self.block)), f, b, self.idx[:n], self.raw[:n]


def _mark_near_integer(xp, t, floor_t, half_minus_band, tmp, flag, unsure) -> None:
    """``unsure |= t within band of an integer`` given ``floor_t``; ``half_minus_band`` = 0.5 - band."""
    xp.sub(t, floor_t, out=tmp)
    xp.sub(tmp, 0.5, out=tmp)
    xp.abs(tmp, out=tmp)
    xp.gt(tmp, half_minus_band, out=flag)
    xp.or_(unsure, flag, out=unsure)


def _mark_inside(xp, t, size: int, tmp, flag, visible) -> None:
    """``visible &= 0 < t < size`` for ``t = u + 0.5``, i.e. ``0 <= floor(t) < size`` except at
    ``t == 0`` exactly, an integer, which the guard band re-decides in float64 anyway."""
    xp.sub(t, 0.5 * size, out=tmp)
    xp.abs(tmp, out=tmp)
    xp.lt(tmp, 0.5 * size, out=flag)
    xp.and_(visible, flag, out=visible)


def _project_rows(xp, ws: _Workspace, xyz_all, rows_block, params, base, depth_flat, cams: Cameras, min_depth32: float, wraps: bool = False):
    """Float32 decisions for one chunk of (view, block) rows.

    ``xyz_all`` (3, NB, B) float32; ``rows_block`` (R,) int64; ``params`` (R, 27) float32;
    ``base`` (R, 1) int64 offset of each row's depth image in ``depth_flat`` ((V * Hd * Wd,)
    int16 holding the uint16 raw depth, 0 = missing; None without depth;
    ``wraps``: some raw values exceed 32767). Arrays of the backend ``xp``. Returns views into the
    workspace: visible (R, B) bool, uncertain (R, B) bool and the flat label pixel (R, B) float32
    (exact integers).
    """
    n_rows = rows_block.shape[0]
    xyz, f, b, idx, raw = ws.views(n_rows)
    xp.take_rows(xyz_all, rows_block, out=xyz)
    col = lambda i: params[:, i : i + 1]  # noqa: E731  (R, 1), broadcast over B
    dx, dy, dz, qx, qy, qz = f["dx"], f["dy"], f["dz"], f["qx"], f["qy"], f["qz"]
    fa, fb, tmp, pix = f["fa"], f["fb"], f["tmp"], f["pix"]
    front, unsure, visible, b1 = b["front"], b["unsure"], b["visible"], b["b1"]
    half = params[:, 27:31]  # 0.5 - guard bands of the label and depth pixels
    # d = (p - c_hi) - c_lo;  q = R^T d: q_j = sum_i R[i, j] d_i with params[:, 3 * i + j] = R[i, j]
    for d, axis in ((dx, 0), (dy, 1), (dz, 2)):
        xp.sub(xyz[axis], col(9 + axis), out=d)
        xp.sub(d, col(12 + axis), out=d)
    for q, j in ((qx, 0), (qy, 1), (qz, 2)):
        xp.mul(dx, col(j), out=q)
        xp.addmul(q, dy, col(3 + j), tmp)
        xp.addmul(q, dz, col(6 + j), tmp)
    xp.reciprocal(qz, out=dz)
    xp.mul(qx, dz, out=dx)  # x / z
    xp.mul(qy, dz, out=dy)  # y / z
    # in front (and the z-limit guard band)
    if cams.depth is None:
        xp.ge(qz, min_depth32, out=front)
        xp.sub(qz, min_depth32, out=tmp)
        xp.abs(tmp, out=tmp)
    else:
        xp.gt(qz, 0.0, out=front)
        xp.abs(qz, out=tmp)
    xp.le(tmp, col(25), out=unsure)
    xp.copy(visible, front)
    geo = b["geo"]  # unsure z, depth pixel or footprint: the depth test's inputs are not certain
    if cams.depth is not None:
        xp.copy(geo, unsure)
    # label pixel: floor(u + 0.5), floor(v + 0.5)
    width, height = cams.label_size
    xp.mul(dx, col(15), out=qx)
    xp.add(qx, col(17), out=qx)
    xp.mul(dy, col(16), out=qy)
    xp.add(qy, col(18), out=qy)
    xp.floor(qx, out=fa)
    xp.floor(qy, out=fb)
    _mark_near_integer(xp, qx, fa, half[:, 0:1], tmp, b1, unsure)
    _mark_near_integer(xp, qy, fb, half[:, 0:1], tmp, b1, unsure)
    _mark_inside(xp, qx, width, tmp, b1, visible)
    _mark_inside(xp, qy, height, tmp, b1, visible)
    xp.mul(fb, float(width), out=pix)
    xp.add(pix, fa, out=pix)
    if cams.depth is None:
        return visible, unsure, pix
    occ = cams.occlusion
    dh, dw = cams.depth.shape[1:]
    xp.mul(dx, col(19), out=qx)  # depth-image coordinates (+ 0.5 for the nearest footprint)
    xp.add(qx, col(21), out=qx)
    xp.mul(dy, col(20), out=qy)
    xp.add(qy, col(22), out=qy)
    xp.floor(qx, out=fa)
    xp.floor(qy, out=fb)
    _mark_near_integer(xp, qx, fa, half[:, 1:2], tmp, b1, geo)
    _mark_near_integer(xp, qy, fb, half[:, 1:2], tmp, b1, geo)
    # A footprint not wholly inside the depth image goes to the float64 rule (which extends the
    # edge within the border and drops pixels beyond it). Every other footprint is read at fixed
    # flat offsets from its top-left pixel, clamped into the image so that every read is safe
    # (pairs already out, NaN coordinates included, read pixel 0 of their view).
    ext = 1 if occ.footprint == "bilinear" else 0
    not_visible = b["front"]  # front is no longer needed
    xp.not_(visible, out=not_visible)
    for floor_t, size in ((fa, dw), (fb, dh)):
        last = size - 1 - ext  # footprint inside iff 0 <= floor <= last
        xp.sub(floor_t, last / 2, out=tmp)
        xp.abs(tmp, out=tmp)
        xp.gt(tmp, last / 2, out=b1)
        xp.and_(b1, visible, out=b1)
        xp.or_(geo, b1, out=geo)
        xp.fill_where(floor_t, not_visible, 0.0)
        xp.clamp(floor_t, 0.0, float(last), out=floor_t)
    xp.mul(fb, float(dw), out=tmp)
    xp.add(tmp, fa, out=tmp)
    idx2 = xp.view(idx, (n_rows, -1))
    xp.copy(idx2, tmp)
    xp.add(idx2, base, out=idx2)
    d_min, d_max, d = dx, dy, qx  # x / z, y / z and the coordinates are no longer needed
    xp.fill(d_min, math.inf)
    xp.fill(d_max, 0.0)
    offset = 0
    for tx, ty in occ.taps:
        tap = ty * dw + tx
        if tap != offset:
            xp.add(idx, tap - offset, out=idx)
            offset = tap
        xp.take(depth_flat, idx, out=raw)
        xp.copy(xp.view(d, (-1,)), raw)
        if wraps:  # int16 bits of values above 32767 m / depth_scale
            xp.remainder(d, 65536.0, out=d)
        # raw units (exact in float32); missing (0) counts as 0 for the maximum and as +inf for
        # the minimum: with no measurement, max d = 0 and min d = +inf, so m2 below fails
        xp.maximum(d_max, d, out=d_max)
        xp.le(d, 0.0, out=b1)
        xp.fill_where(d, b1, math.inf)
        xp.minimum(d_min, d, out=d_min)
    # to metres once: rounding is monotonic, so this equals converting every tap first
    xp.mul(d_max, 1.0 / cams.depth_scale, out=d_max)
    xp.mul(d_min, 1.0 / cams.depth_scale, out=d_min)
    thr = occ.threshold
    # m1 = z - (max d + tol) <= 0 and m2 = (min d - tol) - z <= 0 (+inf without a measurement)
    if occ.mode == "relative":  # tol = thr * z
        xp.mul(qz, 1.0 - thr, out=tmp)
        xp.sub(tmp, d_max, out=tmp)  # m1 = z (1 - thr) - max d
        xp.mul(qz, 1.0 + thr, out=fb)
        xp.sub(d_min, fb, out=fb)  # m2 = min d - z (1 + thr)
    else:
        xp.sub(qz, d_max, out=tmp)
        xp.sub(tmp, thr, out=tmp)  # m1 = z - max d - thr
        xp.sub(d_min, qz, out=fb)
        xp.sub(fb, thr, out=fb)  # m2 = min d - thr - z
    band_o = col(26)
    # A pair whose footprint was read for certain (visible so far, z, depth pixels and footprint
    # certain) and that fails a margin by more than its band is certainly not visible: whatever
    # else was uncertain about it (its label pixel) cannot matter, so it needs no re-decision.
    fail = b["front"]  # not_visible is no longer needed
    xp.gt(tmp, band_o, out=fail)
    xp.gt(fb, band_o, out=b1)
    xp.or_(fail, b1, out=fail)
    xp.and_(fail, visible, out=fail)
    xp.not_(geo, out=b1)
    xp.and_(fail, b1, out=fail)
    xp.or_(unsure, geo, out=unsure)
    xp.not_(fail, out=fail)
    xp.and_(unsure, fail, out=unsure)
    for margin in (tmp, fb):
        xp.abs(margin, out=fa)
        xp.le(fa, band_o, out=b1)
        xp.and_(b1, visible, out=b1)
        xp.or_(unsure, b1, out=unsure)
        xp.le(margin, 0.0, out=b1)
        xp.and_(visible, b1, out=visible)
    return visible, unsure, pix


@dataclass
class Pairs:
    """Visible (view, point) pairs of a sample, grouped by view.

    ``view_offsets`` (V+1,) int64: pairs of view ``v`` are ``[off[v], off[v+1])``; ``point``
    (N,) int64 point indices; ``pixel`` (N,) int64 flat pixel ``y * Wl + x`` at label
    resolution. Within a view, pairs follow the spatial block order (deterministic for a given
    block size). ``stats`` counts rows, culled blocks and pairs re-decided in float64.
    """

    view_offsets: np.ndarray
    point: np.ndarray
    pixel: np.ndarray
    stats: dict[str, Any] = field(default_factory=dict)

    def view(self, v: int) -> tuple[np.ndarray, np.ndarray]:
        """(point, pixel) arrays of view ``v``."""
        a, b = int(self.view_offsets[v]), int(self.view_offsets[v + 1])
        return self.point[a:b], self.pixel[a:b]


def default_chunk_pairs(device) -> int:
    """(view, point) pairs per chunk: cache-sized on CPU, large on GPUs."""
    return (1 << 16) if str(device) == "cpu" else (1 << 22)


class _Projector:
    """Shared state of one :func:`visible_pairs` call; :meth:`chunk` is safe to run in threads."""

    def __init__(self, xp, blocks: PointBlocks, cams: Cameras, rows_per_chunk: int, exact: bool) -> None:
        self.xp = xp
        self.blocks = blocks
        self.cams = cams
        self.exact = exact
        self.rows_per_chunk = rows_per_chunk
        self.row_view, self.row_block = cull_blocks(blocks, cams)
        params = _view_params(cams, guard_bands(blocks, cams))
        self.params = np.concatenate([params, 0.5 - params[:, 23:27]], axis=1)  # + 0.5 - bands
        self.xyz = xp.asarray(blocks.xyz)
        self.depth = None
        self.hw_d = 0
        self.wraps = False
        if cams.depth is not None:
            # raw depth of all views as int16 bits (torch has no uint16 arithmetic); taps
            # convert what they read to metres
            n, dh, dw = cams.depth.shape
            self.hw_d = dh * dw
            depth = np.ascontiguousarray(cams.depth).reshape(-1)
            self.wraps = bool(depth.max(initial=0) > np.iinfo(np.int16).max)
            self.depth = xp.asarray(depth.view(np.int16))
        self.min_depth32 = float(np.float32(cams.min_depth))
        self._local = threading.local()
        self._lock = threading.Lock()
        self._xyz64: np.ndarray | None = None

    @property
    def starts(self) -> range:
        return range(0, self.row_view.size, self.rows_per_chunk)

    def _workspace(self) -> _Workspace:
        ws = getattr(self._local, "ws", None)
        if ws is None:
            rows = min(self.rows_per_chunk, max(1, self.row_view.size))
            ws = self._local.ws = _Workspace(self.xp, rows, self.blocks.block_size)
        return ws

    def _points64(self) -> np.ndarray:
        with self._lock:
            if self._xyz64 is None:
                self._xyz64 = _original_points(self.blocks)
            return self._xyz64

    def chunk(self, start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """(view, point, pixel) of the visible pairs of rows ``[start, start + rows_per_chunk)``, and
        the number of pairs re-decided in float64."""
        xp = self.xp
        rv = self.row_view[start : start + self.rows_per_chunk]
        rb = self.row_block[start : start + self.rows_per_chunk]
        visible, unsure, pixel = _project_rows(
            xp,
            self._workspace(),
            self.xyz,
            xp.asarray(rb),
            xp.asarray(self.params[rv]),
            xp.asarray(rv[:, None] * self.hw_d),
            self.depth,
            self.cams,
            self.min_depth32,
            self.wraps,
        )
        # flat views of this thread's workspace (rewritten by every chunk): re-decisions go in place
        block = self.blocks.block_size
        visible = xp.host(visible).reshape(-1)
        pixel = xp.host(pixel).reshape(-1)
        index = self.blocks.index.reshape(-1)
        n_unsure = 0
        if self.exact:
            flat = np.flatnonzero(xp.host(unsure))
            if flat.size:
                pts_idx = index[rb[flat // block] * block + flat % block]
                real = pts_idx >= 0
                flat, pts_idx = flat[real], pts_idx[real]
                n_unsure = int(flat.size)
                vis_ref, pix_ref = reference_pairs(self._points64(), rv[flat // block], pts_idx, self.cams)
                visible[flat] = vis_ref
                pixel[flat] = np.where(vis_ref, pix_ref, 0)
        flat = np.flatnonzero(visible)
        row = flat // block
        return rv[row], index[rb[row] * block + flat % block], pixel[flat].astype(np.int64), n_unsure


def visible_pairs(
    points: np.ndarray | PointBlocks,
    cams: Cameras,
    device: str = "cpu",
    chunk_pairs: int | None = None,
    block_size: int = 128,
    exact: bool = True,
    threads: int | None = None,
) -> Pairs:
    """Every visible (view, point) pair of a sample with its label pixel (the module's rule).

    ``points`` (P, 3) float32 or prebuilt :class:`PointBlocks`. ``device``: ``cpu`` (numpy
    kernel), ``cuda``/``cuda:N`` (torch kernel), ``auto`` (CUDA when available) or ``torch-cpu``
    (the torch kernel on the CPU, for tests). ``chunk_pairs`` bounds the (view, point) pairs
    computed at once per worker (default :func:`default_chunk_pairs`); the float32 pass needs
    about 70 bytes per chunk pair and worker. On CPU, ``threads`` workers (default: torch's
    thread count) run chunks concurrently. ``exact=False`` skips the float64 re-decision of
    uncertain pairs (to measure what it buys; results may then differ from float64).
    """
    from pipeline.project.backend import make_ops

    blocks = points if isinstance(points, PointBlocks) else make_blocks(points, block_size)
    xp = make_ops(str(device))
    chunk_pairs = int(chunk_pairs or default_chunk_pairs(xp.device))
    if cams.depth is not None and max(cams.depth.shape[1:]) > 4096:
        raise ValueError("depth images larger than 4096 pixels per side are not supported (float32 pixel indices)")
    if max(cams.label_size) > 4096:
        raise ValueError("label maps larger than 4096 pixels per side are not supported (float32 pixel indices)")
    proj = _Projector(xp, blocks, cams, max(1, chunk_pairs // blocks.block_size), exact)
    if threads is None:
        import torch

        threads = torch.get_num_threads()
    workers = max(1, int(threads)) if xp.device == "cpu" else 1
    if workers > 1 and len(proj.starts) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(proj.chunk, proj.starts))
    else:
        parts = [proj.chunk(start) for start in proj.starts]
    n_views = cams.n_views
    view = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
    offsets = np.zeros(n_views + 1, dtype=np.int64)
    np.cumsum(np.bincount(view, minlength=n_views), out=offsets[1:])
    stats = {
        "rows": int(proj.row_view.size),
        "blocks": blocks.n_blocks,
        "row_fraction": float(proj.row_view.size / max(1, n_views * blocks.n_blocks)),
        "uncertain_pairs": int(sum(p[3] for p in parts)),
        "pairs": int(view.size),
    }
    return Pairs(
        offsets,
        np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64),
        np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, np.int64),
        stats,
    )


def _original_points(blocks: PointBlocks) -> np.ndarray:
    """The points (P, 3) float64 in their original order, recovered from the blocks."""
    valid = blocks.index >= 0
    out = np.zeros((int(valid.sum()), 3), dtype=np.float64)
    out[blocks.index[valid]] = blocks.xyz[:, valid].T
    return out
