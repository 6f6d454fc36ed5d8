"""MaskCLIP labels for batches of views: preprocessing, encoder, classifier head.

:class:`MaskClipLabeller` holds the frozen model on its device and the text classifier;
:meth:`MaskClipLabeller.label` maps a batch of uint8 RGB views to label maps, confidences
and (optionally) the low-resolution scores. The encoder runs under bf16 autocast when asked
(CUDA default); the head (cosines, refinements, upsampling, argmax) always runs in float32.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.clip import scoring
from pipeline.clip.checkpoint import LoadedClip
from pipeline.clip.maskclip import MaskClipEncoder
from pipeline.clip.text import templates, text_classifier
from pipeline.errors import UserError

log = logging.getLogger(__name__)

_HEAD_CHUNK = 4
"""Views per upsample/argmax step (full-resolution float32 scores are C x H x W each)."""


def resolve_device(name: str) -> torch.device:
    """The ``clip.device`` value resolved (:func:`pipeline.devices.resolve_device`)."""
    from pipeline.devices import resolve_device as resolve

    return resolve(name, "clip.device")


def resolve_precision(name: str, device: torch.device) -> str:
    """``auto`` → ``bf16`` on CUDA, ``fp32`` elsewhere."""
    if name == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return name


@dataclass
class BatchResult:
    """Outputs for B views: label (B, Hl, Wl) uint8, confidence (B, Hl, Wl) float16,
    scores (B, C, gh, gw) float16 or None, grid (gh, gw) and input size (W, H)."""

    label: np.ndarray
    confidence: np.ndarray
    scores: np.ndarray | None
    grid: tuple[int, int]
    input_size: tuple[int, int]


class MaskClipLabeller:
    """Dense CLIP labels for batches of views (see the module docstring)."""

    def __init__(
        self, loaded: LoadedClip, vocabulary: Any, template_sets, options: Mapping[str, Any], text: torch.Tensor | None = None
    ) -> None:
        """``text``: a precomputed classifier (n_prompts, D) for these prompts and templates (else computed)."""
        self.loaded = loaded
        self.options = dict(options)
        self.device = resolve_device(self.options.get("device", "auto"))
        self.precision = resolve_precision(self.options.get("precision", "auto"), self.device)
        model = loaded.model.to(self.device)
        self.encoder = MaskClipEncoder(model.visual).eval()
        self.templates = templates(template_sets)
        if text is None:
            text = text_classifier(
                model, loaded.tokenizer, vocabulary.names, self.templates, self.device,
                int(self.options.get("text_batch_size", 256)),
            )
        self.text = text.to(self.device, torch.float32)
        self.prompt_to_class = torch.from_numpy(np.asarray(vocabulary.to_class, dtype=np.uint8)).to(self.device)
        self.mean = torch.tensor(loaded.mean, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(loaded.std, device=self.device).view(1, 3, 1, 1)
        self.denoise = self.options.get("prompt_denoising", {}) or {}
        self.smooth = self.options.get("key_smoothing", {}) or {}
        log.info(
            "MaskCLIP %s on %s (%s), %d prompt rows x %d templates",
            loaded.model_name, self.device, self.precision, len(vocabulary.names), len(self.templates),
        )

    def input_size(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """Encoder input size (W, H) for a view of ``image_size`` (W, H)."""
        pw, ph = self.loaded.patch_size
        given = self.options.get("input_size")
        if given:
            width, height = int(given[0]), int(given[1])
            if width % pw or height % ph:
                raise UserError(f"config key clip.input_size: {width}x{height} is not a multiple of the patch size {pw}x{ph}")
            return width, height
        return max(pw, round(image_size[0] / pw) * pw), max(ph, round(image_size[1] / ph) * ph)

    def preprocess(self, images: np.ndarray) -> torch.Tensor:
        """uint8 RGB (B, H, W, 3) → normalised float32 (B, 3, h, w) at the encoder input size."""
        batch = torch.from_numpy(np.ascontiguousarray(images)).to(self.device, non_blocking=True)
        x = batch.permute(0, 3, 1, 2).float().div_(255.0)
        width, height = self.input_size((images.shape[2], images.shape[1]))
        if (x.shape[-1], x.shape[-2]) != (width, height):
            x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
        return (x - self.mean) / self.std

    @torch.inference_mode()
    def label(self, images: np.ndarray, output_size: tuple[int, int], keep_scores: bool = False) -> BatchResult:
        """Label a batch: ``images`` (B, H, W, 3) uint8, ``output_size`` (W, H) of the label maps."""
        x = self.preprocess(images)
        use_keys = bool(self.smooth.get("enabled"))
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            dense = self.encoder(x, return_keys=use_keys)
        scores = scoring.class_logits(dense.features, self.text)
        if self.denoise.get("enabled"):
            scores = scoring.prompt_denoising(scores, float(self.denoise.get("threshold", 0.5)))
        if use_keys:
            scores = scoring.key_smoothing(scores, dense.keys, float(self.smooth.get("threshold", 1.0)))
        labels, confidences = [], []
        for start in range(0, scores.shape[0], _HEAD_CHUNK):  # bounds the full-resolution temporaries
            label, confidence = scoring.labels_and_confidence(
                scores[start : start + _HEAD_CHUNK], (output_size[1], output_size[0]), self.prompt_to_class
            )
            labels.append(label.cpu().numpy())
            confidences.append(confidence.cpu().numpy())
        return BatchResult(
            label=np.concatenate(labels),
            confidence=np.concatenate(confidences),
            scores=scores.to(torch.float16).cpu().numpy() if keep_scores else None,
            grid=(int(scores.shape[-2]), int(scores.shape[-1])),
            input_size=(int(x.shape[-1]), int(x.shape[-2])),
        )
