"""One-off conversion of OpenAI's TorchScript CLIP archives to a safetensors state dict.

OpenAI publishes CLIP weights (``ViT-B-16.pt`` ...) as TorchScript archives, which
``torch.load(weights_only=True)`` refuses. This module loads such an archive with
``torch.jit.load`` -- **which executes the TorchScript code inside the archive, so run it only
on files you trust** -- keeps the tensors that belong to the named open_clip model, checks
they fit that model exactly, and writes them as ``.safetensors``. The pipeline itself only
ever reads the converted file. The safetensors metadata records the model name and its
activation, so the clip stage can refuse weights used with the wrong activation.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, Mapping

from pipeline.atomic import atomic_file
from pipeline.errors import InputFileError, UserError

log = logging.getLogger(__name__)


def convert_torchscript(
    src: str | Path,
    dst: str | Path,
    model_name: str,
    model_config: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """Convert TorchScript archive ``src`` into safetensors ``dst`` for ``model_name``.

    Tensors keep their stored dtype (OpenAI's are mostly float16; loading casts them). Raises
    :class:`InputFileError` naming ``src`` when it is missing, not TorchScript, or does not fit
    the model. ``dst`` is written atomically (temporary file, then rename). Returns the
    metadata written.
    """
    import torch
    from safetensors.torch import save_file

    from pipeline.clip.checkpoint import check_architecture, resolve_model_config
    from pipeline.provenance import file_sha256

    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise InputFileError(src, "TorchScript archive not found")
    if dst.suffix != ".safetensors":
        raise UserError(f"--out {dst}: the output must be a .safetensors file")
    cfg, quick_gelu = resolve_model_config(model_name, model_config)
    if not quick_gelu:
        log.warning(
            "model %s uses GELU, but OpenAI's CLIP weights were trained with QuickGELU: "
            "use the '-quickgelu' model name unless these weights are not OpenAI's", model_name,
        )
    log.warning("running torch.jit.load on %s: this executes the archive's TorchScript code; only convert files you trust", src)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            archive = torch.jit.load(str(src), map_location="cpu")
    except Exception as err:  # not a TorchScript archive, truncated, ...
        raise InputFileError(src, f"not a readable TorchScript archive ({type(err).__name__}: {str(err).splitlines()[0]})") from None
    import open_clip

    build = {k: v for k, v in cfg.items() if k != "custom_text"}
    model = (open_clip.CustomTextCLIP if cfg.get("custom_text") else open_clip.CLIP)(**build)
    state = {k: v.detach().contiguous() for k, v in archive.state_dict().items()}
    state = check_architecture(src, state, model.state_dict(), model_name)
    metadata = {
        "format": "open_clip state dict",
        "converted_from": "torchscript",
        "source_sha256": file_sha256(src),
        "model": model_name,
        "activation": "quick_gelu" if quick_gelu else "gelu",
    }
    with atomic_file(dst) as tmp:
        save_file(state, str(tmp), metadata=metadata)
    log.info("wrote %s (%d tensors)", dst, len(state))
    return metadata
