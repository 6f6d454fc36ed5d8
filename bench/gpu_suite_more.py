"""The projection and trainer sections of bench/gpu_suite.py (see its docstring)."""

from __future__ import annotations

import importlib.util
import json
import time

import numpy as np


def _canonical(pairs_counts, point, pixel):
    from project import _canonical as canonical  # bench/project.py

    return canonical(pairs_counts, point, pixel)


def project_section(ctx) -> dict:
    import torch

    from project import baseline, cameras, openscene_mapping  # bench/project.py: OpenScene's rule, our rule in its loop
    from pipeline.project.runner import visible_pairs
    from tests.projection_scene import make_scene

    s = ctx.sizes["project"]
    start = time.perf_counter()
    scene = make_scene(n_points=s["points"], n_views=s["views"], depth_size=s["depth_size"], color_size=s["color_size"], seed=0)
    scene_s = time.perf_counter() - start
    cams = cameras(scene, label_size=s["depth_size"])
    kernel_device = ctx.device if ctx.cuda else "torch-cpu"
    openscene = "OpenScene's rule (bench/project.py: one intrinsics, depth within 0.25 d, 10-pixel cut)"
    methods = {
        openscene: lambda: openscene_mapping(scene.points, scene.poses, scene.depth, scene.depth_k),
        "our rule in OpenScene's per-view loop (bench/project.py)": lambda: baseline(scene.points, cams),
        "ours, numpy CPU kernel": lambda: visible_pairs(scene.points, cams, device="cpu"),
        f"ours, torch kernel on {kernel_device}": lambda: visible_pairs(scene.points, cams, device=kernel_device),
    }
    visible_pairs(scene.points, cams, device=kernel_device)  # warm-up
    times = {name: [] for name in methods}
    results = {}
    for _ in range(s["repeats"]):  # methods alternate within each repeat
        for name, fn in methods.items():
            if ctx.left() < 0 and times[name]:
                continue
            seconds, results[name] = ctx.timed(fn)
            times[name].append(seconds)
    keys = {}
    for name, res in results.items():
        if isinstance(res, tuple):
            keys[name] = _canonical(*res)
        else:
            keys[name] = _canonical(np.diff(res.view_offsets), res.point, res.pixel)
    names = list(times)
    ref_key, ref_pix = keys[names[1]]  # our rule in OpenScene's loop: the pairs ours must reproduce
    rows = []
    base, base_os = float(np.median(times[names[1]])), float(np.median(times[openscene]))
    for name, t in times.items():
        med = float(np.median(t))
        key, pix = keys[name]
        same = None if name == openscene else bool(np.array_equal(key, ref_key) and np.array_equal(pix, ref_pix))
        rows.append({"method": name, "ms_per_view": round(1e3 * med / s["views"], 3), "runs": len(t),
                     "speedup_vs_baseline": round(base / med, 2), "speedup_vs_openscene": round(base_os / med, 2),
                     "pairs": int(key.size), "identical_to_baseline": same})
    names = names[1:]
    return {"points": s["points"], "views": s["views"], "depth_size": list(s["depth_size"]), "scene_build_s": round(scene_s, 1),
            "baseline_doc": "OpenScene's rule and our rule in OpenScene's per-view loop (bench/project.py); points in random order, "
                            "where our speed-up is larger than on mesh scenes (bench/project_mesh.py)",
            "cuda_over_cpu_kernel": round(float(np.median(times[names[1]]) / np.median(times[names[2]])), 2), "rows": rows}


def _spconv_status() -> tuple[str, bool]:
    """What the report says about spconv, and whether the trainer rows run on it too."""
    if importlib.util.find_spec("spconv") is None:
        return "not installed", False
    try:
        import spconv

        from train.sparse.spconv_backend import import_spconv

        import_spconv()
        version = getattr(spconv, "__version__", "?")
        return f"installed ({version}), measured: the rows on the spconv sparse backend (net3d.backend: spconv)", True
    except Exception as err:  # noqa: BLE001 - an import failure is the record
        return f"installed but fails to import: {type(err).__name__}: {err}", False


def _train_config(ctx, s: dict, preset: dict, backend: str = "torch") -> dict:
    from pipeline.config import validate

    cfg = {
        "device": "cuda" if ctx.cuda else "cpu", "amp": True, "checkpoint_every": 10**6, "log_every": 10**6,
        "net2d": {"backbone": s["net2d"]}, "net3d": {"size": s["net3d"], "voxel_size": 0.05, "backend": backend},
        "data": {**preset, "views_per_sample": 2, "workers": 4 if ctx.cuda else 0, "latent_pixels_per_view": 4096 if ctx.cuda else 256},
        "stage1": {"steps": s["steps"] + 1},
    }
    return validate({"train": cfg})


def _one_sample(args) -> tuple[dict, int]:
    """One synthetic sample's stores (its own shard ``first_shard``) and its 5 cm voxel count."""
    from tests.train_synthetic import make_stores

    root, k, s = args
    made = make_stores(root, samples_per_shard=(1,), n_points=s["points"], n_views=s["views"], size=tuple(s["size"]),
                       extent=tuple(s["extent"]), seed=k, first_shard=k)
    xyz = next(iter(made["truth"].values()))["xyz"]
    return made["stores"], int(np.unique(np.floor(xyz / 0.05).astype(np.int64), axis=0).shape[0])


def _build_stores(ctx, s: dict) -> tuple[dict, int]:
    """The synthetic stores, one sample per shard, built in parallel processes (the GPU host's cores)."""
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    jobs = [(ctx.work / "train_stores", k, s) for k in range(s["samples"])]
    workers = max(1, min(len(jobs), (os.cpu_count() or 1) - 1))
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        made = list(pool.map(_one_sample, jobs))
    stores = {name: [p for m, _ in made for p in m[name]] for name in made[0][0]}
    return stores, int(np.mean([v for _, v in made]))


def train_section(ctx) -> dict:
    import torch

    from train.engine.trainer import run_stage

    s = ctx.sizes["train"]
    start = time.perf_counter()
    stores, voxels = _build_stores(ctx, s)
    rows = ctx.partial.setdefault("rows", [])
    rows.append({"stores_build_s": round(time.perf_counter() - start, 1), "samples": s["samples"], "points_per_sample": s["points"],
                 "floor_m": list(s["extent"]), "voxels_per_sample_5cm": voxels})
    ctx.partial["spconv"], with_spconv = _spconv_status()
    # One row per preset and backend, the same settings on both (spconv only where it imports); the
    # torch rows first, so that a spent time budget skips spconv rows rather than the reference ones.
    runs = [(name, preset, backend) for backend in ("torch", "spconv") for name, preset in s["presets"].items()
            if backend == "torch" or with_spconv]
    for name, preset, backend in runs:
        if ctx.left() < 0:
            rows.append({"preset": name, "sparse_backend": backend, "skipped": "time budget"})
            continue
        if ctx.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        records = []
        t0 = time.perf_counter()
        run_stage(_train_config(ctx, s, preset, backend), "stage1", stores, ctx.work / f"train_{name}_{backend}", progress=False,
                  on_step=lambda step, rec: records.append(rec))
        timed = records[1:] or records
        step_s = float(np.mean([r["step_s"] for r in timed]))
        row = {"preset": name, **preset, "net2d": s["net2d"], "net3d": f"{s['net3d']} ({backend} sparse backend)",
               "sparse_backend": backend, "amp_bf16": ctx.cuda,
               "steps_timed": len(timed), "s_per_step": round(step_s, 4), "steps_per_s": round(1 / step_s, 3),
               "data_wait_share": round(float(np.mean([r.get("data_wait_s", 0.0) for r in timed])) / step_s, 3),
               "wall_s_incl_setup": round(time.perf_counter() - t0, 1)}
        if voxels:  # each sample cropped to max_voxels_per_batch / batch_size voxels (the data pipeline's rule)
            row["voxels_per_step_bound"] = int(preset["batch_size"] * min(voxels, preset["max_voxels_per_batch"] // preset["batch_size"]))
        if ctx.cuda:
            row["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        rows.append(row)
    return dict(ctx.partial)
