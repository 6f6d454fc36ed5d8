"""The 2D networks: output shapes, and the demo's slim DeepLabV3 is small in parameters."""

import pytest
import torch

from pipeline.errors import UserError
from train.models.deeplab import DeepLab2D


@pytest.mark.parametrize("backbone, most", [("slim", 7_000_000), ("tiny", 25_000_000)])
def test_deeplab_outputs_and_size(backbone, most):
    torch.manual_seed(0)
    net = DeepLab2D(num_classes=5, latent_dim=32, backbone=backbone).eval()
    params = sum(p.numel() for p in net.parameters())
    assert params <= most
    with torch.no_grad():
        logits, latent = net(torch.randn(2, 3, 64, 96))
    assert logits.shape == (2, 5, 64, 96) and latent.shape == (2, 32, 8, 12)  # stride 8
    if backbone == "slim":
        assert params < sum(p.numel() for p in DeepLab2D(5, 32, "tiny").parameters()) / 3


def test_an_unknown_backbone_names_the_key():
    with pytest.raises(UserError, match="train.net2d.backbone"):
        DeepLab2D(num_classes=5, backbone="resnet18")
