"""MinkUNet34: the 3D network of CNS (MinkowskiNet34, the MinkUNet34C layout of MinkowskiEngine's
examples) on our sparse interface, plus a projection head into a latent space (SAM's 256-d).

Layout (tensor strides in brackets): conv 5^3 + BN + ReLU [1] -> four times (conv 2^3 stride 2 +
BN + ReLU, then residual BasicBlocks) [2, 4, 8, 16] -> four times (transposed conv 2^3 stride 2 +
BN + ReLU back onto the encoder's sites, concatenation with the encoder features at that stride,
BasicBlocks) [8, 4, 2, 1] -> 1x1 conv with bias to the classes. A BasicBlock is conv 3^3, BN, ReLU,
conv 3^3, BN, plus the input (through a 1x1 conv + BN when the width changes), ReLU.

Module names are those of MinkowskiEngine's example network, so on the ``minkowski`` backend the
state dict *is* a MinkUNet34C state dict; :mod:`train.models.convert_minkowski` maps it to the
``torch`` backend's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from train.sparse.backend import SparseBackend, get_backend


@dataclass(frozen=True)
class MinkUNetConfig:
    """Widths and depths of a MinkUNet.

    Attributes:
        layers: BasicBlocks per stage (4 encoder stages, then 4 decoder stages).
        planes: output width of each stage.
        init_dim: width of the stem convolution (and of the stride-1 skip).
        stem_kernel: kernel size of the stem convolution.
        bn_momentum: momentum of every batch norm.
    """

    layers: tuple[int, ...] = (2, 3, 4, 6, 2, 2, 2, 2)
    planes: tuple[int, ...] = (32, 64, 128, 256, 256, 128, 96, 96)
    init_dim: int = 32
    stem_kernel: int = 5
    bn_momentum: float = 0.1

    def __post_init__(self) -> None:
        if len(self.layers) != 8 or len(self.planes) != 8:
            raise ValueError("a MinkUNet needs 8 stage depths and 8 stage widths")
        if min(self.layers) < 1 or min(self.planes) < 1 or self.init_dim < 1:
            raise ValueError("MinkUNet depths and widths must be positive")


MINKUNET34C = MinkUNetConfig()
"""MinkowskiEngine's MinkUNet34C (the paper's MinkowskiNet34)."""
MINKUNET_TINY = MinkUNetConfig(
    layers=(1, 1, 1, 1, 1, 1, 1, 1), planes=(8, 8, 16, 16, 16, 8, 8, 8), init_dim=8, stem_kernel=3
)
"""Same topology with one block per stage and narrow widths: for tests and the demo."""
MINKUNET_SMALL = MinkUNetConfig(
    layers=(1, 1, 1, 1, 1, 1, 1, 1), planes=(8, 16, 32, 64, 64, 32, 24, 24), init_dim=8, stem_kernel=3
)
"""One block per stage, a quarter of MinkUNet34C's widths and the tiny layout's 3x3x3 stem: the
learning demo on a CPU (the tiny layout's 8-channel last stage underfits 20 classes)."""


class BasicBlock(nn.Module):
    """Residual block: conv3-BN-ReLU-conv3-BN, plus the (projected) input, ReLU."""

    def __init__(self, backend: SparseBackend, inplanes: int, planes: int, bn_momentum: float) -> None:
        super().__init__()
        self.conv1 = backend.conv(inplanes, planes, kernel_size=3)
        self.norm1 = backend.batch_norm(planes, bn_momentum)
        self.conv2 = backend.conv(planes, planes, kernel_size=3)
        self.norm2 = backend.batch_norm(planes, bn_momentum)
        self.relu = backend.relu()
        self.downsample: nn.Module | None = None
        if inplanes != planes:
            self.downsample = nn.Sequential(
                backend.conv(inplanes, planes, kernel_size=1), backend.batch_norm(planes, bn_momentum)
            )

    def forward(self, x):  # noqa: ANN001, ANN201 - backend tensor in, backend tensor out
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out + residual)


def _stage(backend: SparseBackend, inplanes: int, planes: int, blocks: int, bn_momentum: float) -> nn.Sequential:
    return nn.Sequential(
        *[BasicBlock(backend, inplanes if i == 0 else planes, planes, bn_momentum) for i in range(blocks)]
    )


class MinkUNet34(nn.Module):
    """MinkUNet34C with a projection head.

    Args:
        in_channels: input feature width (e.g. 3 for colour).
        num_classes: number of output classes.
        latent_dim: width of the projected features (256 = SAM's embedding).
        backend: ``torch``, ``minkowski``, ``auto`` or a :class:`SparseBackend`.
        config: widths and depths (:data:`MINKUNET34C` by default, :data:`MINKUNET_TINY` for tests).
        head_hidden: 0 for a linear projection head, else the hidden width of a 2-layer MLP head.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        latent_dim: int = 256,
        backend: str | SparseBackend = "torch",
        config: MinkUNetConfig = MINKUNET34C,
        head_hidden: int = 0,
    ) -> None:
        super().__init__()
        self.backend = get_backend(backend)
        self.config = config
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.latent_dim = latent_dim
        b, p, n, m = self.backend, config.planes, config.layers, config.bn_momentum
        d0 = config.init_dim

        self.conv0p1s1 = b.conv(in_channels, d0, kernel_size=config.stem_kernel)
        self.bn0 = b.batch_norm(d0, m)
        # Encoder: downsample (kernel 2, stride 2) keeping the width, then the stage's blocks.
        widths = [d0, p[0], p[1], p[2]]
        for i in range(4):
            setattr(self, f"conv{i + 1}p{2**i}s2", b.conv(widths[i], widths[i], kernel_size=2, stride=2))
            setattr(self, f"bn{i + 1}", b.batch_norm(widths[i], m))
            setattr(self, f"block{i + 1}", _stage(b, widths[i], p[i], n[i], m))
        # Decoder: transposed conv (kernel 2, stride 2), concatenate the skip, blocks.
        skips = [p[2], p[1], p[0], d0]
        inplanes = p[3]
        for i in range(4):
            level = 4 + i
            setattr(self, f"convtr{level}p{2 ** (4 - i)}s2", b.conv_transpose(inplanes, p[level], kernel_size=2, stride=2))
            setattr(self, f"bntr{level}", b.batch_norm(p[level], m))
            setattr(self, f"block{level + 1}", _stage(b, p[level] + skips[i], p[level], n[level], m))
            inplanes = p[level]
        self.final = b.conv(p[7], num_classes, kernel_size=1, bias=True)
        self.relu = b.relu()
        if head_hidden > 0:
            self.proj: nn.Module = nn.Sequential(
                nn.Linear(p[7], head_hidden), nn.ReLU(inplace=True), nn.Linear(head_hidden, latent_dim)
            )
        else:
            self.proj = nn.Linear(p[7], latent_dim)

    def forward_backend(self, x):  # noqa: ANN001, ANN201
        """Backend tensor in; (logits tensor, decoder feature tensor) as backend tensors."""
        out_p1 = self.relu(self.bn0(self.conv0p1s1(x)))
        skips = [out_p1]
        out = out_p1
        for i in range(4):
            out = self.relu(getattr(self, f"bn{i + 1}")(getattr(self, f"conv{i + 1}p{2**i}s2")(out)))
            out = getattr(self, f"block{i + 1}")(out)
            skips.append(out)
        skips.pop()  # the stride-16 output is the decoder's input, not a skip
        for i in range(4):
            level = 4 + i
            out = getattr(self, f"convtr{level}p{2 ** (4 - i)}s2")(out)
            out = self.relu(getattr(self, f"bntr{level}")(out))
            out = self.backend.cat(out, skips.pop())
            out = getattr(self, f"block{level + 1}")(out)
        return self.final(out), out

    def forward(self, features: torch.Tensor, coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Segment a batch of voxelised clouds.

        Args:
            features: (M, in_channels) float voxel features.
            coords: (M, 4) int32 unique ``[batch, x, y, z]`` voxel coordinates (see
                :func:`train.sparse.voxelize`).

        Returns:
            logits (M, num_classes) and projected features (M, latent_dim), rows in input order.
        """
        if features.shape[1] != self.in_channels:
            raise ValueError(f"MinkUNet34 expects {self.in_channels} input channels, got {features.shape[1]}")
        x = self.backend.tensor(features, coords)
        logits_t, feat_t = self.forward_backend(x)
        rows = self.backend.rows_of(logits_t, coords)
        logits, feats = self.backend.features(logits_t), self.backend.features(feat_t)
        if rows is not None:
            logits, feats = logits.index_select(0, rows), feats.index_select(0, rows)
        return logits, self.proj(feats)
