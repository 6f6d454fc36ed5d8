"""Float32 guard bands: per-view bounds on the float32 error of every quantity the rule compares.

Job: make the float32 kernel decide exactly as the float64 rule. A pair whose float32 quantity
lies within its view's band of a decision boundary (pixel rounding, image edges, the ``z``
limit, the occlusion margins) is *uncertain* and re-decided in float64
(:func:`pipeline.project.reference.reference_pairs`). The bands are per-view constants, derived
in docs/method.md ("Exactness: float32 that decides like float64").
"""

from __future__ import annotations

import numpy as np

from pipeline.project.blocks import PointBlocks
from pipeline.project.reference import Cameras

EPS32: float = 2.0**-24
"""Unit roundoff of float32."""
GUARD_SAFETY: float = 2.0
"""Factor applied on top of the derived float32 error bounds."""


def guard_bands(blocks: PointBlocks, cams: Cameras) -> dict[str, np.ndarray]:
    """Per-view float32 error bounds (float64 arrays (V,)) of the quantities the rule compares.

    ``label`` / ``depth`` / ``native``: pixel units, bound on ``|u32 - u|`` and ``|v32 - v|``
    (and on the float32 ``|u - W/2|`` the image-edge tests compare) for points near the image;
    ``z``: metres, bound on ``|z32 - z|``; ``occ``: metres, bound on the error of
    ``|z - d| - tolerance``. ``native`` (views without depth only): the devkit's border
    ``1 < un < Wn - 1`` in the native image is a comparison of ``|un - Wn/2|`` with
    ``Wn/2 - 1``, computed by the same float32 operations as the label map's edge test
    (``x/z * f + c``, then ``- W/2``), so the label bound's derivation holds with the native
    intrinsics and size; the native image joins the images that bound ``|x/z|``, ``|y/z|``.
    See docs/method.md for the derivation.
    """
    corners = np.array([[x, y, z] for x in (blocks.lo[0], blocks.hi[0]) for y in (blocks.lo[1], blocks.hi[1]) for z in (blocks.lo[2], blocks.hi[2])])
    dist = np.linalg.norm(corners[None, :, :] - cams.poses[:, None, :3, 3], axis=2).max(axis=1)  # (V,)
    sizes = [(cams.label_k, np.asarray(cams.label_size, dtype=np.float64), 2)]
    if cams.depth is not None:
        sizes.append((cams.depth_k, np.asarray(cams.depth_size, dtype=np.float64), 3 + cams.occlusion.border))
    else:
        sizes.append((cams.native_k, cams.native_size.T.astype(np.float64), 3))  # (2, V): per-view sizes
    # |x/z| and |y/z| of points within a few pixels of an image (only those can change a decision)
    a = np.max([(np.maximum(np.abs(k[:, 0, 2] + 0.5), np.abs(s[0] - 0.5 - k[:, 0, 2])) + m) / k[:, 0, 0] for k, s, m in sizes], axis=0)
    b = np.max([(np.maximum(np.abs(k[:, 1, 2] + 0.5), np.abs(s[1] - 0.5 - k[:, 1, 2])) + m) / k[:, 1, 1] for k, s, m in sizes], axis=0)
    rho = np.sqrt(1 + a**2 + b**2)  # |p - c| / z near images
    c_cam = 8.0  # |q32 - q| <= c_cam * eps * |p - c|  (two subtractions, 3-term dot product)

    def pixel_bound(k: np.ndarray, size: np.ndarray) -> np.ndarray:
        f = np.maximum(k[:, 0, 0], k[:, 1, 1])
        c = np.maximum(np.abs(k[:, 0, 2]), np.abs(k[:, 1, 2]))
        r = np.maximum(a, b)
        return GUARD_SAFETY * EPS32 * (f * (c_cam * rho * (1 + r) + 3 * r) + c + np.maximum(size[0], size[1]) + 3)

    out = {
        "label": pixel_bound(cams.label_k, sizes[0][1]),
        "z": GUARD_SAFETY * EPS32 * (c_cam * dist + cams.min_depth + 1),
    }
    if cams.depth is None:
        out["native"] = pixel_bound(cams.native_k, sizes[1][1])
    else:
        out["depth"] = pixel_bound(cams.depth_k, sizes[1][1])
        dmax = cams.depth.reshape(cams.n_views, -1).max(axis=1).astype(np.float64) / cams.depth_scale
        thr = cams.occlusion.threshold
        # m = z (1 -+ thr) - d or d - z (1 +- thr), or z - d -+ thr: z is off by c_cam eps rho z,
        # d (a float32 product) by 2 eps d, and each of the 3 operations rounds once more
        z_term = (1 + thr) if cams.occlusion.mode == "relative" else 1.0
        out["occ"] = GUARD_SAFETY * EPS32 * (c_cam * rho * dist * z_term + 4 * (dist * z_term + dmax) + 4 * thr)
    return out
