"""Benchmark: our SAM stage (masks + features, one encoder pass) vs the official generator.

Three ways to get SAM masks and a feature map for the same views, in one run, same model:

* ``amg``: official ``SamAutomaticMaskGenerator.generate`` alone (masks only, no feature map);
* ``amg+set_image``: the official generator plus a separate ``SamPredictor.set_image`` for the
  feature map (what a naive pipeline does: two encoder passes);
* ``ours``: the whole stage (``run_sam_stage``: image decoding, masks, segment maps, PCA + int8
  features, Zarr writing) on a prepared store holding the same views, with the batched generator
  (``sam.generator: batched``, the default);
* ``ours-official``: the same stage with ``sam.generator: official`` (the official ``generate``
  from the one encoder pass: the stage before the batched generator).

Also reports: masks per view, whether our masks equal the official ones (count, min matched IoU),
feature bytes per view on disk, total store bytes per view, feature cosine to the full-precision
map in-sample (the store's own basis) and held out (basis fit on the first half of the views,
tested on the others). Methods are run in rotated order per round so slow drifts of the machine hit all of them.

    PYTHONPATH=. python bench/sam_stage.py --views 3 --threads 2            # CPU, vit_b, random init
    PYTHONPATH=. python bench/sam_stage.py --device cuda --model vit_h --precision bf16 ...
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # pipeline and the tests' store factory from this checkout


def room_image(seed: int, size: tuple[int, int]) -> np.ndarray:
    """A procedural indoor-like RGB view (H, W, 3) uint8: shaded walls/floor, boxes, noise."""
    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.empty((h, w, 3), np.float32)
    horizon = rng.uniform(0.45, 0.65) * h
    img[:] = rng.uniform(120, 220, 3)
    img[yy > horizon] = rng.uniform(60, 160, 3)
    img += (xx / w - 0.5)[..., None] * rng.uniform(-40, 40, 3)
    for _ in range(12):
        x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
        bw, bh = rng.uniform(0.05, 0.3) * w, rng.uniform(0.05, 0.3) * h
        sel = (xx >= x0) & (xx < x0 + bw) & (yy >= y0) & (yy < y0 + bh)
        img[sel] = rng.uniform(0, 255, 3) + (yy[sel] - y0)[:, None] * rng.uniform(-0.3, 0.3)
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_prepared(path: Path, images: list[np.ndarray]) -> None:
    """Benchmark images as a one-sample prepared store of PNG views."""
    from tests.factory import write_prepared as write

    write(path, {"bench_scene": np.stack(images)}, attrs={"shard": "bench-000", "split": "bench"}, codec="png", focal=500.0)


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def feature_table(args: argparse.Namespace) -> None:
    """Held-out cosine and on-disk bytes of the PCA + int8 storage for several channel counts."""
    import torch
    from numcodecs import Zstd
    from segment_anything import SamPredictor

    from pipeline.camera import sam_valid_grid
    from pipeline.sam.features import mean_cosine, valid_region
    from pipeline.stores.sam_codecs import decode_features, encode_features, fit_basis
    from pipeline.sam.model import load_sam

    torch.set_num_threads(args.threads)
    size = tuple(int(x) for x in args.size.lower().split("x"))
    loaded = load_sam(args.model, args.checkpoint, random_init=args.checkpoint is None, seed=0, device=args.device)
    predictor = SamPredictor(loaded.model)
    grid = sam_valid_grid(size, loaded.long_side, loaded.patch)
    feats = []
    for i in range(args.views):
        predictor.set_image(room_image(i, size))
        feats.append(valid_region(predictor.features[0].float().cpu().numpy(), grid))
        print(f"encoded view {i}", flush=True)
    feats = np.stack(feats)
    n_fit = (len(feats) + 1) // 2
    zstd = Zstd(level=3)  # what the store writes with
    table = {}
    for channels in (32, 64, 96, 128, 160, 192, 256):
        basis, mean = fit_basis(feats[:n_fit].reshape(-1, 256), channels)
        test = feats[n_fit:]
        q, scale = encode_features(test, basis, mean)
        size_bytes = np.mean([len(zstd.encode(q[i].tobytes())) + len(zstd.encode(scale[i].tobytes())) for i in range(len(test))])
        table[channels] = {
            "held_out_cosine": round(mean_cosine(test, decode_features(q, scale, basis, mean)), 5),
            "mib_per_view": round(float(size_bytes) / 2**20, 4),
            "raw_mib_per_view": round((q[0].nbytes + scale[0].nbytes) / 2**20, 4),
        }
    result = {"model": args.model, "weights": loaded.weights, "views": args.views, "fit_views": int(n_fit), "grid": list(grid), "table": table}
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


def decode_table(args: argparse.Namespace) -> None:
    """After the encoder: the official generator (from the kept embedding) vs the batched one.

    Each view is encoded once; then, per round in alternating order, both produce the store's
    per-view mask arrays (``ViewMasks`` at the image size) from the same embeddings: the official
    ``generate`` + RLE decoding + ``ViewMasks.from_masks`` (what ``sam.generator: official`` does
    after the encoder) and the batched generator + ``view_masks_from_device``. Checks the arrays
    are equal."""
    import torch

    from pipeline.sam.batched import BatchedMaskGenerator
    from pipeline.sam.device_masks import view_masks_from_device
    from pipeline.sam.generator import OnePassMaskGenerator, records_to_arrays
    from pipeline.sam.masks import ViewMasks
    from pipeline.sam.model import load_sam

    torch.set_num_threads(args.threads)
    size = tuple(int(x) for x in args.size.lower().split("x"))
    amg = _amg(args)
    load_before = list(os.getloadavg())
    loaded = load_sam(args.model, args.checkpoint, random_init=args.checkpoint is None, seed=0, device=args.device)
    images = [room_image(i, size) for i in range(args.views)]
    official = OnePassMaskGenerator(loaded.model, amg)
    batched = BatchedMaskGenerator(loaded.model, amg)
    embeddings = [official.predictor.encode(im) for im in images]

    def run_official():
        out = []
        for image, emb in zip(images, embeddings):
            official.predictor.keep(image, emb)
            masks, iou, stab = records_to_arrays(official.generate(image), image.shape[:2])
            out.append(ViewMasks.from_masks(masks, iou, stab, "part"))
        official.predictor.forget()
        return out

    def run_batched():
        out = []
        for start in range(0, len(images), args.encoder_batch):
            embs = torch.cat(embeddings[start : start + args.encoder_batch])
            for found in batched._masks(embs, images[0].shape[:2], embs.shape[0]):
                out.append(view_masks_from_device(found.masks, found.predicted_iou, found.stability_score, size, "part"))
        return out

    methods = {"official": run_official, "batched": run_batched}
    per_round: dict[str, list[float]] = {k: [] for k in methods}
    cpu_round: dict[str, list[float]] = {k: [] for k in methods}  # process CPU time: steadier under load
    results = {}
    for r in range(args.rounds):
        for name in (list(methods) if r % 2 == 0 else list(methods)[::-1]):
            start, cpu = time.perf_counter(), time.process_time()
            results[name] = methods[name]()
            per_round[name].append(round((time.perf_counter() - start) / args.views, 3))
            cpu_round[name].append(round((time.process_time() - cpu) / args.views, 3))
            print(f"round {r} {name}: {per_round[name][-1]:.3f} s/view wall, {cpu_round[name][-1]:.3f} s/view CPU", flush=True)
    equal = all(
        len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a.runs, b.runs))
        and all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("area", "bbox", "segments"))
        for a, b in zip(results["official"], results["batched"])
    )
    ratio = np.array(per_round["batched"]) / np.array(per_round["official"])
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, torch threads {args.threads}, device {args.device}",
        "torch": torch.__version__, "model": args.model, "views": args.views, "rounds": args.rounds, "size": list(size),
        "amg": amg, "encoder_batch": args.encoder_batch,
        "seconds_per_view_by_round": per_round,
        "seconds_per_view_median": {k: float(np.median(v)) for k, v in per_round.items()},
        "batched_over_official_median_of_rounds": round(float(np.median(ratio)), 3),
        "cpu_seconds_per_view_by_round": cpu_round,
        "batched_over_official_cpu_time_median_of_rounds": round(float(np.median(np.array(cpu_round["batched"]) / np.array(cpu_round["official"]))), 3),
        "masks_per_view": [len(v) for v in results["batched"]],
        "arrays_equal": bool(equal),
        "load_average_before_after": [load_before, list(os.getloadavg())],
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


def _amg(args: argparse.Namespace) -> dict:
    return {
        "points_per_side": args.points_per_side,
        "points_per_batch": args.points_per_batch,
        "pred_iou_thresh": args.pred_iou_thresh,
        "stability_score_thresh": args.stability_score_thresh,
        "box_nms_thresh": args.box_nms_thresh,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="vit_b", help="SAM model type (vit_b, vit_l, vit_h, tiny); random init unless --checkpoint")
    parser.add_argument("--checkpoint", default=None, help="local SAM checkpoint (else random weights, seed 0)")
    parser.add_argument("--views", type=int, default=3, help="views (640x480 procedural images)")
    parser.add_argument("--size", default="640x480", help="view size WxH")
    parser.add_argument("--rounds", type=int, default=1, help="rounds over all methods (order rotates per round)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--precision", default="fp32", help="our encoder precision (fp32, bf16, fp16; the official runs fp32)")
    parser.add_argument("--points-per-side", type=int, default=8)
    parser.add_argument("--points-per-batch", type=int, default=64)
    parser.add_argument("--pred-iou-thresh", type=float, default=0.04, help="random vit_b IoU predictions lie in -0.1..0.08")
    parser.add_argument("--stability-score-thresh", type=float, default=0.0, help="random logits are small: stability is 0 at offset 1")
    parser.add_argument("--box-nms-thresh", type=float, default=1.0, help="random masks all span the image box; 1.0 keeps them (many masks per view)")
    parser.add_argument("--channels", type=int, default=128, help="PCA channels of the stored features")
    parser.add_argument("--encoder-batch", type=int, default=1, help="our sam.encoder_batch (views per encoder and decoder call)")
    parser.add_argument("--methods", default="amg,amg+set_image,ours-official,ours", help="comma-separated subset of the methods")
    parser.add_argument("--json", default=None, help="write the results here as JSON")
    parser.add_argument(
        "--features-only",
        action="store_true",
        help="only the feature-storage table: encode the views, fit the PCA basis on the first half, "
        "report held-out cosine and zstd bytes per view for several channel counts",
    )
    parser.add_argument("--decode-only", action="store_true",
                        help="only the mask generation after the encoder: official vs batched generator, same embeddings")
    args = parser.parse_args()
    if args.features_only:
        return feature_table(args)
    if args.decode_only:
        return decode_table(args)

    import torch
    from segment_anything import SamAutomaticMaskGenerator, SamPredictor

    from pipeline.camera import sam_valid_grid
    from pipeline.stores import StoreReader
    from pipeline.sam.backends import SegmentAnythingBackend
    from pipeline.sam.features import mean_cosine, valid_region
    from pipeline.stores.sam_codecs import decode_features, decode_masks, encode_features, fit_basis
    from pipeline.sam.model import load_sam
    from pipeline.sam.stage import run_sam_stage

    torch.set_num_threads(args.threads)
    size = tuple(int(x) for x in args.size.lower().split("x"))
    amg = _amg(args)
    t0 = time.perf_counter()
    loaded = load_sam(args.model, args.checkpoint, random_init=args.checkpoint is None, seed=0, device=args.device)
    build_s = time.perf_counter() - t0
    sam = loaded.model
    images = [room_image(i, size) for i in range(args.views)]
    options = {
        "model_type": args.model,
        "random_init": args.checkpoint is None,
        "checkpoint": args.checkpoint,
        "amg": amg,
        "device": args.device,
        "precision": args.precision,
        "features": {"channels": args.channels},
        "encoder_batch": args.encoder_batch,
    }
    backends = {
        name: SegmentAnythingBackend(loaded, amg, precision=args.precision, device=args.device,
                                     encoder_batch=args.encoder_batch, generator=generator)
        for name, generator in (("ours", "batched"), ("ours-official", "official"))
    }

    def sync():
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    load_before = list(os.getloadavg())
    tmp = Path(tempfile.mkdtemp(prefix="bench-sam-"))
    prepared = tmp / "prepared.zarr"
    write_prepared(prepared, images)
    times = {m: 0.0 for m in args.methods.split(",")}
    per_round: dict[str, list[float]] = {k: [] for k in times}
    cpu_round: dict[str, list[float]] = {k: [] for k in times}  # process CPU time: steadier under load
    official_masks: list[np.ndarray] = []
    full_feats: list[np.ndarray] = []
    grid = sam_valid_grid(size, loaded.long_side, loaded.patch)
    methods = list(times)
    outs = {name: tmp / f"sam-{name}.zarr" for name in backends}
    out = outs["ours"] if "ours" in times else outs["ours-official"]
    for r in range(args.rounds):
        order = methods[r % len(methods) :] + methods[: r % len(methods)]
        for method in order:
            sync()
            start, cpu = time.perf_counter(), time.process_time()
            if method in backends:
                shutil.rmtree(outs[method], ignore_errors=True)
                run_sam_stage(prepared, outs[method], options, shard="bench-000", backend=backends[method])
            else:
                generator = SamAutomaticMaskGenerator(sam, **amg)
                for i, image in enumerate(images):
                    records = generator.generate(image)
                    if method == "amg+set_image":
                        predictor = SamPredictor(sam)
                        predictor.set_image(image)
                        if r == 0:
                            full_feats.append(valid_region(predictor.features[0].float().cpu().numpy(), grid))
                    if r == 0 and len(official_masks) < len(images):
                        official_masks.append(np.stack([m["segmentation"] for m in records]) if records else np.zeros((0, size[1], size[0]), bool))
            sync()
            elapsed = time.perf_counter() - start
            times[method] += elapsed
            per_round[method].append(round(elapsed / args.views, 2))
            cpu_round[method].append(round((time.process_time() - cpu) / args.views, 2))
            print(f"round {r} {method}: {elapsed / args.views:.2f} s/view wall, {cpu_round[method][-1]:.2f} s/view CPU", flush=True)

    reader = StoreReader(out, "sam")
    off = reader.read("bench_scene", "views/mask_offsets")
    rle, rle_off = reader.read("bench_scene", "masks/rle"), reader.read("bench_scene", "masks/rle_offsets")
    counts_equal, min_iou, masks_per_view = True, 1.0, []
    for v, official in enumerate(official_masks):
        ours = decode_masks(rle, rle_off, range(off[v], off[v + 1]), (size[1], size[0]))
        masks_per_view.append(len(ours))
        counts_equal &= len(ours) == len(official)
        free = set(range(len(ours)))
        for ref in official:
            if not free:
                min_iou = 0.0
                break
            best = max(free, key=lambda j: mask_iou(ours[j], ref))
            min_iou = min(min_iou, mask_iou(ours[best], ref))
            free.remove(best)
    stores_equal = None
    if all(outs[name].exists() for name in backends):  # the two generators' stores, array by array
        a, b = (StoreReader(outs[name], "sam") for name in backends)
        stores_equal = all(np.array_equal(a.read("bench_scene", k), b.read("bench_scene", k))
                           for k in ("masks/rle", "masks/rle_offsets", "views/mask_offsets", "views/segments", "masks/area", "masks/bbox"))
    group = out / "bench_scene" / "views"
    feature_bytes = dir_bytes(group / "features") + dir_bytes(group / "feature_scale")
    total_bytes = dir_bytes(out)
    held_out = {}
    if len(full_feats) > 1:
        n_fit = (len(full_feats) + 1) // 2
        for channels in sorted({64, 96, 128, 160, 192, args.channels}):
            basis, mean = fit_basis(np.stack(full_feats[:n_fit]).reshape(-1, 256), channels)
            test = np.stack(full_feats[n_fit:])
            q, s = encode_features(test, basis, mean)
            held_out[channels] = round(mean_cosine(test, decode_features(q, s, basis, mean)), 4)
    # The stored map against the official set_image map (different encoder call, same image).
    stored_vs_official = None
    if full_feats:
        basis, mean = reader.read_store_array("_store/feature_basis"), reader.read_store_array("_store/feature_mean")
        q, s = reader.read("bench_scene", "views/features"), reader.read("bench_scene", "views/feature_scale")
        stored_vs_official = round(mean_cosine(decode_features(q, s, basis, mean), np.stack(full_feats)), 4)
    n = args.views * args.rounds
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, torch threads {args.threads}, device {args.device}",
        "torch": torch.__version__,
        "model": args.model,
        "weights": loaded.weights,
        "build_seconds": round(build_s, 2),
        "views": args.views,
        "rounds": args.rounds,
        "size": list(size),
        "amg": amg,
        "precision": args.precision,
        "seconds_per_view": {k: round(v / n, 2) for k, v in times.items()},
        "seconds_per_view_by_round": per_round,
        **{f"{m}_over_amg": round(times[m] / times["amg"], 3) for m in times if m != "amg" and "amg" in times},
        **{f"{m}_over_amg_median_of_rounds": round(float(np.median(np.array(per_round[m]) / np.array(per_round["amg"]))), 3)
           for m in times if m != "amg" and "amg" in times},
        **({"ours_over_ours_official_median_of_rounds": round(float(np.median(np.array(per_round["ours"]) / np.array(per_round["ours-official"]))), 3)}
           if {"ours", "ours-official"} <= set(times) else {}),
        "cpu_seconds_per_view_by_round": cpu_round,
        **{f"{m}_over_amg_cpu_time_median_of_rounds": round(float(np.median(np.array(cpu_round[m]) / np.array(cpu_round["amg"]))), 3)
           for m in times if m != "amg" and "amg" in times},
        "encoder_batch": args.encoder_batch,
        "load_average_before_after": [load_before, list(os.getloadavg())],
        "masks_per_view": masks_per_view,
        "stores_equal_batched_vs_official_generator": stores_equal,
        "mask_counts_equal": bool(counts_equal),
        "min_matched_iou": round(min_iou, 4),
        "feature_channels": args.channels,
        "feature_bytes_per_view": feature_bytes / args.views,
        "feature_mib_per_view": round(feature_bytes / args.views / 2**20, 4),
        "store_mib_per_view": round(total_bytes / args.views / 2**20, 4),
        "bytes_per_view_by_array": {
            f"{kind}/{name.name}": dir_bytes(name) // args.views
            for kind in ("views", "masks")
            for name in sorted((out / "bench_scene" / kind).iterdir())
            if name.is_dir()
        },
        "feature_cosine_in_sample": round(float(reader.attrs["feature_cosine_mean"]), 4),
        "feature_cosine_held_out_by_channels": held_out,
        "stored_vs_official_set_image_cosine": stored_vs_official,
        "encoder_passes_ours": reader.attrs.get("encoder_passes"),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
