"""Every visible (view, point) pair of a sample: the project stage's entry point, :func:`visible_pairs`.

Job: run the rule of :mod:`pipeline.project.reference` fast, and exactly: blocks and culling
(:mod:`pipeline.project.blocks`), the float32 kernel (:mod:`pipeline.project.kernel`) over
chunks of rows, in threads on CPU, and the float64 re-decision of its uncertain pairs.

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
  occlusion threshold) is *uncertain* and re-decided by
  :func:`~pipeline.project.reference.reference_pairs` in float64. The bounds are per-view
  constants (:func:`~pipeline.project.guards.guard_bands`); docs/method.md derives them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.project.blocks import PointBlocks, cull_blocks, make_blocks
from pipeline.project.guards import guard_bands
from pipeline.project.kernel import Workspace, project_rows, view_params
from pipeline.project.reference import Cameras, reference_pairs


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
        self.params = view_params(cams, guard_bands(blocks, cams))
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

    def _workspace(self) -> Workspace:
        ws = getattr(self._local, "ws", None)
        if ws is None:
            rows = min(self.rows_per_chunk, max(1, self.row_view.size))
            ws = self._local.ws = Workspace(self.xp, rows, self.blocks.block_size)
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
        visible, unsure, pixel = project_rows(
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
    """Every visible (view, point) pair of a sample with its label pixel (the rule of
    :mod:`pipeline.project.reference`).

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
