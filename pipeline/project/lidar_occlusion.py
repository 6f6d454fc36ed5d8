"""Optional occlusion test of views without depth (lidar samples): a depth buffer from the points.

Why: parallax between the lidar and the cameras
-----------------------------------------------
Without a depth image, the rule of :mod:`pipeline.project.reference` (the nuScenes devkit's
``map_pointcloud_to_image``) keeps every point in front of the camera and inside its image, so a
point that the lidar sees but the camera does not takes the label of whatever the camera sees at
its pixel. The two sensors look from different places: on nuScenes ``LIDAR_TOP`` sits on the
roof centre, ~1.84 m above the ground, and the six cameras ~1.5 m up at the roof's edges, up to
~0.8 m ahead of / behind the lidar and ~0.5 m aside. The lidar looks *over* objects that the
cameras cannot: behind an object of height ``h`` at distance ``d``, the lidar (height ``Hl``)
reaches the ground from ``d Hl / (Hl - h)`` on and a camera (height ``Hc``) only from
``d Hc / (Hc - h)`` (never when ``h >= Hc``: behind a car, ~1.5 m, a front camera sees no road
at all while the lidar sees it from ~5 d on). It also looks *past* vertical edges from up to a
metre aside: behind an edge at ``d``, a sliver ``(D - d) b / d`` wide at distance ``D`` (``b``
the sideways baseline) is seen by the lidar only. Projected, those points land on the
occluder's pixels. No peer tests this (the devkit, CLIP2Scene, Seal, OpenScene do not).

The test (``project.lidar_occlusion``; off by default), per view, in float64, after the exact pass
---------------------------------------------------------------------------------------------------
1. *Depth buffers* of size ``round(scale * label size)`` (default ``scale`` 0.5: 400x225 for
   800x450 labels) with the label intrinsics scaled to it (:func:`pipeline.camera.scale_intrinsics`).
   Every point of the sample with camera-frame ``z > min_depth`` (the rule's own near limit) is
   projected, nearest pixel ``(x, y) = floor(u + 0.5), floor(v + 0.5)``, and *splats* its ``z``
   over the disc ``dx^2 + dy^2 <= r^2`` of pixels around it, ``r = clip(f radius / z, min_pixels,
   max_pixels)`` (``f`` = the mean of the buffer's ``fx``, ``fy``): a disc of ``radius`` metres
   facing the camera, so nearer points cover more pixels, as the surface they sample does. Five
   buffers keep the smallest ``z`` that reached each pixel (+inf where none): from the pixel
   itself (offset 0) and from each of four 90-degree *cones* (:data:`CONES`: splats from points
   above, below, left and right of the pixel, ``|dy| >= |dx|`` or ``|dx| >= |dy|``). Points just
   outside the image splat into it too.
2. *Hidden*: with ``nearer(b) = buffer_b < z - (absolute + relative * z)`` at the point's pixel,
   a pair (view, point) is removed when ``nearer(self)`` or nearer splats come from at least
   ``sides`` of the four cones (default 4: the point is *surrounded* by nearer points, i.e. it
   lies inside an occluder's silhouette). ``sides: 1`` is the plain splatted depth buffer.
   Why 4: a disc large enough to close the gaps between lidar rows on an occluder (1.33 degrees,
   ~15 pixels at 800x450) also reaches that far beyond its silhouette, so with ``sides`` 1 the
   background next to every edge is lost (4 % of the truly visible pairs on the synthetic street
   of tests/test_project_lidar_scene.py); beyond an edge nearer splats come from one side only.
   What ``sides: 4`` cannot catch is the strip between an occluder's outermost lidar row and its
   true outline (above a car's roof line the lidar saw the road behind it; nothing nearer lies
   above), about 30 % of the hidden pairs there. The point's own splat holds its own ``z``, so
   a point never hides itself; the margin keeps a nearer part of its own surface (a slanted
   road splatting over it) from hiding it.

Vectorised numpy: a Python loop runs over views, point chunks and the rings and cones of the
splat disc (about ``5 (max_pixels + 1)`` steps), never over points; the scatter-minimum is
``np.minimum.at`` into buffers padded by ``2 max_pixels`` so that no splat needs a bounds test.
Memory: five buffers per view (40 bytes a padded pixel) plus about 25 bytes per element of a
chunk of ``chunk`` (point, disc pixel) elements.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from pipeline.project.reference import Cameras


@dataclass(frozen=True)
class LidarOcclusion:
    """Settings of the test (module docstring). ``scale``: buffer resolution relative to the
    label maps; ``radius``: metres of the disc each point splats; ``min_pixels`` / ``max_pixels``:
    clip of the splat radius in buffer pixels; ``sides``: of the four cones, how many must hold a
    nearer splat (1 = any: a plain splatted depth buffer; 4 = surrounded); ``absolute`` (metres)
    + ``relative`` (fraction of the point's ``z``): the margin by which a splat must be nearer."""

    enabled: bool = True
    scale: float = 0.5
    radius: float = 0.25
    min_pixels: float = 0.0
    max_pixels: float = 16.0
    sides: int = 4
    absolute: float = 0.3
    relative: float = 0.1

    def __post_init__(self) -> None:
        for name in ("scale", "radius", "min_pixels", "max_pixels", "absolute", "relative"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"lidar occlusion {name} must be finite and >= 0, got {value}")
        if not (0 < self.scale <= 4):
            raise ValueError(f"lidar occlusion scale must lie in (0, 4], got {self.scale}")
        if self.min_pixels > self.max_pixels or self.max_pixels > 64:
            raise ValueError(f"lidar occlusion needs min_pixels <= max_pixels <= 64, got {self.min_pixels}, {self.max_pixels}")
        if self.sides not in (1, 2, 3, 4):
            raise ValueError(f"lidar occlusion sides must be 1..4, got {self.sides}")

    @classmethod
    def from_options(cls, section: Mapping[str, Any]) -> "LidarOcclusion":
        """From the schema's ``project.lidar_occlusion`` section (defaults filled)."""
        splat, margin = section["splat"], section["margin"]
        return cls(bool(section["enabled"]), float(section["scale"]), float(splat["radius"]), float(splat["min_pixels"]),
                   float(splat["max_pixels"]), int(section["sides"]), float(margin["absolute"]), float(margin["relative"]))


def buffer_geometry(cams: Cameras, scale: float) -> tuple[np.ndarray, tuple[int, int]]:
    """Intrinsics (V, 3, 3) float64 and size (W, H) of the depth buffers: the label maps' scaled."""
    from pipeline.camera import scale_intrinsics

    width, height = cams.label_size
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size == cams.label_size:
        return cams.label_k.copy(), size
    return np.stack([scale_intrinsics(k, cams.label_size, size) for k in cams.label_k]), size


def _camera_frame(points: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """``R^T (p - c)`` (N, 3) float64 for ``points`` (N, 3) and a cam-to-sample ``pose`` (4, 4)."""
    return (np.asarray(points, dtype=np.float64) - pose[:3, 3]) @ pose[:3, :3]


def _pixel(q: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Projected coordinates (u, v) (N,) float64 of camera-frame points ``q`` (N, 3)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return k[0, 0] * q[:, 0] / q[:, 2] + k[0, 2], k[1, 1] * q[:, 1] / q[:, 2] + k[1, 2]


CONES: tuple[str, ...] = ("up", "down", "left", "right")
"""The four directions from which splats reach a pixel (90-degree cones around the image axes;
"up" = from the points above the pixel, image rows grow downwards)."""


def _rings(max_pixels: float) -> list[tuple[int, list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]]]:
    """Integer offsets ``o`` of the disc of radius ``max_pixels`` in rings ``R - 1 < |o| <= R``.

    Per ring: ``R`` and, per buffer (0 = the pixel itself, 1-4 = :data:`CONES`), its offsets
    (dx, dy) int64 (M,) and ``|o|^2`` float64 (M,). An offset is the pixel's position relative to
    the splatting point, so the point lies *above* the pixels of offsets with ``dy > 0``; diagonal
    offsets (``|dx| == |dy|``) belong to two cones.
    """
    n = int(math.floor(max_pixels))
    dy, dx = (a.ravel() for a in np.mgrid[-n : n + 1, -n : n + 1])
    d2 = dx * dx + dy * dy
    keep = d2 <= max_pixels * max_pixels
    dx, dy, d2 = dx[keep], dy[keep], d2[keep]
    ring = np.ceil(np.sqrt(d2)).astype(np.int64)
    cones = [(dx == 0) & (dy == 0), (dy > 0) & (dy >= abs(dx)), (dy < 0) & (-dy >= abs(dx)),
             (dx > 0) & (dx >= abs(dy)), (dx < 0) & (-dx >= abs(dy))]
    out = []
    for r in range(int(ring.max()) + 1):
        parts = [(b, dx[m], dy[m], d2[m].astype(np.float64)) for b, c in enumerate(cones) if (m := c & (ring == r)).any()]
        out.append((r, parts))
    return out


def _scatter_min(buffer: np.ndarray, base: np.ndarray, z: np.ndarray, flat: np.ndarray, chunk: int, r2=None, d2=None) -> None:
    """``buffer[base_i + flat_j] = min(., z_i)`` for every point i and offset j (where
    ``d2_j <= r2_i`` when given), at most about ``chunk`` elements at a time."""
    step = max(1, chunk // flat.size)
    for start in range(0, base.size, step):
        s = slice(start, start + step)
        idx = base[s, None] + flat[None, :]
        if r2 is None:
            np.minimum.at(buffer, idx.ravel(), np.repeat(z[s], flat.size))
        else:
            ok = d2[None, :] <= r2[s, None]
            np.minimum.at(buffer, idx[ok], np.broadcast_to(z[s, None], ok.shape)[ok])


def splat(buffers: np.ndarray, size: tuple[int, int], pad: int, x: np.ndarray, y: np.ndarray, z: np.ndarray, r: np.ndarray,
          rings: list, chunk: int) -> None:
    """Scatter-minimum of ``z`` over the discs ``|o| <= r`` around pixels ``(x, y)`` into ``buffers``.

    ``buffers`` (5, (H + 2 pad) * (W + 2 pad)) float64, the buffer padded by ``pad`` pixels on
    every side (flat ``(y + pad) * (W + 2 pad) + x + pad``), so that no splat needs a bounds test:
    row 0 takes the offset (0, 0), rows 1-4 the offsets of the :data:`CONES`. ``x``, ``y`` (N,)
    int64 pixels within ``pad - max r`` of the buffer; ``z`` (N,) metres; ``r`` (N,) radius in
    pixels; ``rings`` from :func:`_rings` covering ``max(r)``. At most about ``chunk`` (point,
    offset) elements are formed at once.
    """
    wp = size[0] + 2 * pad
    order = np.argsort(-r, kind="stable")
    base = ((y + pad) * wp + x + pad)[order].astype(np.int32)  # flat indices fit: buffers are < 2^31 pixels
    z, r = z[order], r[order]
    r2 = r * r
    for ring, parts in rings:
        n_full = int(np.searchsorted(-r, -ring, side="right"))  # r >= R: the whole ring lies in the disc
        n_any = int(np.searchsorted(-r, -(ring - 1), side="left")) if ring else r.size  # r > R - 1
        for buffer, dx, dy, d2 in parts:
            flat = (dy * wp + dx).astype(np.int32)
            _scatter_min(buffers[buffer], base[:n_full], z[:n_full], flat, chunk)
            if n_any > n_full:
                _scatter_min(buffers[buffer], base[n_full:n_any], z[n_full:n_any], flat, chunk, r2[n_full:n_any], d2)


def depth_buffers(points: np.ndarray, cams: Cameras, view: int, occ: LidarOcclusion, k: np.ndarray, size: tuple[int, int],
                  chunk: int = 1 << 16) -> tuple[np.ndarray, int]:
    """The depth buffers of ``view`` (metres; +inf where no splat reaches): (5, (H + 2 pad) *
    (W + 2 pad)) float64, the pixel's own (row 0) and those of the four :data:`CONES` (rows 1-4),
    padded by ``pad`` pixels on every side (returned too).

    ``points`` (P, 3) the sample's points; ``k`` (3, 3) and ``size`` (W, H) of the buffer
    (:func:`buffer_geometry`); ``chunk`` bounds the points and splat elements handled at once.
    """
    width, height = size
    reach = int(math.floor(occ.max_pixels))
    pad = 2 * reach  # a disc touching the buffer has its centre within reach of it
    buffers = np.full((5, (width + 2 * pad) * (height + 2 * pad)), np.inf)
    rings = _rings(occ.max_pixels)
    focal = 0.5 * (k[0, 0] + k[1, 1])
    for start in range(0, points.shape[0], chunk):
        q = _camera_frame(points[start : start + chunk], cams.poses[view])
        q = q[q[:, 2] > cams.min_depth]
        u, v = _pixel(q, k)
        r = np.clip(focal * occ.radius / q[:, 2], occ.min_pixels, occ.max_pixels)
        near = (np.abs(u - width / 2) < width + reach) & (np.abs(v - height / 2) < height + reach)  # before the int cast
        x, y, z, r = np.floor(u[near] + 0.5).astype(np.int64), np.floor(v[near] + 0.5).astype(np.int64), q[near, 2], r[near]
        touch = (x + r >= 0) & (x - r <= width - 1) & (y + r >= 0) & (y - r <= height - 1)  # the disc reaches the buffer
        splat(buffers, size, pad, x[touch], y[touch], z[touch], r[touch], rings, chunk)
    return buffers, pad


def hidden_pairs(points: np.ndarray, cams: Cameras, offsets: np.ndarray, point: np.ndarray, pixel: np.ndarray,
                 occ: LidarOcclusion, chunk: int = 1 << 16) -> np.ndarray:
    """Which pairs (N,) bool the depth buffers hide (module docstring, step 2).

    ``offsets`` (V+1,) int64 CSR of the pairs by view, ``point`` (N,) int64, ``pixel`` (N,) int64
    flat label pixels (used as the buffer pixel when ``scale`` keeps the label size).
    """
    points = np.asarray(points)
    k_all, size = buffer_geometry(cams, occ.scale)
    width, height = size
    hidden = np.zeros(point.shape, dtype=bool)
    for view in range(cams.n_views):
        a, b = int(offsets[view]), int(offsets[view + 1])
        if a == b:
            continue
        buffers, pad = depth_buffers(points, cams, view, occ, k_all[view], size, chunk)
        for start in range(a, b, chunk):
            s = slice(start, min(b, start + chunk))
            q = _camera_frame(points[point[s]], cams.poses[view])
            if size == cams.label_size:
                x, y = pixel[s] % width, pixel[s] // width
            else:
                u, v = _pixel(q, k_all[view])
                x = np.clip(np.floor(u + 0.5), 0, width - 1).astype(np.int64)
                y = np.clip(np.floor(v + 0.5), 0, height - 1).astype(np.int64)
            flat = (y + pad) * (width + 2 * pad) + x + pad
            z = q[:, 2]
            nearer = buffers[:, flat] < z - (occ.absolute + occ.relative * z)  # (5, n)
            hidden[s] = nearer[0] | (nearer[1:].sum(axis=0) >= occ.sides)
    return hidden


def drop_lidar_occluded(points: np.ndarray, cams: Cameras, offsets: np.ndarray, point: np.ndarray, pixel: np.ndarray,
                        occ: LidarOcclusion, chunk: int = 1 << 16) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The pairs (offsets (V+1,), point (N',), pixel (N',), all int64) without the hidden ones,
    and how many were removed."""
    hidden = hidden_pairs(points, cams, offsets, point, pixel, occ, chunk)
    view = np.repeat(np.arange(cams.n_views), np.diff(offsets))
    keep = ~hidden
    new_offsets = np.zeros_like(offsets)
    np.cumsum(np.bincount(view[keep], minlength=cams.n_views), out=new_offsets[1:])
    return new_offsets, point[keep], pixel[keep], int(hidden.sum())
