"""The CNS objective of one step: switched cross-entropy in 2D and 3D plus latent consistency."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from pipeline.vocab import IGNORE
from train.config import StageConfig
from train.data.batch import Batch
from train.losses.latent import latent_loss_2d, latent_loss_3d
from train.losses.switching import draw_targets, origin_weights
from pipeline.voting import segment_majority_torch


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy over non-ignored elements (0 with a graph when all are ignored);
    with per-class ``weight`` (K,) the weighted mean (torch's convention: divided by the targets' weights)."""
    if not bool((target != IGNORE).any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), target, weight=weight, ignore_index=IGNORE)


class CNSLoss:
    """Builds the stage's targets and losses from network outputs and a batch.

    ``origins`` are the origins stacked in the batch (``batch.own2d`` etc.); with
    ``stage.predictions == "online"`` the current predictions are appended as ``pred2d`` /
    ``pred3d`` (2D refined by the SAM segments inside the crop with the one voting rule and
    ``ignore`` = ``refine.ignore``, 3D raw).
    """

    def __init__(self, stage: StageConfig, origins: Sequence[str], n_classes: int, latent_pixels: int, ignore: str,
                 image_only: bool = False, weights2d: torch.Tensor | None = None, weights3d: torch.Tensor | None = None) -> None:
        self.image_only = image_only  # no 3D network: 2D cross-entropy and latent loss only
        self.weights2d = weights2d  # per-class cross-entropy weights (K,), None = plain (train.loss.class_balance)
        self.weights3d = weights3d
        self.stage = stage
        self.ignore = ignore
        self.origins = list(origins)
        self.n_classes = n_classes
        self.latent_pixels = latent_pixels
        self.online = stage.predictions == "online" and stage.needs_predictions
        self.all_origins = self.origins + (["pred2d", "pred3d"] if self.online else [])
        self.w2d = origin_weights(stage.sources, "2d", self.all_origins)
        self.w3d = origin_weights(stage.sources, "3d", self.all_origins)

    def _online(self, out: dict, batch: Batch) -> tuple[torch.Tensor, ...]:
        """Stacks with the current predictions appended as origins ``pred2d``, ``pred3d``.

        Pixel: pred2d own = the refined 2D prediction, pred3d paired = the 3D prediction of the
        paired point's voxel. Point: pred3d own = its 3D prediction, pred2d paired = the refined
        2D prediction at a paired pixel inside this step's crops. The other realisations do not
        exist online (255).
        """
        with torch.no_grad():
            pred2d = out["logits2d"].argmax(1)
            pred2d = segment_majority_torch(pred2d, batch.segments, self.n_classes, self.ignore)
            pred2d = torch.where(batch.cells >= 0, pred2d, torch.full_like(pred2d, IGNORE)).to(torch.uint8)
            pred3d = out["logits3d"].argmax(1).to(torch.uint8)
            none2d = torch.full_like(pred2d, IGNORE)
            none3d = torch.full_like(pred3d, IGNORE)
            at_points = torch.where(batch.row_pix2d >= 0, pred2d.reshape(-1)[batch.row_pix2d.clamp(min=0)], none3d)
            at_pixels = torch.where(batch.pix_row3d >= 0, pred3d[batch.pix_row3d.clamp(min=0)], none2d)
            own2d = torch.cat([batch.own2d, pred2d[None], none2d[None]], 0)
            paired2d = torch.cat([batch.paired2d, none2d[None], at_pixels[None]], 0)
            own3d = torch.cat([batch.own3d, none3d[None], pred3d[None]], 0)
            paired3d = torch.cat([batch.paired3d, at_points[None], none3d[None]], 0)
        return own2d, paired2d, own3d, paired3d

    def targets(self, out: dict, batch: Batch, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Drawn targets: 2D (V, h, w) int64 and 3D (N,) int64 (255 = ignore)."""
        if self.online:
            own2d, paired2d, own3d, paired3d = self._online(out, batch)
        else:
            own2d, paired2d, own3d, paired3d = batch.own2d, batch.paired2d, batch.own3d, batch.paired3d
        switch = self.stage.switching
        t2d = draw_targets(own2d, paired2d if switch else None, self.w2d, generator)
        if self.image_only:
            return t2d, None
        t3d = draw_targets(own3d, paired3d if switch else None, self.w3d, generator)
        return t2d, t3d

    def __call__(self, out: dict, batch: Batch, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        w = self.stage.loss
        t2d, t3d = self.targets(out, batch, generator)
        parts: dict[str, torch.Tensor] = {}
        parts["ce2d"] = cross_entropy(out["logits2d"], t2d, self.weights2d)
        if not self.image_only:
            parts["ce3d"] = cross_entropy(out["logits3d"], t3d, self.weights3d)
        feats = batch.features
        if w.latent2d > 0:
            parts["latent2d"] = latent_loss_2d(out["latent2d"], batch.cells, feats, self.latent_pixels, generator)
        if w.latent3d > 0 and not self.image_only:
            parts["latent3d"] = latent_loss_3d(out["latent3d"], batch.latent3d, feats)
        total = sum(getattr(w, name) * value for name, value in parts.items())
        logged = {name: float(value.detach()) for name, value in parts.items()}
        logged.update(self.switch_shares(batch, t2d, t3d))
        logged.update(self.pseudo_label_fit(out, batch))
        return total, logged

    @staticmethod
    def pseudo_label_fit(out: dict, batch: Batch) -> dict[str, float]:
        """Diagnostics: ``fit2d`` / ``fit3d``, the share of this batch's pseudo-labelled pixels / points
        whose predicted class equals the pseudo-label (agreement with the labels, not ground truth)."""
        result = {}
        with torch.no_grad():
            for key, logits, own in (("fit2d", out.get("logits2d"), batch.own2d), ("fit3d", out.get("logits3d"), batch.own3d)):
                if logits is None or own is None or not own.shape[0]:
                    continue
                labels = own[0].long()
                labelled = labels != IGNORE
                n = int(labelled.sum())
                if n:
                    result[key] = float((logits.argmax(1)[labelled] == labels[labelled]).sum()) / n
        return result

    def switch_shares(self, batch: Batch, t2d: torch.Tensor, t3d: torch.Tensor | None) -> dict[str, float]:
        """Diagnostics (logged, not losses): ``switch2d`` / ``switch3d``, the share of labelled targets
        whose class differs from the element's own-modality pseudo-label (what switching and the
        stage-2 sources changed this step)."""
        out = {}
        for key, target, own in (("switch2d", t2d, batch.own2d), ("switch3d", t3d, batch.own3d)):
            if target is None or own is None or not own.shape[0]:
                continue
            labelled = target != IGNORE
            n = int(labelled.sum())
            if n:
                out[key] = float((target[labelled] != own[0].to(target.dtype)[labelled]).sum()) / n
        return out
