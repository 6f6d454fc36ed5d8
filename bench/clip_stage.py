"""Benchmark the clip stage: views/s of MaskCLIP labelling, batched vs a per-view baseline.

Model: full-size ViT-B-16-quickgelu with random weights (no weights exist on this machine;
speed does not depend on the values). For each image size and batch size it times
:meth:`MaskClipLabeller.label` (``torch.inference_mode``, batched, labels + confidence at the
working size), and in the same run a baseline in the style of CLIP2Scene's online MaskCLIP:
one view per call, fp32, ``torch.no_grad``. It also times the whole stage (JPEG decoding,
writing the Zarr store) on a prepared store, the text classifier, and the label agreement
of bf16 autocast against fp32 (on CPU when no GPU: reported as such).

    PYTHONPATH=. python bench/clip_stage.py [--sizes 640x480 320x240] [--batch-sizes 1 4 8] [--views 8]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def parse_size(text: str) -> tuple[int, int]:
    width, height = text.lower().split("x")
    return int(width), int(height)


def synthetic_images(n: int, size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """Smooth synthetic RGB views (n, H, W, 3) uint8 (structure, not noise, so JPEG sizes are realistic)."""
    rng = np.random.default_rng(seed)
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    out = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        f = rng.uniform(0.005, 0.03, size=(3, 2))
        phase = rng.uniform(0, 6.3, size=3)
        for c in range(3):
            out[i, :, :, c] = (127 + 120 * np.sin(f[c, 0] * xx + f[c, 1] * yy + phase[c])).astype(np.uint8)
    return out


def timed(fn, repeat: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def write_prepared(path: Path, images: np.ndarray, views_per_sample: int) -> None:
    """Benchmark images (N, H, W, 3) as a prepared store of JPEG views, ``views_per_sample`` per sample."""
    from tests.factory import write_prepared as write

    chunks = {f"scene{s:04d}_00": images[start : start + views_per_sample] for s, start in enumerate(range(0, len(images), views_per_sample))}
    write(path, chunks, attrs={"dataset": "bench"}, codec="jpeg")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ViT-B-16-quickgelu")
    parser.add_argument("--sizes", nargs="+", default=["640x480", "320x240"], help="view sizes WxH")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--views", type=int, default=8, help="views timed per configuration")
    parser.add_argument("--baseline-views", type=int, default=4)
    parser.add_argument("--stage-views", type=int, default=16, help="views of the end-to-end stage run (0 = skip)")
    parser.add_argument("--agreement-views", type=int, default=8, help="views for bf16-vs-fp32 agreement (0 = skip)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    args = parser.parse_args()

    import torch

    from pipeline.clip.checkpoint import load_clip
    from pipeline.clip.labeller import MaskClipLabeller, resolve_device
    from pipeline.clip.stage import run_clip_stage
    from pipeline.clip.text import templates, text_classifier
    from pipeline.vocab import prompt_vocabulary

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    machine = (
        torch.cuda.get_device_name(device) if device.type == "cuda"
        else f"{os.cpu_count()}-core CPU ({platform.processor() or platform.machine()}), no GPU"
    )
    print(f"# clip stage benchmark: {args.model} (random init), device {device} [{machine}], "
          f"torch threads {torch.get_num_threads()}, load average at start {os.getloadavg()[0]:.1f}")
    loaded = load_clip(args.model, None, random_init=True)
    vocab = prompt_vocabulary("scannet20", {"otherfurniture": ["other furniture"]}, {"ceiling": ["ceiling"]})
    template_list = templates(["imagenet80", "scene"])
    start = time.perf_counter()
    text = text_classifier(loaded.model.to(device), loaded.tokenizer, vocab.names, template_list, device)
    t_text = time.perf_counter() - start
    print(f"text classifier: {len(vocab.names)} prompts x {len(template_list)} templates = "
          f"{len(vocab.names) * len(template_list)} sentences in {t_text:.2f} s (once per shard)")

    fp32 = MaskClipLabeller(loaded, vocab, ["imagenet80", "scene"], {"device": args.device, "precision": "fp32"}, text)
    default_precision = "bf16" if device.type == "cuda" else "fp32"
    ours = fp32 if default_precision == "fp32" else MaskClipLabeller(loaded, vocab, ["imagenet80", "scene"], {"device": args.device, "precision": "bf16"}, text)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    print("\n| view size | mode | batch | views/s | s/view | vs baseline |")
    print("|---|---|---|---|---|---|")
    for size_text in args.sizes:
        size = parse_size(size_text)
        images = synthetic_images(max(args.views, args.baseline_views, max(args.batch_sizes)), size)
        # baseline: one view per call, fp32, no_grad (CLIP2Scene computes MaskCLIP per training step like this)
        fp32.label(images[:1], size)  # warm-up
        def baseline():
            with torch.no_grad():
                for i in range(args.baseline_views):
                    x = fp32.preprocess(images[i : i + 1])
                    dense = fp32.encoder(x)
                    logits = 100.0 * torch.einsum("bdhw,cd->bchw", dense.features, fp32.text)
                    up = torch.nn.functional.interpolate(logits, size=(size[1], size[0]), mode="bilinear", align_corners=False)
                    up.softmax(1).max(1)
                    sync()
        base_s = timed(baseline) / args.baseline_views
        print(f"| {size_text} | baseline: per view, fp32, no_grad | 1 | {1 / base_s:.3f} | {base_s:.3f} | 1.00x |")
        for batch in args.batch_sizes:
            ours.label(images[:batch], size)  # warm-up at this shape
            n = (args.views // batch) * batch or batch
            def run():
                for start in range(0, n, batch):
                    ours.label(images[start : start + batch], size)
                sync()
            per_view = timed(run) / n
            print(f"| {size_text} | ours: inference_mode, {ours.precision} | {batch} | {1 / per_view:.3f} | {per_view:.3f} | {base_s / per_view:.2f}x |")

    if args.stage_views:
        size = parse_size(args.sizes[0])
        with tempfile.TemporaryDirectory() as tmp:
            prepared = Path(tmp) / "prep.zarr"
            write_prepared(prepared, synthetic_images(args.stage_views, size, seed=1), views_per_sample=max(1, args.stage_views // 3))
            batch = max(args.batch_sizes)
            options = {"clip": {"device": args.device, "batch_size": batch, "random_init": True, "model": args.model},
                       "vocabulary": {"prompts": {"otherfurniture": ["other furniture"]}, "extra_prompts": {"ceiling": ["ceiling"]}}}
            start = time.perf_counter()
            run_clip_stage(prepared, Path(tmp) / "clip.zarr", options, loaded=loaded)
            total = time.perf_counter() - start
            print(f"\nwhole stage (text classifier, JPEG decoding, encoder, Zarr write; model build excluded), {args.stage_views} views "
                  f"{args.sizes[0]}, batch {batch}: {total:.1f} s = {args.stage_views / total:.3f} views/s "
                  f"(includes the text classifier, {t_text:.1f} s)")

    if args.agreement_views:
        bf16 = MaskClipLabeller(loaded, vocab, ["imagenet80", "scene"], {"device": args.device, "precision": "bf16"}, text)
        for size_text in args.sizes:
            size = parse_size(size_text)
            images = synthetic_images(args.agreement_views, size, seed=2)
            a = np.concatenate([fp32.label(images[i : i + 4], size).label for i in range(0, len(images), 4)])
            b = np.concatenate([bf16.label(images[i : i + 4], size).label for i in range(0, len(images), 4)])
            print(f"load average {os.getloadavg()[0]:.1f}; bf16 autocast vs fp32 label agreement on {device.type.upper()}, {size_text}, {len(images)} views: "
                  f"{100 * (a == b).mean():.2f}% of pixels (random weights: near-uniform class cosines make this a worst case)")


if __name__ == "__main__":
    main()
