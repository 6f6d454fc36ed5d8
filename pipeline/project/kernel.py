"""The float32 kernel: decisions for one chunk of (view, block) rows, uncertain pairs flagged.

Job: compute the rule of :mod:`pipeline.project.reference` in float32 for every point of the
given rows, and flag as *uncertain* each pair whose float32 quantities lie within the view's
guard band (:mod:`pipeline.project.guards`) of a decision boundary; the runner re-decides those
in float64. Written once against :mod:`pipeline.project.backend` (numpy on CPU, torch on CUDA),
so both compute the same float32 operations in the same order; every operation writes into the
preallocated buffers of a :class:`Workspace`.

Per-view constants travel in one float32 table (V, ``LAYOUT.width``): its columns are declared
once by :class:`ViewLayout`, and :func:`view_params` fills every one of them.
"""

from __future__ import annotations

import math

import numpy as np

from pipeline.project.reference import Cameras, Occlusion


class _Columns:
    """Hands out consecutive column slices: the order of the requests is the column order."""

    def __init__(self) -> None:
        self.width = 0

    def take(self, n: int) -> slice:
        out = slice(self.width, self.width + n)
        self.width += n
        return out


def _split(cols: slice) -> tuple[slice, ...]:
    """The single columns (width-1 slices) of a field, in order."""
    return tuple(slice(i, i + 1) for i in range(cols.start, cols.stop))


class ViewLayout:
    """Columns of the per-view float32 parameter table, declared once, in column order.

    Fields of several columns are slices (to fill them); the names of single columns are width-1
    slices, so ``params[:, LAYOUT.label_fx]`` is (R, 1) and broadcasts over a row's points.
    """

    _c = _Columns()
    rot = _c.take(9)
    """Cam-to-world rotation R, row-major: ``rot_ij[3 * i + j]`` holds ``R[i, j]``."""
    centre_hi = _c.take(3)
    """Camera centre rounded to float32 (x, y, z)."""
    centre_lo = _c.take(3)
    """The float32 remainder ``centre - centre_hi``: ``(p - c_hi) - c_lo`` errs relative to ``|p - c|``."""
    label_k = _c.take(4)
    """Colour intrinsics at label resolution: fx, fy, cx + 0.5, cy + 0.5 (``floor`` = nearest pixel)."""
    depth_k = _c.take(4)
    """Depth intrinsics: fx, fy, cx + o, cy + o with ``o`` the footprint's offset (0 without depth)."""
    native_k = _c.take(4)
    """Views without depth: native intrinsics fx, fy, cx, cy (the devkit's border, rule 2b; 0 with depth)."""
    native_half = _c.take(2)
    """Views without depth: ``Wn / 2``, ``Hn / 2`` of the native image (exact in float32)."""
    native_limit = _c.take(2)
    """Views without depth: ``Wn / 2 - 1``, ``Hn / 2 - 1``: inside iff ``|un - Wn / 2| < Wn / 2 - 1``."""
    bands = _c.take(5)
    """Guard bands (:func:`pipeline.project.guards.guard_bands`): label pixel, depth pixel, z,
    occlusion margin, native pixel (0 where a view has no such quantity)."""
    half = _c.take(2)
    """``0.5 - band`` (float32) of the label and depth pixels: the near-integer thresholds."""
    width = _c.width
    """Columns of the table."""
    del _c

    rot_ij = _split(rot)
    centre_hi_xyz = _split(centre_hi)
    centre_lo_xyz = _split(centre_lo)
    label_fx, label_fy, label_cx, label_cy = _split(label_k)
    depth_fx, depth_fy, depth_cx, depth_cy = _split(depth_k)
    native_fx, native_fy, native_cx, native_cy = _split(native_k)
    native_half_w, native_half_h = _split(native_half)
    native_limit_w, native_limit_h = _split(native_limit)
    band_label, band_depth, band_z, band_occ, band_native = _split(bands)
    half_label, half_depth = _split(half)


LAYOUT = ViewLayout()


def view_params(cams: Cameras, guards: dict[str, np.ndarray]) -> np.ndarray:
    """The per-view float32 parameters (V, ``LAYOUT.width``): every column of :class:`ViewLayout`."""
    lay = LAYOUT
    v = cams.n_views
    params = np.zeros((v, lay.width), dtype=np.float32)
    params[:, lay.rot] = cams.poses[:, :3, :3].reshape(v, 9)
    centre = cams.poses[:, :3, 3]
    hi = centre.astype(np.float32)
    params[:, lay.centre_hi] = hi
    params[:, lay.centre_lo] = (centre - hi.astype(np.float64)).astype(np.float32)
    kl = cams.label_k
    params[:, lay.label_k] = np.stack([kl[:, 0, 0], kl[:, 1, 1], kl[:, 0, 2] + 0.5, kl[:, 1, 2] + 0.5], axis=1)
    if cams.depth is not None:
        kd = cams.depth_k
        off = cams.occlusion.offset
        params[:, lay.depth_k] = np.stack([kd[:, 0, 0], kd[:, 1, 1], kd[:, 0, 2] + off, kd[:, 1, 2] + off], axis=1)
        params[:, lay.bands] = np.stack([guards["label"], guards["depth"], guards["z"], guards["occ"], np.zeros(v)], axis=1)
    else:
        kn, size = cams.native_k, cams.native_size.astype(np.float64)
        params[:, lay.native_k] = np.stack([kn[:, 0, 0], kn[:, 1, 1], kn[:, 0, 2], kn[:, 1, 2]], axis=1)
        params[:, lay.native_half] = size / 2
        params[:, lay.native_limit] = size / 2 - 1
        params[:, lay.bands] = np.stack([guards["label"], np.zeros(v), guards["z"], np.zeros(v), guards["native"]], axis=1)
    # in float32, from the float32 bands
    params[:, lay.half_label] = 0.5 - params[:, lay.band_label]
    params[:, lay.half_depth] = 0.5 - params[:, lay.band_depth]
    return params


class Workspace:
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


def project_rows(xp, ws: Workspace, xyz_all, rows_block, params, base, depth_flat, cams: Cameras, min_depth32: float, wraps: bool = False):
    """Float32 decisions for one chunk of (view, block) rows.

    ``xyz_all`` (3, NB, B) float32; ``rows_block`` (R,) int64; ``params`` (R, ``LAYOUT.width``)
    float32 (the rows of :func:`view_params`); ``base`` (R, 1) int64 offset of each row's depth
    image in ``depth_flat`` ((V * Hd * Wd,) int16 holding the uint16 raw depth, 0 = missing;
    None without depth; ``wraps``: some raw values exceed 32767). Arrays of the backend ``xp``.
    Returns views into the workspace: visible (R, B) bool, uncertain (R, B) bool and the flat
    label pixel (R, B) float32 (exact integers).
    """
    xyz, f, b, idx, raw = ws.views(rows_block.shape[0])
    xp.take_rows(xyz_all, rows_block, out=xyz)
    _camera_frame(xp, xyz, params, f)
    _in_front(xp, params, f, b, cams, min_depth32)
    _label_pixel(xp, params, f, b, cams.label_size)
    if cams.depth is None:
        _native_border(xp, params, f, b)
    else:
        _depth_footprint(xp, params, f, b, idx, base, cams)
        _read_footprint(xp, f, b, idx, raw, depth_flat, cams, wraps)
        _bracket_margins(xp, f, cams.occlusion)
        _collect_uncertain(xp, params, f, b)
    return b["visible"], b["unsure"], f["pix"]


def _camera_frame(xp, xyz, params, f) -> None:
    """``q = R^T d`` with ``d = (p - c_hi) - c_lo`` into qx, qy, qz; ``x / z``, ``y / z`` into dx, dy."""
    lay = LAYOUT
    dx, dy, dz, qx, qy, qz, tmp = f["dx"], f["dy"], f["dz"], f["qx"], f["qy"], f["qz"], f["tmp"]
    for d, axis in ((dx, 0), (dy, 1), (dz, 2)):
        xp.sub(xyz[axis], params[:, lay.centre_hi_xyz[axis]], out=d)
        xp.sub(d, params[:, lay.centre_lo_xyz[axis]], out=d)
    # q_j = sum_i R[i, j] d_i
    for q, j in ((qx, 0), (qy, 1), (qz, 2)):
        xp.mul(dx, params[:, lay.rot_ij[j]], out=q)
        xp.addmul(q, dy, params[:, lay.rot_ij[3 + j]], tmp)
        xp.addmul(q, dz, params[:, lay.rot_ij[6 + j]], tmp)
    xp.reciprocal(qz, out=dz)
    xp.mul(qx, dz, out=dx)  # x / z
    xp.mul(qy, dz, out=dy)  # y / z


def _in_front(xp, params, f, b, cams: Cameras, min_depth32: float) -> None:
    """Rule 1 (``z > 0``; without depth ``z > min_depth``) into ``front`` and ``visible``;
    ``unsure`` (and ``geo`` with depth) = z within its band."""
    qz, tmp = f["qz"], f["tmp"]
    front, unsure, visible = b["front"], b["unsure"], b["visible"]
    if cams.depth is None:
        xp.gt(qz, min_depth32, out=front)
        xp.sub(qz, min_depth32, out=tmp)
        xp.abs(tmp, out=tmp)
    else:
        xp.gt(qz, 0.0, out=front)
        xp.abs(qz, out=tmp)
    xp.le(tmp, params[:, LAYOUT.band_z], out=unsure)
    xp.copy(visible, front)
    if cams.depth is not None:
        # geo: unsure z, depth pixel or footprint: the depth test's inputs are not certain
        xp.copy(b["geo"], unsure)


def _label_pixel(xp, params, f, b, label_size: tuple[int, int]) -> None:
    """Rule 2: label pixel ``floor(u + 0.5), floor(v + 0.5)`` into ``pix`` (flat), the inside
    test into ``visible``, pixel-rounding doubt into ``unsure``."""
    lay = LAYOUT
    dx, dy, qx, qy, fa, fb, tmp, pix = f["dx"], f["dy"], f["qx"], f["qy"], f["fa"], f["fb"], f["tmp"], f["pix"]
    unsure, visible, b1 = b["unsure"], b["visible"], b["b1"]
    width, height = label_size
    xp.mul(dx, params[:, lay.label_fx], out=qx)
    xp.add(qx, params[:, lay.label_cx], out=qx)
    xp.mul(dy, params[:, lay.label_fy], out=qy)
    xp.add(qy, params[:, lay.label_cy], out=qy)
    xp.floor(qx, out=fa)
    xp.floor(qy, out=fb)
    half = params[:, lay.half_label]
    _mark_near_integer(xp, qx, fa, half, tmp, b1, unsure)
    _mark_near_integer(xp, qy, fb, half, tmp, b1, unsure)
    _mark_inside(xp, qx, width, tmp, b1, visible)
    _mark_inside(xp, qy, height, tmp, b1, visible)
    xp.mul(fb, float(width), out=pix)
    xp.add(pix, fa, out=pix)


def _native_border(xp, params, f, b) -> None:
    """Rule 2b (views without depth): ``visible &= 1 < un < Wn - 1 and 1 < vn < Hn - 1`` with
    ``un = x/z * fxn + cxn`` in the native image, as ``|un - Wn/2| < Wn/2 - 1``; pairs whose
    ``|un - Wn/2|`` lies within the native band of ``Wn/2 - 1`` into ``unsure``. Uses qx, tmp, b1."""
    lay = LAYOUT
    qx, tmp = f["qx"], f["tmp"]
    unsure, visible, b1 = b["unsure"], b["visible"], b["b1"]
    band = params[:, lay.band_native]
    for ratio, fc, cc, half, limit in (
        (f["dx"], lay.native_fx, lay.native_cx, lay.native_half_w, lay.native_limit_w),
        (f["dy"], lay.native_fy, lay.native_cy, lay.native_half_h, lay.native_limit_h),
    ):
        xp.mul(ratio, params[:, fc], out=qx)
        xp.add(qx, params[:, cc], out=qx)
        xp.sub(qx, params[:, half], out=qx)
        xp.abs(qx, out=qx)
        xp.lt(qx, params[:, limit], out=b1)
        xp.and_(visible, b1, out=visible)
        xp.sub(qx, params[:, limit], out=tmp)
        xp.abs(tmp, out=tmp)
        xp.le(tmp, band, out=b1)
        xp.or_(unsure, b1, out=unsure)


def _depth_footprint(xp, params, f, b, idx, base, cams: Cameras) -> None:
    """Rule 3's depth pixel: the flat index of each footprint's top-left pixel into ``idx``;
    depth-pixel rounding doubt and footprints not wholly inside the depth image into ``geo``."""
    lay = LAYOUT
    dx, dy, qx, qy, fa, fb, tmp = f["dx"], f["dy"], f["qx"], f["qy"], f["fa"], f["fb"], f["tmp"]
    visible, b1, geo = b["visible"], b["b1"], b["geo"]
    occ = cams.occlusion
    dh, dw = cams.depth.shape[1:]
    xp.mul(dx, params[:, lay.depth_fx], out=qx)  # depth-image coordinates (+ 0.5 for the nearest footprint)
    xp.add(qx, params[:, lay.depth_cx], out=qx)
    xp.mul(dy, params[:, lay.depth_fy], out=qy)
    xp.add(qy, params[:, lay.depth_cy], out=qy)
    xp.floor(qx, out=fa)
    xp.floor(qy, out=fb)
    half = params[:, lay.half_depth]
    _mark_near_integer(xp, qx, fa, half, tmp, b1, geo)
    _mark_near_integer(xp, qy, fb, half, tmp, b1, geo)
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
    idx2 = xp.view(idx, (visible.shape[0], -1))
    xp.copy(idx2, tmp)
    xp.add(idx2, base, out=idx2)


def _read_footprint(xp, f, b, idx, raw, depth_flat, cams: Cameras, wraps: bool) -> None:
    """Rule 3's depths: min and max over the footprint's measured pixels, in metres, into dx
    (min; +inf without a measurement) and dy (max; 0 without a measurement)."""
    b1 = b["b1"]
    dw = cams.depth.shape[2]
    d_min, d_max, d = f["dx"], f["dy"], f["qx"]  # x / z, y / z and the coordinates are no longer needed
    xp.fill(d_min, math.inf)
    xp.fill(d_max, 0.0)
    offset = 0
    for tx, ty in cams.occlusion.taps:
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


def _bracket_margins(xp, f, occ: Occlusion) -> None:
    """Rule 3's bracket as two margins, visible iff both <= 0: ``m1 = z - (max d + tol)`` into
    tmp and ``m2 = (min d - tol) - z`` into fb (+inf without a measurement)."""
    d_min, d_max, qz, tmp, fb = f["dx"], f["dy"], f["qz"], f["tmp"], f["fb"]
    thr = occ.threshold
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


def _collect_uncertain(xp, params, f, b) -> None:
    """The bracket test into ``visible``; the pairs whose decision is in doubt into ``unsure``."""
    tmp, fb, fa = f["tmp"], f["fb"], f["fa"]  # the margins m1, m2 and a scratch buffer
    unsure, visible, b1, geo = b["unsure"], b["visible"], b["b1"], b["geo"]
    band_o = params[:, LAYOUT.band_occ]
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
