"""From dense features to labels: logits, MaskCLIP's optional refinements, upsampling, argmax.

All of it runs in float32 (the classifier head stays out of bf16 autocast).

* ``logits = 100 · cos(feature, text)``: CLIP's learned temperature; class cosines differ by
  about 0.01, so without the scale every softmax would be nearly uniform.
* *Prompt denoising* (optional): per image, prompt rows whose maximum probability over all
  patches is below a threshold are suppressed (logit set to :data:`SUPPRESSED`); the row
  with the highest maximum always survives.
* *Key smoothing* (optional): at patches whose maximum probability is below a threshold, the
  probabilities are replaced by a similarity-weighted average of all patches' probabilities,
  weights = non-negative cosines of the L2-normalised last-block keys, rows normalised to 1.
  The result is turned back into scores as log-probabilities.
* Scores are upsampled bilinearly (``align_corners=False``) to the output size; the label is
  the argmax prompt row mapped to its class (synonyms: the best synonym wins, i.e. the max
  over a class's synonym logits); confidence is the max softmax over prompt rows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOGIT_SCALE: float = 100.0
"""CLIP's temperature: logits are 100 · cosine."""

SUPPRESSED: float = -1.0e4
"""Logit given to prompt rows removed by prompt denoising (finite, so interpolation stays finite)."""


def class_logits(features: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """Logits (B, C, gh, gw) float32 = 100 · cosine of features (B, D, gh, gw) and text (C, D).

    Both inputs must already be L2-normalised along D.
    """
    with torch.autocast(device_type=features.device.type, enabled=False):
        return LOGIT_SCALE * torch.einsum("bdhw,cd->bchw", features.float(), text.float())


def prompt_denoising(logits: torch.Tensor, threshold: float) -> torch.Tensor:
    """Suppress prompt rows whose max probability over the image is below ``threshold``.

    ``logits`` (B, C, gh, gw) → new tensor, suppressed rows set to :data:`SUPPRESSED`. Per
    image the row with the highest max probability is never suppressed.
    """
    probs = logits.softmax(dim=1)
    peak = probs.flatten(2).amax(dim=2)  # (B, C)
    drop = peak < threshold
    drop[torch.arange(peak.shape[0]), peak.argmax(dim=1)] = False
    return logits.masked_fill(drop[:, :, None, None], SUPPRESSED)


def key_smoothing(logits: torch.Tensor, keys: torch.Tensor, threshold: float) -> torch.Tensor:
    """Key-similarity smoothing of low-confidence patches; returns log-probability scores.

    ``logits`` (B, C, gh, gw); ``keys`` (B, gh*gw, K) last-block keys of the same patches.
    Patches whose max probability is below ``threshold`` take
    ``sum_j w_ij p_j / sum_j w_ij`` with ``w_ij = max(0, cos(k_i, k_j))``; others keep ``p_i``.
    Output (B, C, gh, gw) float32 = log(max(p, 1e-12)).
    """
    batch, classes, gh, gw = logits.shape
    probs = logits.softmax(dim=1).flatten(2).transpose(1, 2)  # (B, N, C)
    unit = F.normalize(keys.float(), dim=-1)
    weights = (unit @ unit.transpose(1, 2)).clamp_min(0.0)  # (B, N, N); diagonal is 1
    smoothed = (weights @ probs) / weights.sum(dim=2, keepdim=True)
    low = probs.amax(dim=2, keepdim=True) < threshold
    out = torch.where(low, smoothed, probs)
    return out.clamp_min(1e-12).log().transpose(1, 2).reshape(batch, classes, gh, gw)


def labels_and_confidence(
    scores: torch.Tensor, size: tuple[int, int], prompt_to_class: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Upsample scores and take the argmax.

    ``scores`` (B, C, gh, gw) float32 (logits or log-probabilities); ``size`` (H, W) output;
    ``prompt_to_class`` (C,) uint8 maps prompt rows to class indices (255 = ignore).
    Returns label (B, H, W) uint8 and confidence (B, H, W) float16 = max softmax over rows.
    """
    with torch.autocast(device_type=scores.device.type, enabled=False):
        up = scores.float()
        if tuple(up.shape[-2:]) != tuple(size):
            up = F.interpolate(up, size=tuple(size), mode="bilinear", align_corners=False)
        best, row = up.max(dim=1)
        confidence = torch.exp(best - torch.logsumexp(up, dim=1))
        label = prompt_to_class.to(up.device)[row]
    return label, confidence.to(torch.float16)
