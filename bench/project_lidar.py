"""Projection of lidar samples: the devkit's rule against ray-cast truth, with and without
``project.lidar_occlusion``, and its cost on a nuScenes-size sample.

Accuracy (``--root ROOT``, a procedural nuScenes demo: ``python -m pipeline demo-nuscenes --out
ROOT``): every sample of the demo is read with the nuScenes adapter; the label maps are the
demo's per-pixel truth (``ROOT/demo_truth/<sample token>.npz``, ``labels_<CAM>``, resized to
``--label-size`` by nearest pixel: zero-noise labels); the pairs come from
:func:`pipeline.project.runner.visible_pairs` (the devkit's rule), and the occlusion test from
:func:`pipeline.project.lidar_occlusion.hidden_pairs`. Per (camera, point) pair, *truly visible*
= the point is in ``visible_<CAM>`` (the generator's ray casting); *occluded* = projected but not
truly visible. A pair is *right* when the label map's fine class at its pixel is the point's
lidarseg fine class. Printed, over all samples:

* ``acc visible``: right share of the truly visible pairs (the goal is >= 0.99);
* ``acc occluded``: right share of the occluded pairs, without and (kept ones) with the test;
* ``dropped``: share of the pairs the test removes, of the truly visible and of the occluded;
* ``wrong kept``: share of all kept pairs that are wrong; ``points``: share of the seen points
  whose majority label (:func:`pipeline.voting.majority`) is right, and points seen.

Timing (always): :func:`tests.test_project_lidar_scene.make_lidar_scene` (a street, ~33k points,
6 cameras with nuScenes' mounting, 1600x900 native images, labels at 800x450), projection alone
and the occlusion test, median of ``--repeat`` runs, one thread.

Run: ``PYTHONPATH=. python bench/project_lidar.py --root ROOT`` (``--sweep`` adds variants of the
test; ``--json FILE`` writes the figures).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # pipeline and tests (the synthetic street) from this checkout

VARIANTS = {  # name -> lidar_occlusion overrides (on top of the defaults)
    "default": {},
    "sides 3": {"sides": 3},
    "sides 1 (plain buffer)": {"sides": 1},
    "sides 1, radius 0.1 m": {"sides": 1, "radius": 0.1},
    "scale 1": {"scale": 1.0, "max_pixels": 32.0},
    "radius 0.15 m": {"radius": 0.15},
    "radius 0.4 m": {"radius": 0.4},
    "margin 0.1 m + 5 %": {"absolute": 0.1, "relative": 0.05},
}


def _samples(root: Path, version: str, working: tuple[int, int]):
    """(split, adapter, sample tokens) of every split of the demo."""
    from pipeline.config import validate
    from pipeline.datasets import make_adapter

    dataset = validate({"dataset": {"kind": "nuscenes", "root": str(root), "nuscenes": {"version": version},
                                    "working_size": list(working)}})["dataset"]
    adapter = make_adapter(dataset, threads=1)
    for split in ("mini_train", "mini_val"):
        yield split, adapter, adapter.list_samples(split)


def _cameras(arrays, label_size):
    import numpy as np

    from pipeline.camera import scale_intrinsics
    from pipeline.project.reference import Cameras

    native_k, native_size = arrays["views/native_intrinsics"], arrays["views/native_size"]
    label_k = np.stack([scale_intrinsics(k, tuple(int(x) for x in s), label_size) for k, s in zip(native_k, native_size)])
    return Cameras(arrays["views/pose"], label_k, label_size, min_depth=1.0, native_k=native_k, native_size=native_size)


def _sample_figures(root: Path, token: str, arrays, channels, label_size, variants):
    """Per-pair truth, rightness and the hidden masks of one sample."""
    import numpy as np

    from pipeline.images import resize_labels
    from pipeline.project.lidar_occlusion import LidarOcclusion, hidden_pairs
    from pipeline.project.runner import visible_pairs

    xyz, fine = arrays["points/xyz"], arrays["points/label"].astype(np.int64)
    cams = _cameras(arrays, label_size)
    start = time.perf_counter()
    pairs = visible_pairs(xyz, cams, device="cpu", threads=1)
    seconds = {"projection": time.perf_counter() - start}
    view = np.repeat(np.arange(cams.n_views), np.diff(pairs.view_offsets))
    truly, pix_label, n_truth = np.zeros(view.size, bool), np.zeros(view.size, np.uint8), 0
    with np.load(root / "demo_truth" / f"{token}.npz") as truth:
        for v, channel in enumerate(channels):
            a, b = pairs.view_offsets[v], pairs.view_offsets[v + 1]
            visible = truth[f"visible_{channel}"]
            n_truth += visible.size
            truly[a:b] = np.isin(pairs.point[a:b], visible)
            labels = resize_labels(truth[f"labels_{channel}"], label_size).reshape(-1)
            pix_label[a:b] = labels[pairs.pixel[a:b]]
    hidden = {}
    for name, overrides in variants.items():
        start = time.perf_counter()
        hidden[name] = hidden_pairs(xyz, cams, pairs.view_offsets, pairs.point, pairs.pixel, LidarOcclusion(True, **overrides))
        seconds[name] = time.perf_counter() - start
    right = pix_label == fine[pairs.point]
    return {"truly": truly, "right": right, "pix_label": pix_label, "point": pairs.point, "fine": fine, "n_truth": n_truth,
            "hidden": hidden, "seconds": seconds}


def _point_accuracy(samples, keep_of) -> tuple[float, int]:
    """Share of the seen points whose majority label is right, and how many points are seen."""
    import numpy as np

    from pipeline.voting import majority

    right = seen = 0
    for s in samples:
        keep = keep_of(s)
        point = s["point"][keep]
        votes = majority(point, s["pix_label"][keep], s["fine"].size, n_classes=32)  # fine classes, ties: lowest
        seen_mask = np.bincount(point, minlength=s["fine"].size) > 0
        right += int((votes.label[seen_mask] == s["fine"][seen_mask]).sum())
        seen += int(seen_mask.sum())
    return right / max(1, seen), seen


def summarise(samples, variants) -> dict:
    """The figures of the module docstring over all ``samples``."""
    import numpy as np

    cat = {k: np.concatenate([s[k] for s in samples]) for k in ("truly", "right")}
    truly, right = cat["truly"], cat["right"]
    occ = ~truly
    out = {
        "samples": len(samples), "pairs": int(truly.size), "occluded_share": float(occ.mean()),
        "truth_pairs_projected": float(truly.sum() / max(1, sum(s["n_truth"] for s in samples))),
        "acc_visible": float(right[truly].mean()), "acc_occluded": float(right[occ].mean()) if occ.any() else None,
        "wrong_kept": float(1 - right.mean()),
        "points": _point_accuracy(samples, lambda s: np.ones(s["truly"].size, bool)),
        "seconds_projection": float(np.median([s["seconds"]["projection"] for s in samples])),
        "variants": {},
    }
    for name in variants:
        hid = np.concatenate([s["hidden"][name] for s in samples])
        kept_occ = occ & ~hid
        out["variants"][name] = {
            "dropped": float(hid.mean()), "dropped_visible": float(hid[truly].mean()),
            "dropped_occluded": float(hid[occ].mean()) if occ.any() else None,
            "acc_occluded_kept": float(right[kept_occ].mean()) if kept_occ.any() else None,
            "acc_visible_kept": float(right[truly & ~hid].mean()),
            "wrong_kept": float(1 - right[~hid].mean()),
            "points": _point_accuracy(samples, lambda s, n=name: ~s["hidden"][n]),
            "seconds": float(np.median([s["seconds"][name] for s in samples])),
        }
    return out


def measure_demo(root: Path, version: str, label_size: tuple[int, int], variants) -> dict:
    """:func:`summarise` over every sample of the demo at ``root``."""
    samples = []
    for split, adapter, tokens in _samples(root, version, label_size):
        for token in tokens:
            arrays = adapter.load(token, split).arrays
            channels = [adapter.options.cameras[int(i)] for i in arrays["views/frame"]]
            samples.append(_sample_figures(root, token, arrays, channels, label_size, variants))
    if not samples:
        raise SystemExit(f"{root}: no samples in mini_train or mini_val")
    return summarise(samples, variants)


def time_nuscenes_size(repeat: int, seed: int = 0) -> dict:
    """Projection and occlusion-test seconds (median of ``repeat``) on the synthetic street at
    nuScenes' sizes (1600x900 native, labels 800x450), one thread."""
    import numpy as np

    from pipeline.camera import scale_intrinsics
    from pipeline.project.lidar_occlusion import LidarOcclusion, hidden_pairs
    from pipeline.project.reference import Cameras
    from pipeline.project.runner import visible_pairs
    from tests.test_project_lidar_scene import make_lidar_scene

    scene = make_lidar_scene(seed=seed)
    label_k = np.stack([scale_intrinsics(k, (1600, 900), (800, 450)) for k in scene.native_k])
    cams = Cameras(scene.poses, label_k, (800, 450), min_depth=1.0, native_k=scene.native_k, native_size=scene.native_size)
    proj, test = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        pairs = visible_pairs(scene.points, cams, device="cpu", threads=1)
        proj.append(time.perf_counter() - start)
        start = time.perf_counter()
        hidden_pairs(scene.points, cams, pairs.view_offsets, pairs.point, pairs.pixel, LidarOcclusion(True))
        test.append(time.perf_counter() - start)
    return {"points": int(scene.points.shape[0]), "pairs": int(pairs.point.size), "projection_s": float(np.median(proj)),
            "occlusion_test_s": float(np.median(test)), "uncertain_pairs": pairs.stats["uncertain_pairs"]}


def _print(demo: dict | None, timing: dict) -> None:
    if demo is not None:
        print(f"\n{demo['samples']} samples, {demo['pairs']} pairs; occluded {demo['occluded_share']:.4f} of the pairs; "
              f"truly visible (camera, point) pairs projected: {demo['truth_pairs_projected']:.4f}")
        print(f"no test: acc visible {demo['acc_visible']:.4f}, acc occluded {demo['acc_occluded'] or 0:.4f}, wrong kept "
              f"{demo['wrong_kept']:.4f}, points right {demo['points'][0]:.4f} of {demo['points'][1]}, "
              f"{demo['seconds_projection'] * 1e3:.1f} ms/sample")
        print("| test | dropped | visible dropped | occluded dropped | acc occluded kept | acc visible kept | wrong kept | points right (seen) | ms/sample |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name, v in demo["variants"].items():
            occ_kept = "-" if v["acc_occluded_kept"] is None else f"{v['acc_occluded_kept']:.4f}"
            occ_drop = "-" if v["dropped_occluded"] is None else f"{v['dropped_occluded']:.4f}"
            print(f"| {name} | {v['dropped']:.4f} | {v['dropped_visible']:.4f} | {occ_drop} | {occ_kept} | "
                  f"{v['acc_visible_kept']:.4f} | {v['wrong_kept']:.4f} | {v['points'][0]:.4f} ({v['points'][1]}) | {v['seconds'] * 1e3:.1f} |")
    print(f"\nnuScenes-size sample ({timing['points']} points, 6 cameras 1600x900, labels 800x450, {timing['pairs']} pairs), "
          f"1 thread: projection {timing['projection_s'] * 1e3:.1f} ms, occlusion test {timing['occlusion_test_s'] * 1e3:.1f} ms "
          f"({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--root", type=Path, help="a nuScenes demo root (python -m pipeline demo-nuscenes --out ROOT); without it, timing only")
    parser.add_argument("--version", default="v1.0-mini", help="table folder below the root")
    parser.add_argument("--label-size", type=int, nargs=2, default=[800, 450], metavar=("W", "H"), help="label map size (truth resized)")
    parser.add_argument("--sweep", action="store_true", help="also measure the variants of the test (VARIANTS)")
    parser.add_argument("--repeat", type=int, default=5, help="timing runs on the nuScenes-size sample")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    variants = VARIANTS if args.sweep else {"default": {}}
    demo = measure_demo(args.root, args.version, tuple(args.label_size), variants) if args.root else None
    timing = time_nuscenes_size(args.repeat)
    _print(demo, timing)
    if args.json:
        args.json.write_text(json.dumps({"demo": demo, "timing": timing}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
