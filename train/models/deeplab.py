"""The 2D network: torchvision's DeepLabV3 (ResNet backbone, output stride 8) + a projection head.

Weights are never downloaded: the torchvision builders get ``weights=None`` and
``weights_backbone=None``; a local backbone state dict (e.g. ImageNet ResNet weights) can be
loaded with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from pipeline.errors import UserError

BACKBONES = ("resnet50", "resnet101", "tiny", "slim")

SLIM_WIDTH = 128
"""Channels of the ``slim`` head (ASPP and the 3x3 conv; DeepLabV3's are 256)."""


def _torchvision_deeplab(backbone: str, num_classes: int):
    from torchvision.models import segmentation
    from torchvision.models._utils import IntermediateLayerGetter
    from torchvision.models.resnet import Bottleneck, ResNet
    from torchvision.models.segmentation.deeplabv3 import DeepLabHead, DeepLabV3

    if backbone == "resnet50":
        return segmentation.deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=False)
    if backbone == "resnet101":
        return segmentation.deeplabv3_resnet101(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=False)
    if backbone == "slim":
        # small in parameters, not only in depth (6.0 M; tiny 24.2 M): torchvision's bottleneck block
        # with expansion 1 (stage outputs 64..512 channels), one block per stage, dilated for stride 8,
        # and DeepLabV3's head built from torchvision's ASPP at 128 channels
        from torchvision.models.segmentation.deeplabv3 import ASPP

        class _SlimBottleneck(Bottleneck):
            expansion = 1

        resnet = ResNet(_SlimBottleneck, [1, 1, 1, 1], replace_stride_with_dilation=[False, True, True])
        head = nn.Sequential(
            ASPP(512, [12, 24, 36], SLIM_WIDTH), nn.Conv2d(SLIM_WIDTH, SLIM_WIDTH, 3, padding=1, bias=False),
            nn.BatchNorm2d(SLIM_WIDTH), nn.ReLU(), nn.Conv2d(SLIM_WIDTH, num_classes, 1),
        )
        return DeepLabV3(IntermediateLayerGetter(resnet, {"layer4": "out"}), head, None)
    if backbone == "tiny":
        # torchvision's bottleneck ResNet with one block per stage, dilated like deeplabv3_resnet50
        resnet = ResNet(Bottleneck, [1, 1, 1, 1], replace_stride_with_dilation=[False, True, True])
        return DeepLabV3(IntermediateLayerGetter(resnet, {"layer4": "out"}), DeepLabHead(2048, num_classes), None)
    raise UserError(f"config key train.net2d.backbone: unknown backbone {backbone!r}; choose one of {BACKBONES}")


def load_backbone_weights(backbone: nn.Module, path: str | Path) -> None:
    """Load a torchvision ResNet state dict from a local file into ``backbone`` (fc dropped).

    Raises :class:`UserError` naming the file when it is missing, not a weights-only
    checkpoint, or of another architecture.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: backbone weights not found (config key train.net2d.backbone_weights)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for unsafe or corrupt files
        raise UserError(f"{path}: not a weights-only state dict ({type(err).__name__}: {str(err).splitlines()[0]})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UserError(f"{path}: expected a state dict, found {type(state).__name__}")
    state = {k.removeprefix("module.").removeprefix("backbone."): v for k, v in state.items() if not k.startswith("fc.")}
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise UserError(
            f"{path}: does not fit the configured ResNet backbone (missing {missing[:3]}..., unexpected {unexpected[:3]}...)"
        )


class DeepLab2D(nn.Module):
    """DeepLabV3 returning class logits at input resolution and projected features at stride 8.

    ``forward(images (B, 3, H, W))`` → ``(logits (B, K, H, W), latent (B, D, H/8, W/8))``. The
    projection head reads the 256-channel features of DeepLab's head (after ASPP and its 3x3
    conv), the same features the classifier reads.
    """

    def __init__(
        self,
        num_classes: int,
        latent_dim: int = 256,
        backbone: str = "resnet50",
        backbone_weights: str | Path | None = None,
        head_hidden: int = 0,
    ) -> None:
        super().__init__()
        model = _torchvision_deeplab(backbone, num_classes)
        if backbone_weights:
            load_backbone_weights(model.backbone, backbone_weights)
        self.backbone = model.backbone
        self.head = model.classifier  # DeepLabHead: ASPP, conv3x3, BN, ReLU, conv1x1
        width = self.head[-1].in_channels
        if head_hidden > 0:
            self.proj: nn.Module = nn.Sequential(
                nn.Conv2d(width, head_hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(head_hidden, latent_dim, 1)
            )
        else:
            self.proj = nn.Conv2d(width, latent_dim, 1)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        size = images.shape[-2:]
        feats = self.backbone(images)["out"]
        for layer in list(self.head)[:-1]:
            feats = layer(feats)
        logits = F.interpolate(self.head[-1](feats), size=size, mode="bilinear", align_corners=False)
        return logits, self.proj(feats)
