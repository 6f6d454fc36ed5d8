"""Projection on mesh scenes at ScanNet's sizes: speed AND accuracy, ours vs OpenScene's rule.

What a user comparing us with OpenScene's fusion gets on a realistic input: demo rooms generated
in the ScanNet export format at ScanNet's sensor sizes (colour 1296x968, depth 640x480, 100 views,
a mesh of 150-200 k vertices at 3 cm spacing, points in the mesh's own vertex order, as a
``*_vh_clean_2.ply`` holds them), prepared by our prepare stage. Per scene and label-map size:

* **OpenScene's rule** (:func:`bench.project.openscene_mapping`): one intrinsics (the depth
  camera's) for depth and label pixels, ``np.round``, 10-pixel border cut, visible when
  ``|d - z| <= 0.25 d``. At a label size below the depth's (OpenScene's own ScanNet setting is
  320x240) the depth image is subsampled to the label size (nearest), as its preprocessing does.
* **ours, projection**: :func:`pipeline.project.runner.visible_pairs` with the project stage's
  defaults (colour intrinsics for label pixels, native depth, 2x2 bracket, 1 cm, border 8).
* **ours, projection + back-face test**: what the stage runs per sample before voting
  (``project.occlusion.backface: true``, the default), building the triangle table included.

Times: CPU time and wall per view, one thread, methods alternated, median of ``--repeats``.
Accuracy against the generator's ray-cast visibility of every (view, vertex) pair
(``_demo_gt/visibility.npz``): recall, false positives per truly visible pair, and the share of
truly visible, labelled vertices whose majority vote over their pairs (2D ground-truth label
maps, i.e. what zero-noise pseudo-labels give) equals their 3D ground truth; our votes break
ties to the nearest view as the stage does, OpenScene's are plain majorities (it averages
features; a vote is what its pairs would give a label).

Run: ``PYTHONPATH=. python bench/project_mesh.py`` (``--help``); scenes and prepared stores are
cached under ``--cache`` (about 100 s per scene to generate on a 2-core machine).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

if __name__ == "__main__":  # the thread count must be set before numpy loads its BLAS
    _threads = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv[:-1] else "1"
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _threads

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def prepared_scene(cache: Path, seed: int, args: argparse.Namespace, label_size: tuple[int, int]) -> Path:
    """The prepared store of the scene of ``seed`` at ``label_size`` (W, H), generated and
    prepared once under ``cache``."""
    from pipeline.demo.generate import DemoOptions, generate_scene, write_meta
    from pipeline.prepare import prepare_shard

    tag = f"seed{seed}_v{args.views}_s{args.vertex_spacing:g}"
    root = cache / tag
    scene = "scene0000_00"
    if not (root / "scans" / scene).is_dir():
        start = time.perf_counter()
        options = DemoOptions(seed=seed, views=args.views, depth_size=tuple(args.depth_size), color_size=tuple(args.color_size),
                              vertex_spacing=args.vertex_spacing)
        generate_scene(root, scene, options)
        write_meta(root, [scene], [])
        print(f"generated {tag} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    out = root / f"prepared_{label_size[0]}x{label_size[1]}.zarr"
    if not out.exists():
        dataset = {
            "name": "mesh", "kind": "scannet", "root": str(root), "scans_dir": "scans",
            "label_map": "scannetv2-labels.combined.tsv", "split_files": {"train": "scannetv2_train.txt"},
            "frame_skip": 1, "working_size": list(label_size), "image_codec": "jpeg", "jpeg_quality": 95,
        }
        prepare_shard(dataset, "train-000", "train", [scene], out, threads=2)
    return out


class Sample:
    """The arrays the three methods and the scoring need, read once from a prepared store."""

    def __init__(self, path: Path, label_size: tuple[int, int]) -> None:
        from pipeline.project.stage import project_options, sample_cameras
        from pipeline.stores import StoreReader
        from pipeline.vocab import apply_lut, benchmark, prepared_ground_truth_luts

        store = StoreReader(path, "prepared")
        self.name = "scene0000_00"
        self.options = project_options({})
        self.cams = sample_cameras(store, self.name, label_size, self.options)
        self.xyz = store.read(self.name, "points/xyz")
        self.faces = store.read(self.name, "mesh/faces")
        self.depth_scale = float(store.sample_attrs(self.name).get("depth_scale", 1000.0))
        luts = prepared_ground_truth_luts(store.attrs, benchmark("scannet20"))
        self.label_maps = apply_lut(luts["views"], store.read(self.name, "views/label"), default=255).astype(np.uint8)
        self.point_gt = apply_lut(luts["points"], store.read(self.name, "points/label"), default=255).astype(np.uint8)
        self.frames = store.read(self.name, "views/frame")
        self.label_size = label_size
        depth, depth_k = self.cams.depth, self.cams.depth_k[0]
        from pipeline.camera import scale_intrinsics

        dh, dw = depth.shape[1:]
        if (dw, dh) != label_size:  # OpenScene's preprocessing resizes depth to its image size (nearest)
            from pipeline.images import nearest_indices

            depth = depth[:, nearest_indices(dh, label_size[1])][:, :, nearest_indices(dw, label_size[0])]
        self.openscene_depth = np.ascontiguousarray(depth)
        self.openscene_k = scale_intrinsics(depth_k, (dw, dh), label_size)
        gt = np.load(path.parent / "scans" / self.name / "_demo_gt" / "visibility.npz")
        self.truth = {int(f): gt["vertices"][gt["offsets"][i]: gt["offsets"][i + 1]] for i, f in enumerate(gt["frames"])}

    def openscene(self):
        from project import openscene_mapping

        counts, point, pixel = openscene_mapping(self.xyz, self.cams.poses, self.openscene_depth, self.openscene_k, self.depth_scale)
        offsets = np.zeros(counts.size + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        return offsets, point, pixel

    def ours(self):
        from pipeline.project.runner import visible_pairs

        pairs = visible_pairs(self.xyz, self.cams, device="cpu", threads=1)
        return pairs.view_offsets, pairs.point, pairs.pixel

    def ours_backface(self):
        from pipeline.project.backface import BackFaces, drop_back_faces

        offsets, point, pixel = self.ours()
        kept = drop_back_faces(BackFaces(self.xyz, self.faces), self.cams.poses, offsets, point, pixel)
        return kept[:3]

    def score(self, offsets, point, pixel, nearest: bool) -> dict:
        """Recall, false positives (per truly visible pair) and label accuracy of some pairs."""
        from pipeline.pairs import pair_depths, pair_labels
        from pipeline.voting import majority

        n = self.xyz.shape[0]
        tp = fn = fp = 0
        truly = np.zeros(n, bool)
        for v, frame in enumerate(self.frames):
            found = np.zeros(n, bool)
            found[point[offsets[v]: offsets[v + 1]]] = True
            real = np.zeros(n, bool)
            real[self.truth[int(frame)]] = True
            tp += int((found & real).sum())
            fn += int((~found & real).sum())
            fp += int((found & ~real).sum())
            truly |= real
        rank = pair_depths(self.xyz, self.cams.poses, offsets, point) if nearest else None
        votes = majority(point, pair_labels(self.label_maps, offsets, pixel), n, rank=rank)
        scored = truly & (self.point_gt != 255)
        return {
            "pairs": int(point.size),
            "recall": tp / max(1, tp + fn),
            "false_positives": fp / max(1, tp + fn),
            "labels": float((votes.label[scored] == self.point_gt[scored]).mean()),
            "labels_of_seen": float((votes.label[scored & (votes.label != 255)] == self.point_gt[scored & (votes.label != 255)]).mean()),
        }


METHODS = {
    "OpenScene's rule": ("openscene", False),
    "ours, projection": ("ours", True),
    "ours, projection + back-face test": ("ours_backface", True),
}


def measure(sample: Sample, repeats: int) -> list[dict]:
    """Time (alternated, median) and score each method on ``sample``."""
    times = {m: [] for m in METHODS}
    cpu = {m: [] for m in METHODS}
    results = {}
    for fn, _ in METHODS.values():  # warm-up (imports, first-call allocations), not timed
        getattr(sample, fn)()
    for _ in range(repeats):
        for name, (fn, _) in METHODS.items():
            start, c0 = time.perf_counter(), time.process_time()
            results[name] = getattr(sample, fn)()
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - c0)
    n_views = sample.cams.n_views
    base_cpu = float(np.median(cpu["OpenScene's rule"]))
    base_wall = float(np.median(times["OpenScene's rule"]))
    rows = []
    for name, (_, nearest) in METHODS.items():
        row = {"method": name, "wall_ms_per_view": 1e3 * float(np.median(times[name])) / n_views,
               "cpu_ms_per_view": 1e3 * float(np.median(cpu[name])) / n_views,
               "speed_vs_openscene_cpu": base_cpu / float(np.median(cpu[name])),
               "speed_vs_openscene_wall": base_wall / float(np.median(times[name]))}
        row.update(sample.score(*results[name], nearest=nearest))
        rows.append(row)
    return rows


def stage_share(path: Path, sample: Sample, tmp: Path) -> dict:
    """The project stage's own time for the sample (``project_sample``: read, project, back-face
    test, two votes), with CLIP and refine stores holding the 2D ground truth, and the share of it
    spent projecting (its ``projection_seconds``: visible_pairs + back-face test)."""
    from pipeline.project.stage import project_sample
    from pipeline.stores import StoreReader, StoreWriter

    clip_path, refined_path = tmp / "clip.zarr", tmp / "refined.zarr"
    if not clip_path.exists():
        truth = sample.label_maps
        with StoreWriter(clip_path, "clip", attrs={"backend": "ground-truth"}) as clip, \
                StoreWriter(refined_path, "refined", attrs={"options": {"nesting_order": "part"}}) as refined:
            clip.add_sample(sample.name, {"views/label": truth, "views/confidence": np.ones(truth.shape, np.float16)})
            refined.add_sample(sample.name, {"views/label": truth, "views/label_alt": truth})
    prepared = StoreReader(path, "prepared")
    clip, refined = StoreReader(clip_path, "clip"), StoreReader(refined_path, "refined")
    start, c0 = time.perf_counter(), time.process_time()
    _, attrs = project_sample(prepared, clip, refined, sample.name, sample.options, threads=1)
    wall, cpu = time.perf_counter() - start, time.process_time() - c0
    return {"stage_wall_s": wall, "stage_cpu_s": cpu, "projection_s": float(attrs["projection_seconds"]),
            "projection_share_of_wall": float(attrs["projection_seconds"]) / wall}


def compare_backface(sample: Sample, rev: str, repeats: int) -> dict:
    """The back-face test as it was at git revision ``rev`` against the current one, on the same
    pairs: CPU time (build + all views, median of ``repeats``) and whether the results are equal."""
    import importlib.util
    import subprocess
    import tempfile

    from pipeline.project import backface as now

    src = subprocess.run(["git", "show", f"{rev}:pipeline/project/backface.py"], capture_output=True, text=True, check=True,
                         cwd=REPO).stdout
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "backface_before.py"
        path.write_text(src)
        spec = importlib.util.spec_from_file_location("backface_before", path)
        before = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(before)
    offsets, point, pixel = sample.ours()
    times: dict[str, list[float]] = {"before": [], "now": []}
    results = {}
    for _ in range(repeats):
        for name, module in (("before", before), ("now", now)):
            c0 = time.process_time()
            back = module.BackFaces(sample.xyz, sample.faces)
            results[name] = module.drop_back_faces(back, sample.cams.poses, offsets, point, pixel)
            times[name].append(time.process_time() - c0)
    same = all(np.array_equal(a, b) for a, b in zip(results["before"][:3], results["now"][:3]))
    t_before, t_now = float(np.median(times["before"])), float(np.median(times["now"]))
    n_views = sample.cams.n_views
    return {"method": f"back-face test at {rev} vs now", "triangles": int(sample.faces.shape[0]), "pairs_tested": int(point.size),
            "before_cpu_ms_per_view": 1e3 * t_before / n_views, "now_cpu_ms_per_view": 1e3 * t_now / n_views,
            "speedup": t_before / t_now, "identical": bool(same)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="demo seeds, one scene each (default 0 1 2)")
    parser.add_argument("--views", type=int, default=100, help="views per scene (default 100)")
    parser.add_argument("--vertex-spacing", type=float, default=0.03, help="mesh spacing in m (default 0.03: 150-200 k vertices)")
    parser.add_argument("--depth-size", type=int, nargs=2, default=[640, 480], metavar=("W", "H"))
    parser.add_argument("--color-size", type=int, nargs=2, default=[1296, 968], metavar=("W", "H"))
    parser.add_argument("--label-sizes", nargs="+", default=["640x480", "320x240"],
                        help="label-map sizes WxH to measure at (default 640x480 320x240: the sensor's, OpenScene's)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per method (median)")
    parser.add_argument("--threads", type=int, default=1, help="numpy/torch threads (default 1)")
    parser.add_argument("--cache", default="results/bench/project_mesh", help="generated scenes and prepared stores")
    parser.add_argument("--json", default=None, help="also write the rows here")
    parser.add_argument("--no-stage", action="store_true", help="skip timing the project stage's whole per-sample work")
    parser.add_argument("--compare-backface", metavar="REV", default=None,
                        help="also time the back-face test as it was at git revision REV against the current one (first label size)")
    args = parser.parse_args(argv)  # BLAS threads: set at import, before numpy loaded
    import torch

    torch.set_num_threads(args.threads)
    sizes = [tuple(int(x) for x in s.lower().split("x")) for s in args.label_sizes]
    rows = []
    print("| scene | vertices | labels | method | pairs | wall ms/view | CPU ms/view | CPU time: OpenScene / this | "
          "recall | FP | labels right |\n|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    for seed in args.seeds:
        for size in sizes:
            sample = Sample(prepared_scene(Path(args.cache), seed, args, size), size)
            for row in measure(sample, args.repeats):
                row.update(seed=seed, vertices=int(sample.xyz.shape[0]), label_size=list(size), load_average=os.getloadavg())
                rows.append(row)
                print(f"| seed {seed} | {row['vertices']} | {size[0]}x{size[1]} | {row['method']} | {row['pairs']} | "
                      f"{row['wall_ms_per_view']:.2f} | {row['cpu_ms_per_view']:.2f} | {row['speed_vs_openscene_cpu']:.2f} | "
                      f"{row['recall']:.3f} | {row['false_positives']:.3f} | {row['labels']:.3f} |", flush=True)
            if args.compare_backface and size == sizes[0]:
                row = compare_backface(sample, args.compare_backface, args.repeats)
                rows.append({"seed": seed, "vertices": int(sample.xyz.shape[0]), **row})
                print(f"| seed {seed} | {sample.xyz.shape[0]} | {size[0]}x{size[1]} | {row['method']}: {row['triangles']} triangles, "
                      f"{row['pairs_tested']} pairs, {row['before_cpu_ms_per_view']:.2f} -> {row['now_cpu_ms_per_view']:.2f} CPU ms/view "
                      f"({row['speedup']:.2f}x), identical: {row['identical']} | | | | | | | |", flush=True)
                if not row["identical"]:
                    print(f"the back-face test's decisions differ from revision {args.compare_backface}", file=sys.stderr)
                    return 1
            if not args.no_stage:
                import tempfile

                with tempfile.TemporaryDirectory(prefix="project-mesh-") as tmp:
                    stage = stage_share(prepared_scene(Path(args.cache), seed, args, size), sample, Path(tmp))
                rows.append({"seed": seed, "label_size": list(size), "method": "project stage, per sample", **stage})
                print(f"| seed {seed} | {sample.xyz.shape[0]} | {size[0]}x{size[1]} | the project stage's sample "
                      f"(read, project, back faces, votes): {stage['stage_wall_s']:.2f} s wall, {stage['stage_cpu_s']:.2f} s CPU; "
                      f"projection {stage['projection_s']:.2f} s = {100 * stage['projection_share_of_wall']:.0f} % | | | | | | | |",
                      flush=True)
    if args.json:
        tmp = Path(args.json).with_suffix(".partial")
        tmp.write_text(json.dumps({"settings": vars(args), "rows": rows}, indent=1))
        os.replace(tmp, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
