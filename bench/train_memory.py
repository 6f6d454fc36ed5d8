"""Peak memory of one training step of the full-size networks, to size the memory bounds.

Each measurement runs in a fresh process: build the network, record peak RSS, run one
forward + backward (float32, CPU), record peak RSS again; the difference is the step's
activation and gradient memory, which a CUDA step of the same tensors needs too (bf16 autocast
roughly halves the activations). 2D: DeepLabV3-ResNet-50 on N crops; 3D: MinkUNet34C (torch
backend) on M voxels of a synthetic room-like surface. Usage::

    PYTHONPATH=. python bench/train_memory.py [--crops 2 4] [--crop 512 384] [--voxels 20000 40000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, torch
torch.set_num_threads(2)
kind, n, w, h = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB
if kind == "2d":
    from train.models.deeplab import DeepLab2D
    net = DeepLab2D(20, 256, "resnet50")
    x = torch.randn(n, 3, h, w)
    before = peak()
    logits, latent = net(x)
    (logits.mean() + latent.mean()).backward()
else:
    from train.models.minkunet import MINKUNET34C, MinkUNet34
    from train.sparse import voxelize
    net = MinkUNet34(3, 20, 256, "torch", MINKUNET34C)
    g = torch.Generator().manual_seed(0)
    # points on the walls and floor of a room: a surface, like scans (voxel 5 cm)
    side = int((n / 5) ** 0.5) + 1
    u = torch.rand(n * 2, 2, generator=g) * side * 0.05
    face = torch.randint(0, 5, (n * 2,), generator=g)
    z0 = torch.zeros(n * 2)
    pts = torch.stack([u[:, 0], u[:, 1], z0], 1)
    pts[face == 1] = torch.stack([u[:, 0], z0, u[:, 1]], 1)[face == 1]
    pts[face == 2] = torch.stack([z0, u[:, 0], u[:, 1]], 1)[face == 2]
    pts[face == 3] = torch.stack([u[:, 0], z0 + side * 0.05, u[:, 1]], 1)[face == 3]
    pts[face == 4] = torch.stack([z0 + side * 0.05, u[:, 0], u[:, 1]], 1)[face == 4]
    vox = voxelize(pts, torch.tensor([0, pts.shape[0]]), 0.05)
    keep = vox.coords[:n]
    before = peak()
    logits, latent = net(torch.randn(keep.shape[0], 3), keep)
    (logits.mean() + latent.mean()).backward()
    n = keep.shape[0]
after = peak()
print(json.dumps({"kind": kind, "n": n, "crop": [w, h], "step_mib": after - before}))
"""


def measure(kind: str, n: int, w: int, h: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, kind, str(n), str(w), str(h)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crops", nargs="+", type=int, default=[2, 4])
    parser.add_argument("--crop", nargs=2, type=int, default=[512, 384])
    parser.add_argument("--voxels", nargs="+", type=int, default=[20000, 40000])
    args = parser.parse_args()
    rows = [measure("2d", n, *args.crop) for n in args.crops] + [measure("3d", n, 0, 0) for n in args.voxels]
    for row in rows:
        print(json.dumps(row))
    d2 = [r for r in rows if r["kind"] == "2d"]
    d3 = [r for r in rows if r["kind"] == "3d"]
    per_crop = (d2[-1]["step_mib"] - d2[0]["step_mib"]) / max(1, d2[-1]["n"] - d2[0]["n"]) if len(d2) > 1 else d2[0]["step_mib"] / d2[0]["n"]
    per_kvox = 1000 * (d3[-1]["step_mib"] - d3[0]["step_mib"]) / max(1, d3[-1]["n"] - d3[0]["n"]) if len(d3) > 1 else 1000 * d3[0]["step_mib"] / d3[0]["n"]
    print(f"\n2D DeepLabV3-R50 fp32: {per_crop:.0f} MiB per {args.crop[0]}x{args.crop[1]} crop (fwd+bwd)")
    print(f"3D MinkUNet34C fp32 (torch backend): {per_kvox:.1f} MiB per 1000 voxels (fwd+bwd)")
    for name, crops, vox in (("24 GB card", 8, 300000), ("80 GB card", 16, 1000000)):
        crop_scale = 1.0 if name == "24 GB card" else (640 * 480) / (args.crop[0] * args.crop[1])
        print(f"{name}: {crops} crops -> {crops * per_crop * crop_scale / 1024:.1f} GiB, {vox} voxels -> {vox / 1000 * per_kvox / 1024:.1f} GiB (fp32)")


if __name__ == "__main__":
    main()
