"""Build or load a segment-anything model: local checkpoints, tiny test configurations, random init.

Checkpoints are read with ``torch.load(weights_only=True)`` (or safetensors) and must be a plain
state dict of the chosen architecture; nothing is ever downloaded. Random weights are used
only when the configuration asks for them (``random_init: true``), and are then recorded as
``random-init`` in the store metadata with a warning in the log.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Mapping

from pipeline.errors import InputFileError, UserError
from pipeline.provenance import file_sha256

log = logging.getLogger(__name__)

ARCHITECTURES: dict[str, dict[str, Any]] = {
    "vit_h": {"embed_dim": 1280, "depth": 32, "num_heads": 16, "global_attn_indexes": [7, 15, 23, 31]},
    "vit_l": {"embed_dim": 1024, "depth": 24, "num_heads": 16, "global_attn_indexes": [5, 11, 17, 23]},
    "vit_b": {"embed_dim": 768, "depth": 12, "num_heads": 12, "global_attn_indexes": [2, 5, 8, 11]},
}
"""Encoder hyper-parameters of the released SAM models (as in segment_anything.build_sam)."""

TINY_DEFAULTS: dict[str, Any] = {
    "image_size": 1024,
    "embed_dim": 32,
    "depth": 2,
    "num_heads": 2,
    "global_attn_indexes": [1],
    "window_size": 14,
    "decoder_depth": 1,
    "decoder_mlp_dim": 64,
    "iou_head_hidden_dim": 32,
}
"""A tiny model of the same architecture (same classes, small widths), for tests and the demo."""

PROMPT_EMBED_DIM = 256
"""Channels of SAM's image embedding (and so of the stored feature space), for every model."""


class CheckpointError(InputFileError):
    """A SAM checkpoint is missing, unreadable, unsafe or of another architecture."""


@dataclass
class LoadedSam:
    """A SAM model in eval mode plus what the store metadata records about it."""

    model: Any  # segment_anything.modeling.Sam
    model_type: str
    weights: str  # "sha256:<hex>" of the checkpoint file, or "random-init"
    checkpoint: str | None

    @property
    def long_side(self) -> int:
        """Input side SAM resizes the longest image side to (1024 for the released models)."""
        return int(self.model.image_encoder.img_size)

    @property
    def patch(self) -> int:
        """Input pixels per embedding cell (16 for the released models)."""
        return int(self.model.image_encoder.patch_embed.proj.stride[0])


def build_sam(model_type: str, tiny: Mapping[str, Any] | None = None):
    """A randomly initialised ``Sam`` of ``model_type`` (vit_h, vit_l, vit_b or tiny), eval mode.

    Built from segment_anything's own classes: the released builders for vit_*, the same classes
    with :data:`TINY_DEFAULTS` (overridden by ``tiny``) for ``tiny``.
    """
    import torch
    from segment_anything import sam_model_registry
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    if model_type in ARCHITECTURES:
        return sam_model_registry[model_type](checkpoint=None).eval()
    if model_type != "tiny":
        raise UserError(f"config key sam.model_type: unknown model {model_type!r}; use vit_h, vit_l, vit_b or tiny")
    cfg = {**TINY_DEFAULTS, **dict(tiny or {})}
    image_size, patch = int(cfg["image_size"]), 16
    if image_size % patch:
        raise UserError(f"config key sam.tiny.image_size: must be a multiple of {patch}, got {image_size}")
    grid = image_size // patch
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=int(cfg["depth"]),
            embed_dim=int(cfg["embed_dim"]),
            img_size=image_size,
            mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=int(cfg["num_heads"]),
            patch_size=patch,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=tuple(int(i) for i in cfg["global_attn_indexes"]),
            window_size=int(cfg["window_size"]),
            out_chans=PROMPT_EMBED_DIM,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=PROMPT_EMBED_DIM,
            image_embedding_size=(grid, grid),
            input_image_size=(image_size, image_size),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(
                depth=int(cfg["decoder_depth"]),
                embedding_dim=PROMPT_EMBED_DIM,
                mlp_dim=int(cfg["decoder_mlp_dim"]),
                num_heads=8,
            ),
            transformer_dim=PROMPT_EMBED_DIM,
            iou_head_depth=3,
            iou_head_hidden_dim=int(cfg["iou_head_hidden_dim"]),
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    return sam.eval()


def read_state_dict(path: str | Path) -> dict[str, Any]:
    """Tensors of a checkpoint file (state dict, ``.pt``/``.pth`` or ``.safetensors``), on CPU.

    Raises :class:`CheckpointError` naming the file when it is missing, not a checkpoint,
    carries pickled code or objects beyond tensors, or is not a flat name → tensor mapping.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "SAM checkpoint not found (config key sam.checkpoint)")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        except Exception as err:  # safetensors raises its own error types for bad headers
            raise CheckpointError(path, f"not a readable safetensors file ({type(err).__name__}: {err})") from None
    else:
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            if "weights only load failed" in str(err).lower() or "weights_only" in str(err):
                raise CheckpointError(
                    path,
                    "refused: the file pickles code or objects other than tensors, which "
                    "torch.load(weights_only=True) does not run; save the model's state_dict() "
                    "from a trusted environment and use that file",
                ) from None
            raise CheckpointError(path, f"not a PyTorch checkpoint ({err})") from None
        except Exception as err:  # the unpickler raises many types on garbage (IndexError, EOFError, ...)
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise CheckpointError(path, f"corrupt or unreadable checkpoint ({first})") from None
    if isinstance(state, Mapping) and "model" in state and isinstance(state["model"], Mapping):
        state = state["model"]
    if not isinstance(state, Mapping) or not state or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(path, "not a state dict (expected a mapping of parameter names to tensors)")
    return dict(state)


def _guess_model_type(state: Mapping[str, Any]) -> str | None:
    weight = state.get("image_encoder.patch_embed.proj.weight")
    if weight is None:
        return None
    widths = {cfg["embed_dim"]: name for name, cfg in ARCHITECTURES.items()}
    return widths.get(int(weight.shape[0]), "tiny")


def _mismatch_summary(model, state: Mapping[str, Any]) -> str:
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if keys:
            parts.append(f"{len(keys)} {label} (e.g. {', '.join(keys[:2])})")
    return "; ".join(parts)


def load_sam(
    model_type: str,
    checkpoint: str | Path | None,
    random_init: bool = False,
    tiny: Mapping[str, Any] | None = None,
    seed: int = 0,
    device: str = "cpu",
) -> LoadedSam:
    """Build ``model_type`` and load ``checkpoint`` into it (strictly), or random weights.

    ``random_init`` must be true to run without a checkpoint (then ``torch.manual_seed(seed)``
    makes the weights reproducible and a warning is logged). A checkpoint given together with
    ``random_init`` is an error: the intent would be ambiguous.
    """
    import torch

    if checkpoint and random_init:
        raise UserError("config keys sam.checkpoint and sam.random_init: give a checkpoint or random_init: true, not both")
    if not checkpoint and not random_init:
        raise UserError(
            "config key sam.checkpoint: no SAM checkpoint given; set it to a local file (e.g. sam_vit_h_4b8939.pth) "
            "or set sam.random_init: true for a randomly initialised model (tests, demo)"
        )
    state = read_state_dict(checkpoint) if checkpoint else None
    torch.manual_seed(seed)
    model = build_sam(model_type, tiny)
    if state is None:
        log.warning("SAM %s has RANDOM weights (sam.random_init: true): masks and features are meaningless", model_type)
        weights = "random-init"
    else:
        path = Path(checkpoint)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError:
            guess = _guess_model_type(state)
            hint = f"; it looks like a {guess} checkpoint" if guess and guess != model_type else ""
            raise CheckpointError(
                path, f"does not match SAM {model_type}: {_mismatch_summary(model, state)}{hint}"
            ) from None
        weights = f"sha256:{file_sha256(path)}"
    model.to(device)
    return LoadedSam(model=model.eval(), model_type=model_type, weights=weights, checkpoint=str(checkpoint) if checkpoint else None)
