"""Checkpoints: plain dicts of tensors, numbers and strings, written atomically and read back
with ``torch.load(weights_only=True)``.

Content (``FORMAT``): ``format``, ``stage``, ``step``, ``model2d`` / ``model3d`` (state dicts),
``optimizer``, ``schedule``, ``rng`` (torch CPU and CUDA generator states), ``meta`` (JSON
text: benchmark, classes, network settings, latent space and width, config hash, code version,
transductive flag). :func:`networks_from_checkpoint` rebuilds the networks from ``meta``, so
predict/evaluate never depend on the current config matching the trained one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from pipeline.errors import UserError

FORMAT = "cns-train/1"
_PERIODIC = re.compile(r"^step_(\d{8})\.pt$")


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file, then rename)."""
    from pipeline.atomic import atomic_file

    path = Path(path)
    with atomic_file(path) as tmp:
        torch.save({"format": FORMAT, **state}, tmp)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` onto the CPU; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unsafe pickles, truncated files, ...
        raise UserError(f"{path}: not a readable weights-only checkpoint ({type(err).__name__}: {str(err).splitlines()[0]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path}: not a {FORMAT} checkpoint of this trainer")
    return state


def checkpoint_meta(state: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's ``meta`` (stored as JSON text) as a dict."""
    return json.loads(state["meta"])


def periodic_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Periodic checkpoints of a run directory, (step, path), oldest first."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _PERIODIC.match(p.name))]
    return sorted(found)


def prune_checkpoints(run_dir: str | Path, keep: int) -> None:
    """Delete all but the ``keep`` newest periodic checkpoints."""
    for _, path in periodic_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        path.unlink(missing_ok=True)


def rng_state() -> dict[str, Any]:
    """Torch's CPU generator state (uint8 tensor) and, once CUDA is initialised, every GPU's."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def networks_from_checkpoint(state: dict[str, Any]) -> tuple[torch.nn.Module, torch.nn.Module | None, dict[str, Any]]:
    """(net2d, net3d, meta) rebuilt from a checkpoint, weights loaded, in eval mode; ``net3d`` is
    None for an image-only run (meta ``image_only``: no ``model3d`` saved)."""
    from train.config import Net2DConfig, Net3DConfig
    from train.networks import build_2d, build_3d

    meta = checkpoint_meta(state)
    n_classes = len(meta["classes"])
    net2d_cfg = Net2DConfig(**{**meta["net2d"], "backbone_weights": None})
    net3d_cfg = Net3DConfig(**{**meta["net3d"], "input_features": tuple(meta["net3d"]["input_features"])})
    net2d = build_2d(net2d_cfg, n_classes, meta["latent_dim"])
    net2d.load_state_dict(state["model2d"])
    if meta.get("image_only"):
        return net2d.eval(), None, meta
    net3d = build_3d(net3d_cfg, n_classes, meta["latent_dim"])
    net3d.load_state_dict(state["model3d"])
    return net2d.eval(), net3d.eval(), meta


def load_for_inference(
    checkpoint: str | Path, device: str, threads: int
) -> tuple[torch.nn.Module, torch.nn.Module | None, dict[str, Any], torch.device]:
    """(net2d, net3d, meta, torch.device): a checkpoint's networks in eval mode on ``device``
    (``train.device``: :func:`pipeline.devices.resolve_device`), ``meta`` with the checkpoint's
    ``step``; ``threads > 0`` sets torch's CPU threads."""
    from pipeline.devices import resolve_device

    if threads > 0:
        torch.set_num_threads(threads)
    dev = resolve_device(device, "train.device")
    state = load_checkpoint(checkpoint)
    net2d, net3d, meta = networks_from_checkpoint(state)
    return net2d.to(dev), None if net3d is None else net3d.to(dev), {**meta, "step": int(state["step"])}, dev
