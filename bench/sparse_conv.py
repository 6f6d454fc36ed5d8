"""Benchmark: MinkUNet34 forward + backward, our torch sparse backend vs MinkowskiEngine and/or
spconv (CPU).

Scene: a synthetic indoor room (floor, walls, tables, boxes, chairs as surfaces sampled densely),
voxelised at ``--voxel-size``. Every backend gets identical weights (see below) and the same
input. One step = build the input tensor from coordinates (so kernel maps
are built inside the step, as in training), forward, cross-entropy + latent loss, backward.

``--backends torch,spconv`` adds spconv (its CPU build, which is not what spconv is for; see
docs/benchmarks.md). The weights are MinkowskiEngine's when it imports, else the torch backend's,
converted for the others (train/models/convert_minkowski.py, convert_spconv.py).

Each backend runs in its own child process (so peak RSS is its own), rounds alternate between
the backends, and the median over all timed steps is reported.

    PYTHONPATH=. python bench/sparse_conv.py [--threads 2] [--steps 5] [--rounds 2]

On a machine shared with other jobs, also set OMP_WAIT_POLICY=PASSIVE (see docs/benchmarks.md):
spinning OpenMP threads then steal the cores the working threads need.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import torch

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
"""Thread pools of torch (OpenMP, MKL) and of MinkowskiEngine's BLAS (OpenBLAS), all capped."""


def synthetic_room(seed: int = 0, size: tuple[float, float, float] = (4.0, 3.5, 2.4), spacing: float = 0.01) -> torch.Tensor:
    """Points (N, 3) float32 on the surfaces of a furnished room (metres), ``spacing`` apart."""
    g = torch.Generator().manual_seed(seed)

    def plane(origin: tuple[float, float, float], u: tuple[float, float, float], v: tuple[float, float, float]) -> torch.Tensor:
        o, du, dv = torch.tensor(origin), torch.tensor(u), torch.tensor(v)
        nu, nv = max(1, int(du.norm() / spacing)), max(1, int(dv.norm() / spacing))
        a = torch.rand(nu * nv, 1, generator=g)
        b = torch.rand(nu * nv, 1, generator=g)
        return o + a * du + b * dv

    def box(x: float, y: float, z: float, w: float, d: float, h: float) -> list[torch.Tensor]:
        return [
            plane((x, y, z + h), (w, 0, 0), (0, d, 0)),
            plane((x, y, z), (w, 0, 0), (0, 0, h)),
            plane((x, y + d, z), (w, 0, 0), (0, 0, h)),
            plane((x, y, z), (0, d, 0), (0, 0, h)),
            plane((x + w, y, z), (0, d, 0), (0, 0, h)),
        ]

    sx, sy, sz = size
    parts = [
        plane((0, 0, 0), (sx, 0, 0), (0, sy, 0)),
        plane((0, 0, 0), (sx, 0, 0), (0, 0, sz)),
        plane((0, sy, 0), (sx, 0, 0), (0, 0, sz)),
        plane((0, 0, 0), (0, sy, 0), (0, 0, sz)),
        plane((sx, 0, 0), (0, sy, 0), (0, 0, sz)),
    ]
    rng = torch.Generator().manual_seed(seed + 1)
    for _ in range(7):
        w, d, h = (0.4 + 1.2 * torch.rand(3, generator=rng)).tolist()
        h = min(h, 1.8)
        x = float(torch.rand(1, generator=rng)) * (sx - w)
        y = float(torch.rand(1, generator=rng)) * (sy - d)
        parts += box(x, y, 0.0, w, d, h)
    for _ in range(6):  # chairs: seat and back
        x = 0.3 + float(torch.rand(1, generator=rng)) * (sx - 1.0)
        y = 0.3 + float(torch.rand(1, generator=rng)) * (sy - 1.0)
        parts += box(x, y, 0.0, 0.45, 0.45, 0.45)
        parts.append(plane((x, y, 0.45), (0.45, 0, 0), (0, 0, 0.45)))
    return torch.cat(parts).float()


def make_input(voxel_size: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Voxel features (M, 3), coordinates (M, 4) int32 and labels (M,) of the synthetic room."""
    from train.sparse import pool_features, voxelize

    pts = synthetic_room(seed)
    vox = voxelize(pts, torch.tensor([0, pts.shape[0]]), voxel_size)
    colours = torch.sin(pts * 3.0) * 0.5
    feats = pool_features(colours, vox, "mean")
    labels = (vox.coords[:, 3] > 10).long() + (vox.coords[:, 1] % 7 == 0).long()
    return feats, vox.coords, labels


def child(args: argparse.Namespace) -> None:
    """Time ``args.steps`` steps of one backend; print a JSON line."""
    torch.set_num_threads(args.threads)
    from train.models.convert_minkowski import convert_state_dict
    from train.models.convert_spconv import to_spconv
    from train.models.minkunet import MinkUNet34

    feats, coords, labels = make_input(args.voxel_size)
    torch.manual_seed(0)
    model = MinkUNet34(3, 20, 256, backend=args.backend)
    if args.weights:  # one set of weights (MinkowskiEngine's or the torch backend's layout) for every backend
        state = torch.load(args.weights, weights_only=True)
        if args.weights_layout == "minkowski" and args.backend != "minkowski":
            state = convert_state_dict(state)
        if args.backend == "spconv":
            state = to_spconv(state)
        model.load_state_dict(state)
    model.train()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times, cpu_times = [], []
    for step in range(args.steps + 1):
        model.zero_grad(set_to_none=True)
        t0, c0 = time.perf_counter(), time.process_time()
        logits, latent = model(feats, coords)
        loss = torch.nn.functional.cross_entropy(logits, labels) + latent.square().mean()
        loss.backward()
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        if step > 0:  # the first step warms allocators and caches
            times.append(dt)
            cpu_times.append(dc)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({
        "backend": args.backend, "voxels": int(coords.shape[0]), "times": times, "cpu_times": cpu_times,
        "loss": float(loss), "rss_model_mib": rss_before, "peak_rss_mib": peak,
    }))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    p.add_argument("--steps", type=int, default=5, help="timed steps per round and backend (default 5)")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds over the backends (default 2)")
    p.add_argument("--voxel-size", type=float, default=0.05, help="voxel edge in metres (default 0.05, ~35k voxels)")
    p.add_argument("--backends", default="torch,minkowski", help="comma-separated backends: torch, minkowski, spconv (default torch,minkowski)")
    p.add_argument("--backend", help=argparse.SUPPRESS)
    p.add_argument("--weights", help=argparse.SUPPRESS)
    p.add_argument("--weights-layout", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.backend:
        child(args)
        return
    from train.models.minkunet import MinkUNet34
    from train.sparse import minkowski_available, spconv_available

    backends = [b for b in args.backends.split(",") if b]
    have_me = minkowski_available()
    if "minkowski" in backends and not have_me:
        print("MinkowskiEngine not importable: not benchmarking it", file=sys.stderr)
        backends.remove("minkowski")
    if "spconv" in backends and not spconv_available():
        print("spconv not importable: not benchmarking it", file=sys.stderr)
        backends.remove("spconv")
    # One set of weights for every backend, so the losses must agree.
    layout = "minkowski" if have_me else "torch"
    torch.manual_seed(0)
    weights = os.path.join(tempfile.mkdtemp(), f"minkunet34c_{layout}.pth")
    torch.save(MinkUNet34(3, 20, 256, backend=layout).state_dict(), weights)
    results: dict[str, list[dict]] = {b: [] for b in backends}
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    for r in range(args.rounds):
        for b in backends:
            cmd = [sys.executable, __file__, "--backend", b, "--threads", str(args.threads), "--steps", str(args.steps),
                   "--voxel-size", str(args.voxel_size), "--weights", weights, "--weights-layout", layout]
            env = dict(os.environ, **{v: str(args.threads) for v in THREAD_VARS})
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout.strip().splitlines()[-1]
            results[b].append(json.loads(out))
            print(f"round {r + 1} {b}: median {statistics.median(results[b][-1]['times']):.3f} s", file=sys.stderr)
    shutil.rmtree(os.path.dirname(weights))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.threads} threads, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}, torch {torch.__version__}")
    print(f"scene: synthetic room, voxel {args.voxel_size} m, {results[backends[0]][0]['voxels']} voxels; "
          f"MinkUNet34C (37.9M parameters) + 256-d head, fwd+bwd, {args.rounds} rounds x {args.steps} steps")
    print(f"load average before/after: {load_before} / {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"(on {os.cpu_count()} cores; other processes inflate wall times)")
    print("| backend | median wall s/step | min | max | median CPU s/step | peak RSS MiB | RSS after model MiB |")
    print("|---|---|---|---|---|---|---|")
    medians, cpu_medians = {}, {}
    for b in backends:
        ts = [t for res in results[b] for t in res["times"]]
        cs = [t for res in results[b] for t in res["cpu_times"]]
        medians[b] = statistics.median(ts)
        cpu_medians[b] = statistics.median(cs)
        peak = max(res["peak_rss_mib"] for res in results[b])
        base = max(res["rss_model_mib"] for res in results[b])
        print(f"| {b} | {medians[b]:.3f} | {min(ts):.3f} | {max(ts):.3f} | {statistics.median(cs):.3f} | {peak:.0f} | {base:.0f} |")
    if "torch" in medians and "minkowski" in medians:
        print(f"speed-up of torch over minkowski: {medians['minkowski'] / medians['torch']:.2f}x wall, "
              f"{cpu_medians['minkowski'] / cpu_medians['torch']:.2f}x CPU time")
        lt = [res["loss"] for res in results["torch"]]
        lm = [res["loss"] for res in results["minkowski"]]
        print(f"last-step loss torch {lt[0]:.6f} vs minkowski {lm[0]:.6f} (same weights and input)")
    if "torch" in medians and "spconv" in medians:
        print(f"speed-up of spconv over torch: {medians['torch'] / medians['spconv']:.2f}x wall, "
              f"{cpu_medians['torch'] / cpu_medians['spconv']:.2f}x CPU time")
        print(f"last-step loss torch {results['torch'][0]['loss']:.6f} vs spconv {results['spconv'][0]['loss']:.6f} "
              "(same weights and input)")
    if not math.isfinite(min(medians.values())):
        sys.exit(1)


if __name__ == "__main__":
    main()
