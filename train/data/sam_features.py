"""Decoded SAM feature maps of a ``sam`` store, in the space the latent loss compares with.

The SAM stage may store the valid embedding cells channel-reduced (a per-store basis) and
quantised; ``pipeline.sam.features.decode_features`` (numpy, no foundation model) decodes
that format. Stores of the plain float16 format (``views/features`` (V, Hc, Wc, C) with an
optional basis) are decoded here directly. The projection through the basis runs in torch
(which honours ``torch.set_num_threads``): numpy's OpenBLAS threads spin against torch's
and made it 30x slower inside the training loop on 2 cores.
"""

from __future__ import annotations

import numpy as np

from pipeline.layout import StoreReader

SAM_DIM = 256
"""Channels of SAM's image embedding."""


def _quantised(reader: StoreReader) -> bool:
    return any(spec.path == "views/feature_scale" for spec in reader.stage.arrays)


class SamFeatures:
    """Per-view decoded feature maps of one ``sam`` store.

    ``space="sam"``: vectors in SAM's 256-d embedding space (through the store's basis and mean);
    ``space="reduced"``: the stored coefficients (C channels, mean removed).
    """

    def __init__(self, reader: StoreReader, space: str = "sam") -> None:
        if space not in ("sam", "reduced"):
            raise ValueError(f"space must be 'sam' or 'reduced', got {space!r}")
        self.reader = reader
        self.space = space
        self.basis = reader.read_store_array("_store/feature_basis") if reader.has_store_array("_store/feature_basis") else None
        self.mean = reader.read_store_array("_store/feature_mean") if reader.has_store_array("_store/feature_mean") else None
        self.quantised = _quantised(reader)

    def dim(self, sample_id: str) -> int:
        """Channels of the decoded vectors."""
        if self.space == "sam":
            return SAM_DIM if self.basis is not None else int(self.reader.sample_attrs(sample_id)["sizes"]["C"])
        return int(self.reader.sample_attrs(sample_id)["sizes"]["C"])

    def view(self, sample_id: str, view: int) -> np.ndarray:
        """Decoded map of one view → (Hc, Wc, D) float32."""
        coef = self.reader.read(sample_id, "views/features", int(view))
        if self.quantised:
            from pipeline.sam.features import decode_features

            scale = self.reader.read(sample_id, "views/feature_scale", int(view))
            basis = self.basis if self.basis is not None else np.eye(coef.shape[-1], dtype=np.float32)
            mean = self.mean if self.mean is not None else np.zeros(basis.shape[1], np.float32)
            feats = decode_features(coef, scale, basis, mean, "reduced")  # (Hc, Wc, C), no matmul
        else:
            feats = coef.astype(np.float32)
        if self.space == "sam" and self.basis is not None:
            import torch

            flat = torch.from_numpy(np.ascontiguousarray(feats.reshape(-1, feats.shape[-1])))
            out = flat @ torch.from_numpy(self.basis)
            if self.mean is not None:
                out += torch.from_numpy(self.mean)
            feats = out.numpy().reshape(*feats.shape[:-1], -1)
        return feats
