"""The two SAM backends behind one interface, and the choice between them.

A backend yields, per view of a prepared sample, ``(ViewMasks at label resolution, features
(Hc, Wc, 256) float32 of the valid embedding cells)``; see :mod:`pipeline.sam.stage`.
"""

from __future__ import annotations

import logging
from typing import Any, Iterator, Mapping

import numpy as np

from pipeline.errors import UserError
from pipeline.images import nearest_indices
from pipeline.sam.masks import ViewMasks

log = logging.getLogger(__name__)


def resolve_device(device: str) -> str:
    """The ``sam.device`` value resolved (:func:`pipeline.devices.resolve_device`), as a string."""
    from pipeline.devices import resolve_device as resolve

    return str(resolve(device, "sam.device"))


def resolve_precision(precision: str, device: str) -> str:
    """``auto`` → fp32 (bf16/fp16 autocast only on request, and only on CUDA)."""
    if precision == "auto":
        return "fp32"
    if precision != "fp32" and not device.startswith("cuda"):
        raise UserError(f"config key sam.precision: {precision!r} autocast is for CUDA; use fp32 on {device}")
    return precision


def resize_masks(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Masks (M, H, W) bool → (M, size[1], size[0]) by nearest pixel centre (as images.resize_labels)."""
    m, height, width = masks.shape
    if (width, height) == tuple(size):
        return masks
    return masks[:, nearest_indices(height, size[1])[:, None], nearest_indices(width, size[0])[None, :]]


class SegmentAnythingBackend:
    """SAM's automatic masks and embedding from one encoder pass per view (crop layer 0), through the
    batched generator (:mod:`pipeline.sam.batched`) or the official one (``sam.generator``)."""

    name = "segment_anything"

    def __init__(
        self,
        loaded: Any,
        amg: Mapping[str, Any],
        nesting_order: str = "part",
        encoder_batch: int = 1,
        precision: str = "fp32",
        device: str = "cpu",
        generator: str = "batched",
    ) -> None:
        from pipeline.sam import batched
        from pipeline.sam.generator import OnePassMaskGenerator

        if generator not in ("batched", "official"):
            raise UserError(f"config key sam.generator: {generator!r} is not one of ['batched', 'official']")
        self.loaded = loaded  # pipeline.sam.model.LoadedSam
        self.device = device
        self.precision = precision
        self.batched = generator == "batched" and batched.supports(amg)
        if generator == "batched" and not self.batched:
            log.info("sam.generator batched covers crop_n_layers 0 and min_mask_region_area 0; running the official generator")
        self.generator_name = "batched" if self.batched else "official"
        make = batched.BatchedMaskGenerator if self.batched else OnePassMaskGenerator
        self.generator = make(loaded.model, amg, precision)
        self.encoder_batch = int(encoder_batch)
        self.nesting_order = nesting_order

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> "SegmentAnythingBackend":
        """Load the model the validated ``sam`` options name (errors name the checkpoint file)."""
        from pipeline.sam.model import load_sam

        device = resolve_device(options.get("device", "auto"))
        precision = resolve_precision(options.get("precision", "auto"), device)
        loaded = load_sam(
            options["model_type"],
            options.get("checkpoint"),
            random_init=bool(options.get("random_init")),
            tiny=options.get("tiny"),
            seed=int(options.get("seed", 0)),
            device=device,
        )
        return cls(
            loaded,
            options.get("amg", {}),
            nesting_order=options.get("nesting_order", "part"),
            encoder_batch=int(options.get("encoder_batch", 1)),
            precision=precision,
            device=device,
            generator=options.get("generator", "batched"),
        )

    def metadata(self) -> dict[str, Any]:
        import segment_anything
        import torch

        return {
            "backend": self.name,
            "model_type": self.loaded.model_type,
            "weights": self.loaded.weights,
            "checkpoint": self.loaded.checkpoint,
            "long_side": self.loaded.long_side,
            "patch": self.loaded.patch,
            "device": self.device,
            "precision": self.precision,
            "generator": self.generator_name,
            "torch": torch.__version__,
            "segment_anything": getattr(segment_anything, "__version__", "1.0"),
        }

    @property
    def encoder_passes(self) -> int:
        return self.generator.predictor.encoder_passes

    def grid(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """Valid embedding cells (Hc, Wc) of an image of ``image_size`` (W, H)."""
        from pipeline.camera import sam_valid_grid

        return sam_valid_grid(image_size, self.loaded.long_side, self.loaded.patch)

    def run_images(self, images: list[np.ndarray], label_size: tuple[int, int]) -> Iterator[tuple[ViewMasks, np.ndarray]]:
        """Per RGB image (H, W, 3) uint8: masks at ``label_size`` (W, H) and the valid feature region."""
        from pipeline.sam.device_masks import view_masks_from_device
        from pipeline.sam.features import valid_region
        from pipeline.sam.generator import records_to_arrays

        for image, (found, embedding) in zip(images, self.generator.generate_views(images, self.encoder_batch)):
            h, w = image.shape[:2]
            if self.batched:  # masks still on the device: resized, encoded and painted there
                view = view_masks_from_device(found.masks, found.predicted_iou, found.stability_score, label_size, self.nesting_order)
            else:  # the official records: RLE lists decoded on the host
                masks, iou, stability = records_to_arrays(found, (h, w))
                view = ViewMasks.from_masks(resize_masks(masks, label_size), iou, stability, self.nesting_order)
            feats = valid_region(embedding[0].detach().cpu().numpy(), self.grid((w, h)))
            yield view, feats

    def run_views(self, reader, sample_id: str, views: list[int], label_size: tuple[int, int]):
        """Yield ``(ViewMasks, features)`` for views of a prepared sample, decoding images in batches."""
        from pipeline.images import read_view_images

        step = max(1, self.encoder_batch)
        for start in range(0, len(views), step):
            chunk = views[start : start + step]
            images = list(read_view_images(reader, sample_id, chunk))
            yield from self.run_images(images, label_size)


def make_backend(options: Mapping[str, Any]):
    """The backend the (validated) ``sam`` options ask for; models are loaded here, before any output."""
    backend = options.get("backend", "segment_anything")
    if backend == "segment_anything":
        return SegmentAnythingBackend.from_options(options)
    if backend == "simulated":
        from pipeline.sam.simulated import SimulatedBackend

        return SimulatedBackend(options)
    raise UserError(f"config key sam.backend: unknown backend {backend!r}")
