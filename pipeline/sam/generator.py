"""One image-encoder pass per view for both the automatic masks and the stored feature map.

The official :class:`segment_anything.SamAutomaticMaskGenerator` calls
``predictor.set_image(crop)`` for every crop, the first crop being the whole image. Here its
predictor is replaced by :class:`OnePassPredictor`, a :class:`segment_anything.SamPredictor`
that keeps the embedding of the image it encoded last and restores it, instead of running the
encoder again, when ``set_image`` is called with that same image. So for each view we run
``set_image`` once, keep ``predictor.features`` for the feature map, and let the official
``generate`` produce the masks from that state: same point grids, batching, thresholds,
stability score, NMS, small-region post-processing and RLE — the official code, not a copy.
Crops of layers > 0 are different images and get their own encoder passes, as officially.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from segment_anything import SamAutomaticMaskGenerator, SamPredictor
from segment_anything.utils.amg import rle_to_mask

from pipeline.errors import UserError

log = logging.getLogger(__name__)

AMG_KEYS = (
    "points_per_side",
    "points_per_batch",
    "pred_iou_thresh",
    "stability_score_thresh",
    "stability_score_offset",
    "box_nms_thresh",
    "crop_n_layers",
    "crop_nms_thresh",
    "crop_overlap_ratio",
    "crop_n_points_downscale_factor",
    "min_mask_region_area",
)
"""Keyword arguments of SamAutomaticMaskGenerator that the config sets (``sam.amg``)."""

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class OnePassPredictor(SamPredictor):
    """A SamPredictor that remembers one encoded image and reuses its embedding.

    :meth:`encode` runs the encoder (optionally under autocast; features are returned as
    float32) and keeps the result. :meth:`set_image` with a pixel-identical image of the same
    shape restores the kept state without running the encoder; any other image is encoded as
    usual. ``encoder_passes`` counts encoder runs.
    """

    def __init__(self, sam_model: Any, precision: str = "fp32") -> None:
        super().__init__(sam_model)
        if precision not in PRECISIONS:
            raise UserError(f"config key sam.precision: {precision!r} is not one of {sorted(PRECISIONS)}")
        self.precision = precision
        self.encoder_passes = 0
        self._kept: tuple[np.ndarray, torch.Tensor, tuple[int, int], tuple[int, int]] | None = None

    def _autocast(self):
        dtype = PRECISIONS[self.precision]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    @torch.no_grad()
    def set_torch_image(self, transformed_image: torch.Tensor, original_image_size: tuple[int, ...]) -> None:
        with self._autocast():
            super().set_torch_image(transformed_image, original_image_size)
        self.features = self.features.float()
        self.encoder_passes += 1

    def encode(self, image: np.ndarray) -> torch.Tensor:
        """Encode an RGB image (H, W, 3) uint8 and keep it; returns the embedding (1, 256, G, G) float32."""
        super().set_image(image)
        self.keep(image, self.features)
        return self.features

    @torch.no_grad()
    def encode_batch(self, images: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """Encode several same-size RGB images in one encoder call → embeddings (1, 256, G, G) each.

        Uses the same resize and normalisation as :meth:`set_image`. Nothing is kept; pass each
        result to :meth:`keep` before generating that view's masks.
        """
        if len(images) == 1:
            return [self.encode(images[0])]
        shapes = {im.shape for im in images}
        if len(shapes) != 1:
            raise ValueError(f"encode_batch needs images of one size, got {sorted(shapes)}")
        batch = torch.stack(
            [torch.as_tensor(self.transform.apply_image(im), device=self.device).permute(2, 0, 1) for im in images]
        ).contiguous()
        with self._autocast():
            feats = self.model.image_encoder(self.model.preprocess(batch))
        self.encoder_passes += 1
        return [f[None].float() for f in feats]

    def keep(self, image: np.ndarray, features: torch.Tensor) -> None:
        """Remember ``features`` (1, 256, G, G) as the embedding of ``image`` (H, W, 3) uint8."""
        h, w = image.shape[:2]
        input_size = self.transform.get_preprocess_shape(h, w, self.model.image_encoder.img_size)
        self._kept = (image, features, (h, w), tuple(input_size))

    def forget(self) -> None:
        """Drop the kept embedding (frees its memory)."""
        self._kept = None
        self.reset_image()

    def set_image(self, image: np.ndarray, image_format: str = "RGB") -> None:
        kept = self._kept
        if (
            kept is not None
            and image_format == self.model.image_format
            and image.shape == kept[0].shape
            and np.array_equal(image, kept[0])
        ):
            self.reset_image()
            self.features, self.original_size, self.input_size = kept[1], kept[2], kept[3]
            self.is_image_set = True
            return
        super().set_image(image, image_format)


class OnePassMaskGenerator(SamAutomaticMaskGenerator):
    """The official automatic mask generator driven by a :class:`OnePassPredictor`.

    ``generate`` is the official one (``output_mode='uncompressed_rle'``); :meth:`generate_views`
    encodes each view once and returns its mask records and embedding.
    """

    def __init__(self, model: Any, amg: Mapping[str, Any], precision: str = "fp32") -> None:
        unknown = sorted(set(amg) - set(AMG_KEYS))
        if unknown:
            raise UserError(f"config key sam.amg: unknown options {unknown}")
        if int(amg.get("min_mask_region_area", 0)) > 0:
            try:
                import cv2  # noqa: F401  (segment_anything's small-region removal needs it)
            except ImportError:
                raise UserError(
                    "config key sam.amg.min_mask_region_area: > 0 needs OpenCV (pip install opencv-python-headless)"
                ) from None
        super().__init__(model, output_mode="uncompressed_rle", **dict(amg))
        self.predictor = OnePassPredictor(model, precision)

    @torch.no_grad()
    def generate_views(self, images: Sequence[np.ndarray], encoder_batch: int = 1):
        """Yield ``(records, embedding)`` per image: the official records (RLE at image size) and the
        full embedding (1, 256, G, G) float32 from the same encoder pass."""
        images = list(images)
        for start in range(0, len(images), max(1, encoder_batch)):
            chunk = images[start : start + max(1, encoder_batch)]
            if len(chunk) > 1 and len({im.shape for im in chunk}) == 1:
                feats: list[torch.Tensor | None] = list(self.predictor.encode_batch(chunk))
            else:
                feats = [None] * len(chunk)
            for image, emb in zip(chunk, feats):
                if emb is None:
                    emb = self.predictor.encode(image)
                self.predictor.keep(image, emb)
                yield self.generate(image), emb
            self.predictor.forget()


def records_to_arrays(
    records: Sequence[Mapping[str, Any]], image_hw: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Official mask records → (masks (M, H, W) bool at image size, predicted IoU (M,), stability (M,))."""
    if not records:
        return np.zeros((0, *image_hw), bool), np.zeros(0, np.float32), np.zeros(0, np.float32)
    masks = np.stack([rle_to_mask(r["segmentation"]) for r in records])
    iou = np.asarray([r["predicted_iou"] for r in records], dtype=np.float32)
    stab = np.asarray([r["stability_score"] for r in records], dtype=np.float32)
    return masks, iou, stab
