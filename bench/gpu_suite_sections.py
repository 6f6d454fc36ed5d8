"""The sections of bench/gpu_suite.py: each takes the run's :class:`Context` and returns a JSON-ready
dict of measurements. Sizes come from :data:`FULL` or, with ``--tiny``, :data:`TINY`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FULL = {
    "clip": {"model": "ViT-B-16-quickgelu", "size": (640, 480), "batches": (1, 8, 32), "views": 64, "agreement_views": 16,
             "templates": ["imagenet80", "scene"]},
    "sam": {"model": "vit_h", "size": (640, 480), "views": 4, "points_per_side": 32, "points_per_batch": 64,
            "iou_quantile": 0.95, "encoder_batch": 4},
    "project": {"points": 150_000, "views": 100, "depth_size": (640, 480), "color_size": (1296, 968), "repeats": 3},
    "train": {"points": 400_000, "extent": (18.0, 18.0), "samples": 8, "views": 3, "size": (640, 480), "steps": 3,
              "presets": {"24GB": {"batch_size": 4, "crop_size": [512, 384], "max_voxels_per_batch": 300_000},
                          "80GB": {"batch_size": 8, "crop_size": [640, 480], "max_voxels_per_batch": 1_000_000}},
              "net2d": "resnet50", "net3d": "full"},
}
TINY = {
    "clip": {"model": "tiny", "size": (64, 48), "batches": (1, 8, 32), "views": 32, "agreement_views": 4, "templates": ["scene"]},
    "sam": {"model": "tiny", "size": (128, 96), "views": 2, "points_per_side": 8, "points_per_batch": 16,
            "iou_quantile": 0.75, "encoder_batch": 2},
    "project": {"points": 6_000, "views": 6, "depth_size": (160, 120), "color_size": (324, 242), "repeats": 2},
    "train": {"points": 3_000, "extent": (4.0, 3.0), "samples": 2, "views": 2, "size": (64, 48), "steps": 2,
              "presets": {"24GB": {"batch_size": 1, "crop_size": [48, 32], "max_voxels_per_batch": 2_000},
                          "80GB": {"batch_size": 2, "crop_size": [64, 48], "max_voxels_per_batch": 4_000}},
              "net2d": "tiny", "net3d": "tiny"},
}


@dataclass
class Context:
    device: str
    tiny: bool
    work: Path
    deadline: float = 0.0
    partial: dict = field(default_factory=dict)  # what a section measured so far (kept if it fails later)

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def sizes(self) -> dict:
        return TINY if self.tiny else FULL

    def sync(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def timed(self, fn):
        """(seconds, result) of ``fn()``, the device synchronised before and after."""
        self.sync()
        start = time.perf_counter()
        result = fn()
        self.sync()
        return time.perf_counter() - start, result


def synthetic_views(n: int, size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """Views (n, H, W, 3) uint8 with indoor-like structure (bench/sam_stage.py's procedural rooms)."""
    from sam_stage import room_image

    return np.stack([room_image(seed + i, size) for i in range(n)])


# ---------------------------------------------------------------- CLIP


def _clip_model(ctx: Context, sizes: dict):
    from pipeline.clip.checkpoint import load_clip

    if ctx.tiny:
        from tests.clip_helpers import tiny_clip

        return tiny_clip(seed=0)
    return load_clip(sizes["model"], None, random_init=True)


def clip_section(ctx: Context) -> dict:
    import torch

    from pipeline.clip.labeller import MaskClipLabeller
    from pipeline.clip.text import templates, text_classifier
    from pipeline.vocab import prompt_vocabulary

    s = ctx.sizes["clip"]
    loaded = _clip_model(ctx, s)
    vocab = prompt_vocabulary("scannet20", {"otherfurniture": ["other furniture"]}, {"ceiling": ["ceiling"]})
    device = torch.device(ctx.device)
    t_text, text = ctx.timed(lambda: text_classifier(loaded.model.to(device), loaded.tokenizer, vocab.names, templates(s["templates"]), device))
    labellers = {p: MaskClipLabeller(loaded, vocab, s["templates"], {"device": ctx.device, "precision": p}, text) for p in ("fp32", "bf16")}
    views = synthetic_views(max(s["views"], max(s["batches"])), s["size"])
    rows = ctx.partial.setdefault("rows", [])
    for batch in s["batches"]:
        for precision, labeller in labellers.items():
            if ctx.left() < 0:
                rows.append({"batch": batch, "precision": precision, "skipped": "time budget"})
                continue
            labeller.label(views[:batch], s["size"])  # warm-up at this shape
            n = max(batch, (s["views"] // batch) * batch)
            seconds, _ = ctx.timed(lambda: [labeller.label(views[i : i + batch], s["size"]) for i in range(0, n, batch)])
            rows.append({"batch": batch, "precision": precision, "views": n, "views_per_s": round(n / seconds, 2),
                         "s_per_view": round(seconds / n, 5)})
    agree = synthetic_views(s["agreement_views"], s["size"], seed=100)
    labels = {p: np.concatenate([lab.label(agree[i : i + 8], s["size"]).label for i in range(0, len(agree), 8)])
              for p, lab in labellers.items()}
    return {"model": loaded.model_name if hasattr(loaded, "model_name") else s["model"], "weights": "random-init",
            "view_size": list(s["size"]), "text_classifier_s": round(t_text, 3), "rows": rows,
            "bf16_vs_fp32_label_agreement": round(float((labels["fp32"] == labels["bf16"]).mean()), 5),
            "agreement_views": len(agree)}


# ---------------------------------------------------------------- SAM


def _iou_threshold(loaded, image: np.ndarray, amg: dict, quantile: float, device: str) -> float:
    """The ``quantile`` of the predicted IoUs of every prompt of ``image`` (3 masks each)."""
    import torch

    from pipeline.sam.batched import BatchedMaskGenerator, decode_prompts

    gen = BatchedMaskGenerator(loaded.model, {**amg, "pred_iou_thresh": 0.0})
    emb = gen.predictor.encode_batch([image])[0]
    points = gen.official.point_grids[0] * np.array(image.shape[:2])[None, ::-1]
    coords = torch.as_tensor(gen.predictor.transform.apply_coords(points, image.shape[:2]), device=device)
    ious = []
    with torch.no_grad():
        for lo in range(0, len(coords), amg["points_per_batch"]):
            c = coords[lo : lo + amg["points_per_batch"], None, :]
            ious.append(decode_prompts(loaded.model, emb, torch.zeros(len(c), dtype=torch.long, device=device), c)[1].flatten().float().cpu())
    return float(np.quantile(torch.cat(ious).numpy(), quantile))


def _match(ours: list[np.ndarray], official: list[np.ndarray], device: str) -> dict:
    """Counts per view and the minimum IoU of a greedy one-to-one matching (sam_stage.py's rule:
    each official mask in order takes the free mask of ours with the highest IoU), the IoU
    matrix computed as one product on ``device``."""
    import torch

    equal, identical, min_iou = True, True, 1.0
    for a, b in zip(ours, official):
        equal &= len(a) == len(b)
        same = a.shape == b.shape and bool(np.array_equal(a, b))
        identical &= same
        if same or not len(b):
            continue
        if not len(a):
            min_iou = 0.0
            continue
        ta = torch.as_tensor(a.reshape(len(a), -1), device=device).float()
        tb = torch.as_tensor(b.reshape(len(b), -1), device=device).float()
        inter = tb @ ta.T
        union = tb.sum(1, keepdim=True) + ta.sum(1)[None, :] - inter
        iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(inter)).cpu().numpy()
        free = np.ones(len(a), bool)
        for row in iou:
            if not free.any():
                min_iou = 0.0
                break
            best = int(np.argmax(np.where(free, row, -1.0)))
            min_iou = min(min_iou, float(row[best]))
            free[best] = False
    return {"counts_equal": bool(equal), "identical_in_order": bool(identical), "min_matched_iou": round(min_iou, 4)}


def sam_section(ctx: Context) -> dict:
    from segment_anything import SamAutomaticMaskGenerator, SamPredictor

    from pipeline.sam.backends import SegmentAnythingBackend
    from pipeline.sam.model import load_sam
    from pipeline.stores.sam_codecs import decode_rle

    s = ctx.sizes["sam"]
    tiny = {"image_size": 256} if s["model"] == "tiny" else None
    loaded = load_sam(s["model"], None, random_init=True, seed=0, tiny=tiny, device=ctx.device)
    views = list(synthetic_views(s["views"], s["size"]))
    amg = {"points_per_side": s["points_per_side"], "points_per_batch": s["points_per_batch"], "stability_score_thresh": 0.0,
           "box_nms_thresh": 1.0}
    amg["pred_iou_thresh"] = _iou_threshold(loaded, views[0], amg, s["iou_quantile"], ctx.device)
    hw = (s["size"][1], s["size"][0])

    def stack(masks: list, n_hw=hw) -> np.ndarray:
        return np.stack(masks) if masks else np.zeros((0, *n_hw), bool)

    def official():
        gen = SamAutomaticMaskGenerator(loaded.model, **amg)
        out = []
        for image in views:
            out.append(stack([r["segmentation"] for r in gen.generate(image)]))
            SamPredictor(loaded.model).set_image(image)  # the feature map, a second encoder pass
        return out

    def ours(precision: str, encoder_batch: int):
        def run():
            backend = SegmentAnythingBackend(loaded, amg, precision=precision, device=ctx.device, encoder_batch=encoder_batch)
            return [stack([decode_rle(r, hw) for r in vm.runs]) for vm, _ in backend.run_images(views, s["size"])]
        return run

    methods = {"official AMG + set_image, fp32": official, "ours, batched generator, fp32": ours("fp32", 1)}
    if ctx.cuda:
        methods[f"ours, bf16 encoder, {s['encoder_batch']} views per call"] = ours("bf16", s["encoder_batch"])
    methods[f"ours, fp32, {s['encoder_batch']} views per call"] = ours("fp32", s["encoder_batch"])
    ctx.partial["amg"] = amg
    ours("fp32", 1)()  # warm-up (allocator, kernels)
    rows, masks = ctx.partial.setdefault("rows", []), {}
    for name, fn in methods.items():
        if ctx.left() < 0:
            rows.append({"method": name, "skipped": "time budget"})
            continue
        seconds, masks[name] = ctx.timed(fn)
        rows.append({"method": name, "s_per_view": round(seconds / len(views), 4), "masks_per_view": [len(m) for m in masks[name]]})
    reference = masks.get("official AMG + set_image, fp32")
    base = rows[0].get("s_per_view")
    for row in rows:
        if "s_per_view" in row and base:
            row["speedup_vs_official"] = round(base / row["s_per_view"], 3)
        if reference is not None and row["method"] in masks and row["method"] != rows[0]["method"]:
            row.update(_match(masks[row["method"]], reference, ctx.device))
    return {"model": s["model"], "weights": "random-init", "view_size": list(s["size"]), "views": len(views),
            "amg": amg, "pred_iou_thresh_rule": f"quantile {s['iou_quantile']} of view 0's predicted IoUs", "rows": rows}


SECTIONS = {"clip": clip_section, "sam": sam_section}
from gpu_suite_more import project_section, train_section  # noqa: E402  (second half of the sections)

SECTIONS.update(project=project_section, train=train_section)
