"""A faster automatic mask generator whose masks are the official generator's (crop layer 0).

The official :class:`segment_anything.SamAutomaticMaskGenerator` decodes the point prompts of one
image per call, upscales all three masks of every prompt to the image size before dropping the
ones whose predicted IoU is too low, and run-length encodes each kept mask into a Python list
(one device round trip per mask) that the caller decodes again. Here, with the same model,
point grid, coordinate transform, thresholds and NMS:

1. the prompts of several views (those encoded together, ``sam.encoder_batch``) go through the
   mask decoder in chunks of ``points_per_batch`` prompts, whichever views they belong to;
2. the predicted-IoU filter runs *before* the upscaling, so only kept masks are upscaled (the
   upscaling is per mask, so the kept logits are the same numbers);
3. stability score, thresholding, boxes and box NMS stay on the device (segment_anything's own
   ``calculate_stability_score`` and ``batched_mask_to_box``, torchvision's ``batched_nms``),
   and the kept masks leave the generator as one boolean tensor per view, in the official
   record order.

What is called, not copied: the prompt encoder, the mask decoder's own layers (in
:func:`decode_prompts`, the one place that differs from ``MaskDecoder.predict_masks``: each
prompt takes its own view's embedding instead of one embedding repeated), ``Sam.postprocess_masks``
and the amg utilities. Crop layers (``crop_n_layers > 0``) and small-region removal
(``min_mask_region_area > 0``) are not handled here: :func:`supports` says so and the backend
then runs the official generator (:mod:`pipeline.sam.generator`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
from segment_anything.utils.amg import batched_mask_to_box, calculate_stability_score
from torchvision.ops.boxes import batched_nms

from pipeline.sam.generator import OnePassMaskGenerator


def supports(amg: Mapping[str, Any]) -> bool:
    """Whether the batched generator gives the official masks for these ``sam.amg`` options."""
    return int(amg.get("crop_n_layers", 0)) == 0 and int(amg.get("min_mask_region_area", 0)) == 0


@dataclass
class DeviceMasks:
    """The kept masks of one view, in the official record order, still on the model's device."""

    masks: torch.Tensor  # (M, H, W) bool at the image size
    predicted_iou: torch.Tensor  # (M,) float32
    stability_score: torch.Tensor  # (M,) float32
    boxes: torch.Tensor  # (M, 4) xyxy, as the official records' boxes before xywh
    points: torch.Tensor  # (M, 2) float64 prompt coordinates (image pixels)

    def __len__(self) -> int:
        return int(self.masks.shape[0])


@torch.no_grad()
def decode_prompts(model: Any, embeddings: torch.Tensor, view: torch.Tensor, coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Low-res mask logits (B, 3, 4G, 4G) and predicted IoUs (B, 3) of single-point prompts.

    ``embeddings`` (V, 256, G, G) are the views' image embeddings, ``view`` (B,) int64 the view of
    each prompt, ``coords`` (B, 1, 2) the prompts in the model's input frame (as
    ``SamPredictor.transform.apply_coords`` gives them). Same layers and operations as
    ``MaskDecoder.predict_masks`` with ``multimask_output=True``, except that prompt *b* sees
    ``embeddings[view[b]]`` rather than one embedding repeated over the batch (and two copies of
    the batch-sized image tensors are avoided; the numbers are the same).
    """
    labels = torch.ones(coords.shape[:2], dtype=torch.int, device=coords.device)
    sparse, dense = model.prompt_encoder(points=(coords, labels), boxes=None, masks=None)
    dec = model.mask_decoder
    batch = sparse.size(0)
    output_tokens = torch.cat([dec.iou_token.weight, dec.mask_tokens.weight], dim=0)
    tokens = torch.cat((output_tokens.unsqueeze(0).expand(batch, -1, -1), sparse), dim=1)
    # the dense (no-mask) embedding is one vector for every prompt, so it is added once per view before
    # the per-prompt gather (same sums); the positional encoding is expanded, not copied, per prompt
    src = (embeddings + dense[:1])[view]
    pos_src = model.prompt_encoder.get_dense_pe().expand(batch, -1, -1, -1)
    b, c, h, w = src.shape
    hs, src = dec.transformer(src, pos_src, tokens)
    iou_token_out = hs[:, 0, :]
    mask_tokens_out = hs[:, 1 : (1 + dec.num_mask_tokens), :]
    upscaled = dec.output_upscaling(src.transpose(1, 2).view(b, c, h, w))
    hyper_in = torch.stack([dec.output_hypernetworks_mlps[i](mask_tokens_out[:, i, :]) for i in range(dec.num_mask_tokens)], dim=1)
    b, c, h, w = upscaled.shape
    masks = (hyper_in @ upscaled.view(b, c, h * w)).view(b, -1, h, w)
    iou_pred = dec.iou_prediction_head(iou_token_out)
    return masks[:, 1:], iou_pred[:, 1:]


class BatchedMaskGenerator:
    """The official automatic masks of crop layer 0, decoded across views and kept on the device.

    Built on :class:`~pipeline.sam.generator.OnePassMaskGenerator` (its options, point grid and
    one-pass predictor, so the encoder pass also gives the feature map).
    """

    def __init__(self, model: Any, amg: Mapping[str, Any], precision: str = "fp32") -> None:
        self.official = OnePassMaskGenerator(model, amg, precision)
        if not supports(amg):
            raise ValueError("BatchedMaskGenerator handles crop_n_layers 0 and min_mask_region_area 0 only")
        self.model = model
        self.predictor = self.official.predictor

    @torch.no_grad()
    def generate_views(self, images: Sequence[np.ndarray], encoder_batch: int = 1) -> Iterator[tuple[DeviceMasks, torch.Tensor]]:
        """Yield ``(DeviceMasks, embedding (1, 256, G, G) float32)`` per image, in order."""
        images = list(images)
        step = max(1, int(encoder_batch))
        for start in range(0, len(images), step):
            chunk = images[start : start + step]
            if len({im.shape for im in chunk}) > 1:  # one decoder batch needs one image size
                for image in chunk:
                    yield from self.generate_views([image], 1)
                continue
            embeddings = self.predictor.encode_batch(chunk)
            self.predictor.forget()
            masks = self._masks(torch.cat(embeddings), chunk[0].shape[:2], len(chunk))
            yield from zip(masks, embeddings)

    def _masks(self, embeddings: torch.Tensor, image_hw: tuple[int, int], n_views: int) -> list[DeviceMasks]:
        """Decode every view's point grid in chunks of ``points_per_batch`` prompts, filter, NMS."""
        gen = self.official
        points = gen.point_grids[0] * np.array(image_hw)[None, ::-1]  # (P, 2) x, y in image pixels
        transformed = self.predictor.transform.apply_coords(points, image_hw)
        n_points = len(points)
        all_points = torch.as_tensor(np.tile(points, (n_views, 1)))
        all_coords = torch.as_tensor(np.tile(transformed, (n_views, 1)), device=embeddings.device)
        parts: list[list[tuple]] = [[] for _ in range(n_views)]
        for lo in range(0, n_views * n_points, gen.points_per_batch):
            hi = min(lo + gen.points_per_batch, n_views * n_points)
            index = torch.arange(lo, hi)
            view = torch.div(index, n_points, rounding_mode="floor")
            low, iou = decode_prompts(self.model, embeddings, view.to(embeddings.device), all_coords[lo:hi, None, :])
            for v, kept in self._filter(low, iou, view, all_points[lo:hi], image_hw):
                parts[v].append(kept)
        return [self._nms(p, image_hw) for p in parts]

    def _filter(self, low: torch.Tensor, iou: torch.Tensor, view: torch.Tensor, points: torch.Tensor, image_hw) -> Iterator[tuple[int, tuple]]:
        """The official per-batch filters (predicted IoU, stability), the IoU one before upscaling;
        yields (view, (masks, iou, stability, boxes, points)) for the views in this chunk."""
        gen = self.official
        low, iou = low.flatten(0, 1), iou.flatten(0, 1)
        view = view.repeat_interleave(3)
        points = points.repeat_interleave(3, dim=0)
        keep = iou > gen.pred_iou_thresh if gen.pred_iou_thresh > 0.0 else torch.ones_like(iou, dtype=torch.bool)
        low, iou = low[keep], iou[keep]
        keep = keep.cpu()
        view, points = view[keep], points[keep]
        input_size = self.predictor.transform.get_preprocess_shape(image_hw[0], image_hw[1], self.model.image_encoder.img_size)
        logits = self.model.postprocess_masks(low[:, None], input_size, image_hw)[:, 0]
        stability = calculate_stability_score(logits, self.model.mask_threshold, gen.stability_score_offset)
        if gen.stability_score_thresh > 0.0:
            keep = stability >= gen.stability_score_thresh
            logits, iou, stability = logits[keep], iou[keep], stability[keep]
            keep = keep.cpu()
            view, points = view[keep], points[keep]
        masks = logits > self.model.mask_threshold
        del logits
        boxes = batched_mask_to_box(masks)
        for v in torch.unique(view).tolist():
            sel = (view == v).to(masks.device)
            yield v, (masks[sel], iou[sel], stability[sel], boxes[sel], points[view == v])

    def _nms(self, parts: list[tuple], image_hw) -> DeviceMasks:
        """One view's kept masks through the official box NMS (crop layer 0: no crop filters)."""
        device = self.predictor.device
        if not parts:
            h, w = image_hw
            return DeviceMasks(torch.zeros((0, h, w), dtype=torch.bool, device=device), torch.zeros(0, device=device),
                               torch.zeros(0, device=device), torch.zeros((0, 4), device=device), torch.zeros((0, 2), dtype=torch.float64))
        masks, iou, stability, boxes, points = (torch.cat(x) for x in zip(*parts))
        keep = batched_nms(boxes.float(), iou, torch.zeros(len(boxes), device=boxes.device), iou_threshold=self.official.box_nms_thresh)
        return DeviceMasks(masks[keep], iou[keep], stability[keep], boxes[keep], points[keep.cpu()])
