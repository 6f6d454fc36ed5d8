"""Convert MinkowskiEngine MinkUNet34C weights to our torch-backend MinkUNet34.

MinkowskiEngine's example network (and our ``minkowski``-backend model, which uses its module
names) stores

- convolutions as ``<name>.kernel``: (k**3, C_in, C_out) for k > 1, (C_in, C_out) for k == 1,
  offsets enumerated x fastest; a bias as ``<name>.bias`` (1, C_out);
- batch norms as ``<name>.bn.{weight, bias, running_mean, running_var, num_batches_tracked}``.

Ours stores ``<name>.weight`` (k**3, C_in, C_out) with the same offset order (see
:mod:`train.sparse.kernel_map`) and ``<name>.bias`` (C_out,); batch norms have the same keys as
MinkowskiEngine's. The projection head (``proj.*``) is ours alone and passes through unchanged.

    python -m train.models.convert_minkowski me_checkpoint.pth converted.pth
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)


def _strip_wrapping(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Unwrap ``{"state_dict": ...}`` checkpoints and DataParallel's ``module.`` prefix."""
    if "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]  # type: ignore[assignment]
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return dict(state)


def convert_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """MinkowskiEngine-layout state dict -> torch-backend state dict (tensors are not copied
    unless reshaped).

    Raises:
        ValueError: a kernel or bias with an unexpected shape.
    """
    state = _strip_wrapping(state)
    convs = {k[: -len(".kernel")] for k in state if k.endswith(".kernel")}
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        prefix, _, field = key.rpartition(".")
        if field == "kernel":
            if value.dim() == 2:
                value = value.unsqueeze(0)
            elif value.dim() != 3:
                raise ValueError(f"{key}: expected a (K, C_in, C_out) or (C_in, C_out) kernel, got {tuple(value.shape)}")
            out[f"{prefix}.weight"] = value
        elif field == "bias" and prefix in convs:
            if value.dim() == 2 and value.shape[0] == 1:
                value = value.reshape(-1)
            elif value.dim() != 1:
                raise ValueError(f"{key}: expected a (1, C_out) bias, got {tuple(value.shape)}")
            out[key] = value
        else:
            out[key] = value
    return out


def load_minkowski_weights(model: nn.Module, state: Mapping[str, torch.Tensor], allow_missing_head: bool = True) -> list[str]:
    """Load a MinkowskiEngine MinkUNet34C state dict into our torch-backend model.

    Every network parameter must be present with matching shape; the projection head (``proj.*``),
    which MinkowskiEngine checkpoints do not have, may be missing and then keeps its
    initialisation.

    Returns:
        The keys of ``model`` that were not in the checkpoint.

    Raises:
        ValueError: keys missing (besides the head), unexpected, or of the wrong shape.
    """
    converted = convert_state_dict(state)
    own = model.state_dict()
    missing = [k for k in own if k not in converted]
    unexpected = [k for k in converted if k not in own]
    bad_missing = [k for k in missing if not (allow_missing_head and k.startswith("proj."))]
    if bad_missing or unexpected:
        raise ValueError(
            f"checkpoint does not match the network: missing {bad_missing[:5]}{'...' if len(bad_missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    wrong = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in converted.items() if v.shape != own[k].shape]
    if wrong:
        raise ValueError(f"checkpoint shapes do not match the network: {wrong[:5]}")
    model.load_state_dict(converted, strict=False)
    return missing


def main(argv: list[str] | None = None) -> None:
    """CLI: convert a MinkowskiEngine checkpoint file (tensors only) to our layout."""
    p = argparse.ArgumentParser(description="Convert a MinkowskiEngine MinkUNet34C state dict to the torch backend's layout.")
    p.add_argument("source", type=Path, help="MinkowskiEngine checkpoint (a state dict saved with torch.save)")
    p.add_argument("target", type=Path, help="where to write the converted state dict")
    args = p.parse_args(argv)
    state = torch.load(args.source, map_location="cpu", weights_only=True)
    write_state_dict(convert_state_dict(state), args.target)


def write_state_dict(state: Mapping[str, torch.Tensor], target: Path) -> None:
    """Save a converted state dict to ``target`` atomically (a ``.partial`` file, then rename)."""
    tmp = target.with_name(target.name + ".partial")
    torch.save(dict(state), tmp)
    tmp.replace(target)
    print(f"wrote {len(state)} tensors to {target}")


if __name__ == "__main__":
    main()
