"""The decision rule of the project stage, stated once in float64, and the types it decides on.

Job: say which (view, point) pairs are visible and at which label pixel. :func:`reference_pairs`
is the literal float64 statement of the rule below; the fast path (:mod:`pipeline.project.runner`)
must decide exactly as it does, and re-decides its uncertain pairs with it. :class:`Cameras`
(the views of one sample) and :class:`Occlusion` (the depth test) are the rule's inputs.

Conventions are those of :mod:`pipeline.camera` (OpenCV camera axes, cam-to-world poses,
integer pixel centres, nearest pixel ``floor(u + 0.5)``, inside iff ``0 <= floor(u + 0.5) < W``).

The decision rule
-----------------
For point ``p`` and view ``v`` with pose ``(R, c)`` (cam-to-world rotation, camera centre),
``q = R^T (p - c)`` is the point in the camera frame, ``z = q_z``.

1. *In front*: ``z > 0`` for RGB-D views; ``z > min_depth`` (strict) for views without depth
   (lidar samples: there is no depth image to test occlusion against).
2. *Inside the label map*: ``u = fx q_x / z + cx`` (``v`` likewise) with the COLOUR intrinsics
   scaled to the label resolution; pixel ``(floor(u + 0.5), floor(v + 0.5))`` inside the map.
2b. *Views without depth, inside the native image* (the nuScenes devkit's
   ``map_pointcloud_to_image``): ``un = fxn q_x / z + cxn`` (``vn`` likewise) with the NATIVE
   intrinsics, in pixels of the native image of size ``(Wn, Hn)``; the pair needs
   ``1 < un < Wn - 1`` and ``1 < vn < Hn - 1`` (strict). With label intrinsics scaled from the
   native ones (:func:`pipeline.camera.scale_intrinsics`, any scale) this border implies rule 2,
   which then removes nothing; rule 2 stays so that the label pixel is always inside the map.
   Lidar-camera parallax occlusion is not part of this rule: the optional float64 post-filter
   :mod:`pipeline.project.lidar_occlusion` (``project.lidar_occlusion``) removes hidden pairs.
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
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

OCCLUSION_MODES: tuple[str, ...] = ("relative", "absolute")
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
    ``depth_k`` (V, 3, 3), or None for views without depth (then ``min_depth`` metres and the
    native-image border apply: ``native_k`` (V, 3, 3) float64 intrinsics of the native image,
    ``native_size`` (V, 2) int64 its (W, H) in pixels; when not given, the label intrinsics and
    size stand in for them). Views with depth ignore ``native_k`` and ``native_size``.
    """

    poses: np.ndarray
    label_k: np.ndarray
    label_size: tuple[int, int]
    depth: np.ndarray | None = None
    depth_k: np.ndarray | None = None
    depth_scale: float = 1000.0
    occlusion: Occlusion = field(default_factory=Occlusion)
    min_depth: float = 1.0
    native_k: np.ndarray | None = None
    native_size: np.ndarray | None = None

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
        else:
            if not self.min_depth >= 0:
                raise ValueError(f"min_depth must be >= 0, got {self.min_depth}")
            self._native_defaults(n)

    def _native_defaults(self, n: int) -> None:
        """Check ``native_k`` / ``native_size`` (views without depth), or fill them from the label's."""
        self.native_k = self.label_k.copy() if self.native_k is None else np.asarray(self.native_k, dtype=np.float64)
        size = np.tile(self.label_size, (n, 1)) if self.native_size is None else self.native_size
        self.native_size = np.asarray(size).astype(np.int64)
        if self.native_k.shape != (n, 3, 3) or self.native_size.shape != (n, 2):
            raise ValueError(f"native_k must be (V, 3, 3) and native_size (V, 2), got {self.native_k.shape} and {self.native_size.shape}")
        _check_k(self.native_k, "native")
        if np.any(self.native_size < 3) or np.any(self.native_size > 1 << 20):
            raise ValueError(f"native sizes must lie in 3..2^20 pixels, got {self.native_size.tolist()}")

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
        front = z > 0 if cams.depth is not None else z > cams.min_depth
        kl = cams.label_k[view]
        xl = np.floor(kl[:, 0, 0] * q[:, 0] / z + kl[:, 0, 2] + 0.5)
        yl = np.floor(kl[:, 1, 1] * q[:, 1] / z + kl[:, 1, 2] + 0.5)
        visible = front & (xl >= 0) & (xl < width) & (yl >= 0) & (yl < height)
        if cams.depth is None:  # rule 2b: the devkit's border in the native image
            kn, wn, hn = cams.native_k[view], cams.native_size[view, 0], cams.native_size[view, 1]
            un = kn[:, 0, 0] * q[:, 0] / z + kn[:, 0, 2]
            vn = kn[:, 1, 1] * q[:, 1] / z + kn[:, 1, 2]
            visible &= (un > 1) & (un < wn - 1) & (vn > 1) & (vn < hn - 1)
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
