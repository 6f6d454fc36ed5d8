"""Build an open_clip CLIP model and load its weights from a local file, never a download.

A model is named like open_clip names it (``ViT-B-16-quickgelu``) or given as an open_clip
model-config dict (``{"embed_dim": .., "vision_cfg": {..}, "text_cfg": {..}}``, e.g. a tiny
ViT of the same architecture for tests and the demo). Weights come from a state dict
(``.pt``/``.pth``/``.bin``, read with ``torch.load(weights_only=True)``) or a ``.safetensors``
file. OpenAI's TorchScript archives are refused with a pointer to ``clip-convert``.
Random initialisation happens only when the caller asks for it explicitly; the provenance is
then ``random-init`` and a warning is logged.

Every problem with the checkpoint file raises :class:`pipeline.errors.InputFileError` naming
the file: missing, unreadable/truncated, TorchScript, a pickle that would run code, or weights
of another architecture.
"""

from __future__ import annotations

import copy
import logging
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from pipeline.errors import InputFileError, UserError
from pipeline.provenance import file_sha256

log = logging.getLogger(__name__)

RANDOM_INIT = "random-init"
"""Provenance recorded instead of a checkpoint hash when weights are random."""

ACTIVATIONS = ("auto", "quick_gelu", "gelu")

# Keys some checkpoints carry that are not parameters of an open_clip CLIP model.
_IGNORABLE_KEYS = frozenset({"input_resolution", "context_length", "vocab_size", "attn_mask"})


@dataclass
class LoadedClip:
    """An open_clip model in eval mode with what the stage records about it."""

    model: Any  # open_clip.CLIP or CustomTextCLIP
    tokenizer: Any  # open_clip SimpleTokenizer
    model_name: str
    model_config: dict
    quick_gelu: bool
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    native_size: tuple[int, int]  # (W, H) the positional embedding was trained for
    patch_size: tuple[int, int]  # (W, H) pixels per patch
    checkpoint: str | None
    checkpoint_sha256: str  # hex digest, or RANDOM_INIT
    metadata: dict = field(default_factory=dict)

    @property
    def activation(self) -> str:
        return "quick_gelu" if self.quick_gelu else "gelu"


def resolve_model_config(
    model_name: str, model_config: Mapping[str, Any] | None = None, activation: str = "auto"
) -> tuple[dict, bool]:
    """The open_clip model config to build and whether it uses QuickGELU.

    ``model_config`` (a model-config dict) wins over the built-in config of ``model_name``.
    ``activation`` ``auto`` keeps the config's ``quick_gelu`` (the ``-quickgelu`` names set it);
    ``quick_gelu``/``gelu`` override it. Raises :class:`UserError` naming the config key for
    unknown names or configs this stage cannot run (timm or Hugging Face towers).
    """
    import open_clip

    if activation not in ACTIVATIONS:
        raise UserError(f"config key clip.activation: {activation!r} is not one of {ACTIVATIONS}")
    if model_config:
        cfg = copy.deepcopy(dict(model_config))
        where = "clip.model_config"
    else:
        found = open_clip.get_model_config(model_name)
        if found is None:
            raise UserError(
                f"config key clip.model: unknown open_clip model {model_name!r} "
                f"(e.g. ViT-B-16-quickgelu for OpenAI's weights; see open_clip.list_models())"
            )
        cfg = copy.deepcopy(found)
        where = "clip.model"
    for key in ("embed_dim", "vision_cfg", "text_cfg"):
        if key not in cfg:
            raise UserError(f"config key {where}: model config lacks {key!r}")
    vision, text = cfg["vision_cfg"], cfg["text_cfg"]
    if "timm_model_name" in vision:
        raise UserError(f"config key {where}: timm image towers are not supported (MaskCLIP needs open_clip's own ViT)")
    if isinstance(vision.get("layers"), (list, tuple)):
        raise UserError(f"config key {where}: ResNet image towers are not supported (MaskCLIP here needs a ViT)")
    if "hf_model_name" in text or "hf_tokenizer_name" in text or "multimodal_cfg" in cfg:
        raise UserError(
            f"config key {where}: Hugging Face text towers / CoCa are not supported (they need downloads); "
            "use a CLIP model with open_clip's own text transformer"
        )
    if activation != "auto":
        cfg["quick_gelu"] = activation == "quick_gelu"
    return cfg, bool(cfg.get("quick_gelu", False))


def _explain_unpickling(path: Path, err: Exception) -> InputFileError:
    text = str(err)
    hint = ""
    marker = "Unsupported global: GLOBAL "
    if marker in text:
        hint = f" (it references {text.split(marker, 1)[1].split()[0].rstrip('.,')})"
    return InputFileError(
        path,
        "refused to load: the checkpoint's pickle asks to import or call objects that a plain weights "
        f"file never needs{hint}, so loading it could run code. torch.load(weights_only=True) blocked it; "
        "nothing was executed. Use a plain state dict or a .safetensors file from a source you trust.",
    )


def read_state_dict(path: str | Path) -> tuple[dict, dict]:
    """Read a state dict (``{name: tensor}``) and its metadata from ``path`` without running code.

    ``.safetensors`` files are read with safetensors (metadata: the header's ``__metadata__``);
    anything else with ``torch.load(weights_only=True)``; a top-level ``state_dict`` entry and a
    ``module.`` prefix are unwrapped. Raises :class:`InputFileError` naming the file.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "checkpoint not found (set clip.checkpoint to a local file; weights are never downloaded)")
    metadata: dict = {}
    if path.suffix == ".safetensors":
        try:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt", device="cpu") as handle:
                metadata = dict(handle.metadata() or {})
                state = {key: handle.get_tensor(key) for key in handle.keys()}
        except Exception as err:  # safetensors raises its own error types for bad headers/sizes
            raise InputFileError(path, f"unreadable or truncated safetensors file ({type(err).__name__}: {err})") from None
    else:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                if any(name.endswith("constants.pkl") or "/code/" in name for name in archive.namelist()):
                    raise InputFileError(
                        path,
                        "this is a TorchScript archive (OpenAI's release format), which weights-only loading "
                        "cannot read. Convert it once, if you trust the file: python -m pipeline clip-convert "
                        f"--in {path} --out {path.with_suffix('.safetensors')} --model <open_clip model name>",
                    )
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            raise _explain_unpickling(path, err) from None
        except Exception as err:  # truncated zips, wrong magic numbers, EOF: all mean "unreadable"
            if "weights_only" in str(err) or "Unsupported global" in str(err):
                raise _explain_unpickling(path, err) from None
            raise InputFileError(path, f"unreadable or truncated checkpoint ({type(err).__name__}: {err})") from None
        state = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else loaded
    if not isinstance(state, dict) or not state:
        raise InputFileError(path, f"expected a non-empty state dict (name -> tensor), found {type(state).__name__}")
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise InputFileError(path, f"expected a state dict of tensors; entries {bad[:3]} are not tensors")
    if all(key.startswith("module.") for key in state):
        state = {key[len("module."):]: value for key, value in state.items()}
    return state, metadata


def check_architecture(path: Path, state: Mapping[str, Any], expected: Mapping[str, Any], model_name: str) -> dict:
    """Compare checkpoint keys/shapes with the model's; returns the state dict to load.

    Drops known non-parameter entries (OpenAI's ``input_resolution``, ``context_length``,
    ``vocab_size``; ``attn_mask``) and reshapes a scalar/1-element ``logit_scale``. Raises
    :class:`InputFileError` listing missing, unexpected and mismatched keys.
    """
    state = {k: v for k, v in state.items() if k not in _IGNORABLE_KEYS or k in expected}
    for key in ("logit_scale", "logit_bias"):
        if key in state and key in expected and state[key].numel() == expected[key].numel() == 1:
            state[key] = state[key].reshape(expected[key].shape)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(state) & set(expected)
        if tuple(state[k].shape) != tuple(expected[k].shape)
    )
    if missing or unexpected or mismatched:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatches", mismatched)):
            if items:
                shown = ", ".join(items[:3]) + (", ..." if len(items) > 3 else "")
                parts.append(f"{len(items)} {label} ({shown})")
        raise InputFileError(
            path,
            f"weights do not fit model {model_name!r} (wrong architecture?): {'; '.join(parts)}. "
            "Check clip.model / clip.model_config against the checkpoint.",
        )
    return dict(state)


def _tokenizer(cfg: Mapping[str, Any]):
    from open_clip import SimpleTokenizer

    return SimpleTokenizer(context_length=int(cfg["text_cfg"].get("context_length", 77)))


def load_clip(
    model_name: str,
    checkpoint: str | Path | None,
    *,
    random_init: bool = False,
    model_config: Mapping[str, Any] | None = None,
    activation: str = "auto",
    mean: tuple[float, float, float] | None = None,
    std: tuple[float, float, float] | None = None,
    seed: int = 0,
) -> LoadedClip:
    """Build ``model_name`` (or ``model_config``) and load ``checkpoint`` into it (eval, fp32, CPU).

    Exactly one of ``checkpoint`` and ``random_init`` must be given. ``mean``/``std`` default
    to open_clip's (OpenAI's) normalisation constants. A safetensors file written by
    ``clip-convert`` records its activation; a mismatch with the model's is an error.
    """
    import open_clip
    import torch
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    cfg, quick_gelu = resolve_model_config(model_name, model_config, activation)
    if checkpoint and random_init:
        raise UserError("config keys clip.checkpoint and clip.random_init: give a checkpoint or random_init: true, not both")
    if not checkpoint and not random_init:
        raise UserError(
            "config key clip.checkpoint: no checkpoint given. Set it to a local open_clip state dict or "
            ".safetensors file (weights are never downloaded), or set clip.random_init: true for demos/tests"
        )
    name = model_name if not model_config else "custom (clip.model_config)"
    cls = open_clip.CustomTextCLIP if cfg.get("custom_text", False) else open_clip.CLIP
    build_cfg = {k: copy.deepcopy(v) for k, v in cfg.items() if k != "custom_text"}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = cls(**build_cfg)
    cfg_record = copy.deepcopy(cfg)
    metadata: dict = {}
    if random_init:
        sha = RANDOM_INIT
        log.warning("CLIP model %s is RANDOMLY INITIALISED (clip.random_init: true): labels are meaningless", name)
        ckpt_str = None
    else:
        path = Path(checkpoint)
        state, metadata = read_state_dict(path)
        state = check_architecture(path, state, model.state_dict(), name)
        recorded = metadata.get("activation")
        if recorded and recorded != ("quick_gelu" if quick_gelu else "gelu"):
            raise InputFileError(
                path,
                f"these weights were converted for activation {recorded!r} (model {metadata.get('model')!r}) but "
                f"the model config uses {'quick_gelu' if quick_gelu else 'gelu'}; use the matching open_clip name "
                "(OpenAI's weights need a '-quickgelu' model) or set clip.activation explicitly",
            )
        model.load_state_dict(state, strict=True)
        sha = file_sha256(path)
        ckpt_str = str(path)
    model = model.float().eval().requires_grad_(False)
    visual = model.visual
    image_h, image_w = visual.image_size if isinstance(visual.image_size, tuple) else (visual.image_size,) * 2
    patch_h, patch_w = visual.patch_size
    return LoadedClip(
        model=model,
        tokenizer=_tokenizer(cfg),
        model_name=name,
        model_config=cfg_record,
        quick_gelu=quick_gelu,
        mean=tuple(float(x) for x in (mean or OPENAI_DATASET_MEAN)),
        std=tuple(float(x) for x in (std or OPENAI_DATASET_STD)),
        native_size=(int(image_w), int(image_h)),
        patch_size=(int(patch_w), int(patch_h)),
        checkpoint=ckpt_str,
        checkpoint_sha256=sha,
        metadata=metadata,
    )
