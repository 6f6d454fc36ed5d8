"""Convert MinkUNet34 weights between the torch backend and the spconv backend, both ways.

The two backends build the same modules under the same names (:mod:`train.models.minkunet`);
only convolution kernels differ in layout:

- torch backend: ``<name>.weight`` (k**3, C_in, C_out), offsets enumerated x fastest, z slowest
  (:func:`train.sparse.kernel_map.kernel_offsets`);
- spconv 2.x: ``<name>.weight`` (C_out, k, k, k, C_in), kernel axes in index order (x, y, z), the
  same correlation convention (measured on spconv 2.3.8, see :mod:`train.sparse.spconv_backend`).
  A 1x1x1 kernel is the exception: spconv 2.3.8 multiplies by ``weight.view(C_in, C_out)``, so its
  (C_out, 1, 1, 1, C_in) tensor holds a (C_in, C_out) matrix in row-major memory.

Biases (C_out,), batch norms and the projection head have the same keys and shapes on both.
Convolution kernels are recognised by rank (3 here, 5 in spconv); no other parameter of the
network has those ranks. MinkowskiEngine checkpoints go through
:func:`train.models.convert_minkowski.convert_state_dict` first.

    python -m train.models.convert_spconv --to spconv torch_backend.pth spconv_backend.pth
    python -m train.models.convert_spconv --to torch spconv_backend.pth torch_backend.pth
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

import torch


def _cube_root(volume: int) -> int:
    k = round(volume ** (1 / 3))
    if k**3 != volume:
        raise ValueError(f"kernel volume {volume} is not a cube")
    return k


def kernel_to_spconv(weight: torch.Tensor) -> torch.Tensor:
    """Torch-backend kernel (k**3, C_in, C_out) -> spconv kernel (C_out, k, k, k, C_in) (contiguous)."""
    if weight.dim() != 3:
        raise ValueError(f"expected a (k**3, C_in, C_out) kernel, got {tuple(weight.shape)}")
    volume, c_in, c_out = weight.shape
    k = _cube_root(volume)
    if k == 1:  # spconv 2.3.8 reads a 1x1x1 kernel as weight.view(C_in, C_out)
        return weight[0].contiguous().reshape(c_out, 1, 1, 1, c_in)
    # flat offset i = dx + k*dy + k*k*dz, so the (k, k, k) view is indexed [dz, dy, dx]
    return weight.reshape(k, k, k, c_in, c_out).permute(4, 2, 1, 0, 3).contiguous()


def kernel_from_spconv(weight: torch.Tensor) -> torch.Tensor:
    """spconv kernel (C_out, k, k, k, C_in) -> torch-backend kernel (k**3, C_in, C_out) (contiguous)."""
    if weight.dim() != 5 or not weight.shape[1] == weight.shape[2] == weight.shape[3]:
        raise ValueError(f"expected a (C_out, k, k, k, C_in) kernel, got {tuple(weight.shape)}")
    c_out, k, _, _, c_in = weight.shape
    if k == 1:
        return weight.contiguous().reshape(1, c_in, c_out)
    return weight.permute(3, 2, 1, 4, 0).reshape(k**3, c_in, c_out).contiguous()


def _is_weight(key: str) -> bool:
    return key.rpartition(".")[2] == "weight"


def to_spconv(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Torch-backend state dict -> spconv-backend state dict (rank-3 ``weight`` tensors converted,
    everything else passed through)."""
    return {k: kernel_to_spconv(v) if _is_weight(k) and v.dim() == 3 else v for k, v in state.items()}


def from_spconv(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """spconv-backend state dict -> torch-backend state dict (rank-5 ``weight`` tensors converted,
    everything else passed through)."""
    return {k: kernel_from_spconv(v) if _is_weight(k) and v.dim() == 5 else v for k, v in state.items()}


def main(argv: list[str] | None = None) -> None:
    """CLI: convert a state dict file (tensors only) between the two layouts."""
    p = argparse.ArgumentParser(description="Convert MinkUNet34 weights between the torch and spconv sparse backends.")
    p.add_argument("--to", choices=("spconv", "torch"), required=True, help="layout to write")
    p.add_argument("source", type=Path, help="state dict saved with torch.save")
    p.add_argument("target", type=Path, help="where to write the converted state dict")
    args = p.parse_args(argv)
    state = torch.load(args.source, map_location="cpu", weights_only=True)
    if "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    from train.models.convert_minkowski import write_state_dict

    write_state_dict(to_spconv(state) if args.to == "spconv" else from_spconv(state), args.target)


if __name__ == "__main__":
    main()
