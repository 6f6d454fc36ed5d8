"""Benchmark: point -> view projection with occlusion test, ours vs the peers' per-view method.

Scene: :func:`tests.projection_scene.make_scene`, 150k points on the faces of a furnished
room, 100 RGB-D views with 640x480 depth (exact ray-cast depth in mm, 2 % holes) and label maps
at 640x480 with the colour camera's (non-proportional) intrinsics. The points are in random
order, and our speed-up is larger here than on mesh scenes; ``bench/project_mesh.py`` measures on mesh scenes with
points in mesh order, against the same OpenScene rule, with accuracy.

Three methods, alternated:

* **OpenScene's rule** (:func:`openscene_mapping`, the peers' real mapper, re-implemented from its
  published rule, not copied): per view a general 4x4 inverse of the pose, all points in float64
  homogeneous coordinates, ONE intrinsics (the depth camera's) for depth and label pixels,
  ``np.round`` to pixels, a 10-pixel cut at the image border, visible when
  ``|d - z| <= 0.25 d`` with ``d`` the depth of that pixel. Its pairs differ from ours (another
  rule); the row gives what a peer's user pays per view.
* **Same rule, OpenScene's loop** (:func:`baseline`): the loop above with our decision rule
  (label pixel = floor(u + 0.5) in the colour camera's label map; the default 2x2 depth footprint
  bracketing the point, 1 cm, 8 border pixels extending the edge's slope; or ``--footprint
  nearest``), so its pairs must be identical to ours: the implementation's speed-up.
* **Ours**: :func:`pipeline.project.runner.visible_pairs` (block culling, float32 pass, float64
  re-decision of the few pairs near a decision boundary).

Run: ``PYTHONPATH=. python bench/project.py`` (``--help`` for options). Peak memory is
measured in a fresh child process per method (``ru_maxrss``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # pipeline and tests (the scene) from this checkout


def _set_threads(threads: int) -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)


def load_scene(cache: Path, points: int, views: int, seed: int):
    """The synthetic scene, from ``cache`` (npz) or generated and cached."""
    import numpy as np

    from tests.projection_scene import SyntheticScene, make_scene

    if cache.is_file():
        with np.load(cache) as data:
            if int(data["points"].shape[0]) == points and int(data["poses"].shape[0]) == views and int(data["seed"]) == seed:
                return SyntheticScene(
                    data["points"], data["box_of_point"], data["poses"], data["color_k"], tuple(int(x) for x in data["color_size"]),
                    data["depth"], data["depth_k"], data["box_lo"], data["box_hi"],
                )
    start = time.perf_counter()
    scene = make_scene(n_points=points, n_views=views, depth_size=(640, 480), color_size=(1296, 968), seed=seed)
    print(f"generated the scene in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".partial.npz")
    np.savez(
        tmp, points=scene.points, box_of_point=scene.box_of_point, poses=scene.poses, color_k=scene.color_k,
        color_size=np.asarray(scene.color_size), depth=scene.depth, depth_k=scene.depth_k, box_lo=scene.box_lo,
        box_hi=scene.box_hi, seed=seed,
    )
    os.replace(tmp, cache)
    return scene


def cameras(scene, label_size=(640, 480), footprint="bilinear"):
    """The scene's views with the project stage's default occlusion test (or the nearest footprint)."""
    import numpy as np

    from pipeline.camera import scale_intrinsics
    from pipeline.project.reference import Cameras, Occlusion

    n = scene.poses.shape[0]
    label_k = scale_intrinsics(scene.color_k, scene.color_size, label_size)
    occlusion = Occlusion(footprint=footprint, border=0 if footprint == "nearest" else Occlusion().border)
    return Cameras(
        scene.poses, np.repeat(label_k[None], n, 0), label_size, scene.depth, np.repeat(scene.depth_k[None], n, 0),
        1000.0, occlusion,
    )


OPENSCENE_VISIBILITY: float = 0.25
"""OpenScene's ScanNet fusion: a point is visible when ``|d - z| <= 0.25 d`` at its pixel."""
OPENSCENE_CUT_BOUND: int = 10
"""OpenScene's ScanNet fusion ignores this many pixels at each image border."""


def openscene_mapping(points, poses, depth, k, depth_scale=1000.0, visibility=OPENSCENE_VISIBILITY,
                      cut_bound=OPENSCENE_CUT_BOUND):
    """OpenScene's per-frame point-to-pixel mapping (its rule, re-implemented, not copied).

    ``points`` (P, 3) float, ``poses`` (V, 4, 4) camera-to-world, ``depth`` (V, H, W) uint16 in
    units of 1/``depth_scale`` m (0 = missing), ``k`` (3, 3) the ONE intrinsics used for depth and
    label pixels at (W, H). Per view and for all points: homogeneous float64 coordinates, a general
    inverse of the pose, projection, ``np.round`` to the nearest pixel (ties to even), inside
    ``[cut, W - cut) x [cut, H - cut)``, visible when ``|d - z| <= visibility * d`` with ``d`` the
    depth (m) of that pixel (so missing depth is never visible; no separate ``z > 0`` test, which
    this implies). Returns (counts (V,), point (N,), pixel (N,) = row * W + column), int64.
    """
    import numpy as np

    n_points = points.shape[0]
    height, width = depth.shape[1:]
    counts, out_point, out_pixel = [], [], []
    for v in range(poses.shape[0]):
        coords = np.concatenate([points, np.ones((n_points, 1))], axis=1).T  # (4, P) float64
        p = np.linalg.inv(poses[v]) @ coords
        u = p[0] * k[0, 0] / p[2] + k[0, 2]
        w = p[1] * k[1, 1] / p[2] + k[1, 2]
        with np.errstate(invalid="ignore"):
            pu, pv = np.round(u).astype(np.int64), np.round(w).astype(np.int64)
        inside = (pu >= cut_bound) * (pv >= cut_bound) * (pu < width - cut_bound) * (pv < height - cut_bound)
        d = depth[v, pv[inside], pu[inside]] / depth_scale
        inside[inside] = np.abs(d - p[2][inside]) <= visibility * d
        point, pixel = _mapping_pairs(pv, pu, inside, width)
        out_point.append(point)
        out_pixel.append(pixel)
        counts.append(point.size)
    return np.asarray(counts), np.concatenate(out_point), np.concatenate(out_pixel)


def _mapping_pairs(row, col, visible, width):
    """OpenScene's (3, P) mapping array (row, column, visible) built as its mapper returns it, then
    read back as this view's pairs: (point (N,), flat pixel (N,)) int64."""
    import numpy as np

    mapping = np.zeros((3, visible.size), dtype=np.int64)
    mapping[0][visible] = row[visible]
    mapping[1][visible] = col[visible]
    mapping[2][visible] = 1
    point = np.flatnonzero(mapping[2])
    return point, mapping[0][point] * width + mapping[1][point]


def baseline(points, cams):
    """OpenScene's per-view loop (as :func:`openscene_mapping`) with OUR decision rule, so that its
    pairs must equal ours: what our implementation gains at equal decisions.

    Per view and for ALL points: homogeneous coordinates built for the call, a general 4x4
    inverse of the pose, float64 matrix product, both projections, integer pixel coordinates,
    inside masks, depth look-ups for the points inside, a (3, P) integer mapping array
    (row, column, visible) as OpenScene returns it, from which the pairs are read.
    """
    import numpy as np

    from pipeline.project.reference import border_depth

    n_points = points.shape[0]
    width, height = cams.label_size
    dh, dw = cams.depth.shape[1:]
    occ = cams.occlusion
    out_point, out_pixel, counts = [], [], []
    for v in range(cams.n_views):
        coords = np.concatenate([points, np.ones((n_points, 1))], axis=1).T  # (4, P) float64
        world_to_camera = np.linalg.inv(cams.poses[v])
        p = world_to_camera @ coords
        kd, kl = cams.depth_k[v], cams.label_k[v]
        z = p[2]
        xl = np.floor(p[0] * kl[0, 0] / z + kl[0, 2] + 0.5).astype(np.int64)
        yl = np.floor(p[1] * kl[1, 1] / z + kl[1, 2] + 0.5).astype(np.int64)
        xd = np.floor(p[0] * kd[0, 0] / z + kd[0, 2] + occ.offset).astype(np.int64)
        yd = np.floor(p[1] * kd[1, 1] / z + kd[1, 2] + occ.offset).astype(np.int64)
        inside_mask = (z > 0) * (xl >= 0) * (yl >= 0) * (xl < width) * (yl < height)
        zi = z[inside_mask]
        d_min = np.full(zi.size, np.inf)
        d_max = np.full(zi.size, -np.inf)
        for tx, ty in occ.taps:
            x, y = xd[inside_mask] + tx, yd[inside_mask] + ty
            ok = (x >= -occ.border) * (x < dw + occ.border) * (y >= -occ.border) * (y < dh + occ.border)
            d = cams.depth[v, np.clip(y, 0, dh - 1), np.clip(x, 0, dw - 1)] / cams.depth_scale
            beyond = ok * ((x < 0) + (x >= dw) + (y < 0) + (y >= dh))  # the rule's edge extension
            if beyond.any():
                d[beyond] = border_depth(cams, np.full(int(beyond.sum()), v), x[beyond], y[beyond])
            ok = ok * (d > 0)
            d_min = np.where(ok, np.minimum(d_min, d), d_min)
            d_max = np.where(ok, np.maximum(d_max, d), d_max)
        tol = occ.threshold * (zi if occ.mode == "relative" else 1.0)
        inside_mask[inside_mask] = (zi <= d_max + tol) * (zi >= d_min - tol)
        point, pixel = _mapping_pairs(yl, xl, inside_mask, width)
        out_point.append(point)
        out_pixel.append(pixel)
        counts.append(point.size)
    return np.asarray(counts), np.concatenate(out_point), np.concatenate(out_pixel)


def _canonical(counts, point, pixel):
    """Pairs as one sorted int64 key array (view, point) and the pixels in that order."""
    import numpy as np

    view = np.repeat(np.arange(len(counts)), counts)
    key = view.astype(np.int64) * (1 << 32) + point.astype(np.int64)
    order = np.argsort(key, kind="stable")
    return key[order], pixel[order]


def _child(args) -> None:
    """Run one method once in this fresh process and print JSON (time, peak RSS)."""
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    scene = load_scene(Path(args.cache), args.points, args.views, args.seed)
    cams = cameras(scene, footprint=args.footprint)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    if args.child == "openscene":
        counts, point, pixel = openscene_mapping(scene.points, scene.poses, scene.depth, scene.depth_k)
    elif args.child == "baseline":
        counts, point, pixel = baseline(scene.points, cams)
    else:
        from pipeline.project.runner import visible_pairs

        pairs = visible_pairs(scene.points, cams, device=args.device, chunk_pairs=args.chunk_pairs)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        counts, point, pixel = np.diff(pairs.view_offsets), pairs.point, pairs.pixel
    seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"method": args.child, "seconds": seconds, "peak_rss_mib": rss / 1024, "rss_before_mib": rss0 / 1024, "pairs": int(point.size)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=150_000, help="points in the scene (default 150000)")
    parser.add_argument("--views", type=int, default=100, help="RGB-D views (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="scene seed")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for numpy and torch (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per method; the median is reported")
    parser.add_argument("--device", default="cpu", help="torch device for ours (cpu, cuda)")
    parser.add_argument("--chunk-pairs", type=int, default=None, help="pairs per chunk for ours (default: the device's)")
    parser.add_argument("--cache", default="results/bench/project_scene.npz", help="scene cache file (generated once)")
    parser.add_argument("--footprint", choices=["bilinear", "nearest"], default="bilinear", help="occlusion footprint (default bilinear)")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--child", choices=["openscene", "baseline", "ours"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    _set_threads(args.threads)
    if args.child:
        _child(args)
        return

    import numpy as np
    import torch

    from pipeline.project.runner import visible_pairs

    torch.set_num_threads(args.threads)
    scene = load_scene(Path(args.cache), args.points, args.views, args.seed)
    cams = cameras(scene, footprint=args.footprint)

    cpu_times: dict[str, list[float]] = {"openscene": [], "baseline": [], "ours": []}

    def timed(fn, name=None):
        times, result = [], None
        for _ in range(args.repeats):
            start, cpu = time.perf_counter(), time.process_time()
            result = fn()
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
            if name:
                cpu_times[name].append(time.process_time() - cpu)
        return float(np.median(times)), times, result

    visible_pairs(scene.points, cams, device=args.device, chunk_pairs=args.chunk_pairs)  # warm-up
    # alternate the two methods so that a change in the machine's load hits both alike
    t_base, times_base, t_ours, times_ours, times_os = [], [], [], [], []
    for _ in range(args.repeats):
        _, ts, (counts_s, _, _) = timed(lambda: openscene_mapping(scene.points, scene.poses, scene.depth, scene.depth_k), "openscene")
        _, tb, (counts_b, point_b, pixel_b) = timed(lambda: baseline(scene.points, cams), "baseline")
        _, to, pairs = timed(lambda: visible_pairs(scene.points, cams, device=args.device, chunk_pairs=args.chunk_pairs), "ours")
        times_os += ts
        times_base += tb
        times_ours += to
    t_os, t_base, t_ours = float(np.median(times_os)), float(np.median(times_base)), float(np.median(times_ours))
    _, _, inexact = timed(lambda: visible_pairs(scene.points, cams, device=args.device, chunk_pairs=args.chunk_pairs, exact=False))

    key_b, pix_b = _canonical(counts_b, point_b, pixel_b)
    key_o, pix_o = _canonical(np.diff(pairs.view_offsets), pairs.point, pairs.pixel)
    key_i, _ = _canonical(np.diff(inexact.view_offsets), inexact.point, inexact.pixel)
    identical = bool(key_b.size == key_o.size and np.array_equal(key_b, key_o) and np.array_equal(pix_b, pix_o))
    inexact_diff = int(np.setxor1d(key_b, key_i).size)

    mem = {}
    for method in ("openscene", "baseline", "ours"):
        cmd = [sys.executable, __file__, "--child", method, "--points", str(args.points), "--views", str(args.views),
               "--seed", str(args.seed), "--threads", str(args.threads), "--device", args.device, "--cache", args.cache,
               "--footprint", args.footprint]
        if args.chunk_pairs:
            cmd += ["--chunk-pairs", str(args.chunk_pairs)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ.copy())
        mem[method] = json.loads(out.stdout.strip().splitlines()[-1])

    n_views = cams.n_views
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, {args.threads} threads",
        "device": args.device if not args.device.startswith("cuda") else torch.cuda.get_device_name(),
        "points": int(scene.points.shape[0]),
        "views": n_views,
        "depth_size": [int(scene.depth.shape[2]), int(scene.depth.shape[1])],
        "label_size": list(cams.label_size),
        "occlusion": cams.occlusion.__dict__,
        "pairs": int(key_o.size),
        "openscene_pairs": int(np.sum(counts_s)),
        "openscene_ms_per_view": 1e3 * t_os / n_views,
        "openscene_cpu_ms_per_view": 1e3 * float(np.median(cpu_times["openscene"])) / n_views,
        "speedup_vs_openscene": t_os / t_ours,
        "cpu_time_ratio_vs_openscene": float(np.median(cpu_times["openscene"]) / np.median(cpu_times["ours"])),
        "baseline_ms_per_view": 1e3 * t_base / n_views,
        "ours_ms_per_view": 1e3 * t_ours / n_views,
        "speedup": t_base / t_ours,
        "baseline_cpu_ms_per_view": 1e3 * float(np.median(cpu_times["baseline"])) / n_views,
        "ours_cpu_ms_per_view": 1e3 * float(np.median(cpu_times["ours"])) / n_views,
        "cpu_time_ratio": float(np.median(cpu_times["baseline"]) / np.median(cpu_times["ours"])),
        "openscene_runs_s": times_os,
        "baseline_runs_s": times_base,
        "ours_runs_s": times_ours,
        "identical_pairs_and_pixels": identical,
        "float32_without_reexact_differing_pairs": inexact_diff,
        "ours_stats": pairs.stats,
        "peak_rss_mib": {m: round(mem[m]["peak_rss_mib"], 1) for m in mem},
        "load_average": os.getloadavg(),
    }
    print(json.dumps(result, indent=2))
    print(
        f"\n| method | pairs | wall ms/view | ours faster by (wall) | CPU ms/view | ours faster by (CPU) | peak RSS (MiB) |\n"
        f"|---|---|---|---|---|---|---|\n"
        f"| OpenScene's rule (one intrinsics, 0.25 d, cut 10) | {result['openscene_pairs']} | {result['openscene_ms_per_view']:.2f} | "
        f"{result['speedup_vs_openscene']:.2f}x | {result['openscene_cpu_ms_per_view']:.2f} | {result['cpu_time_ratio_vs_openscene']:.2f}x | "
        f"{result['peak_rss_mib']['openscene']:.0f} |\n"
        f"| our rule in OpenScene's loop | {key_b.size} | {result['baseline_ms_per_view']:.2f} | {result['speedup']:.2f}x | "
        f"{result['baseline_cpu_ms_per_view']:.2f} | {result['cpu_time_ratio']:.2f}x | {result['peak_rss_mib']['baseline']:.0f} |\n"
        f"| ours ({args.device}, {args.threads} threads) | {key_o.size} | {result['ours_ms_per_view']:.2f} | 1.0x | "
        f"{result['ours_cpu_ms_per_view']:.2f} | 1.0x | {result['peak_rss_mib']['ours']:.0f} |\n"
        f"\nours vs our rule in OpenScene's loop, identical visibility and pixels: {identical}; "
        f"float32 alone would differ on {inexact_diff} pairs; re-decided in float64: {pairs.stats['uncertain_pairs']}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    if not identical:
        sys.exit("visibility differs from the baseline")


if __name__ == "__main__":
    main()
