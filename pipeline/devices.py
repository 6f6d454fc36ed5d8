"""The one reading of a ``device`` config value: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""

from __future__ import annotations

from pipeline.errors import UserError


def resolve_device(name: str, key: str):
    """``auto`` → CUDA when available, else CPU; otherwise the named device, which must exist.

    ``key`` names the config key in errors (``clip.device``). Returns a ``torch.device``.
    """
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise UserError(f"config key {key}: invalid device {name!r} (auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"config key {key}: {name!r} requested but CUDA is not available")
    return device
