"""torchrun / DDP setup: rank, world size and device from the environment torchrun sets."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        """True on rank 0, the process that writes files."""
        return self.rank == 0


def setup(device: str) -> DistInfo:
    """Initialise the process group when torchrun started several processes (``WORLD_SIZE`` > 1).

    Backend: NCCL on CUDA, gloo on CPU. ``device``: ``auto``, ``cpu`` or ``cuda``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    from pipeline.devices import resolve_device

    use_cuda = resolve_device(device, "train.device").type == "cuda"
    dev = torch.device("cuda", local) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", rank=rank, world_size=world)
        log.info("process %d of %d on %s", rank, world, dev)
    return DistInfo(rank, world, local, dev)


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op in a single process)."""
    if info.world > 1:
        dist.barrier()


def any_true(flag: bool, info: DistInfo) -> bool:
    """True on every rank if ``flag`` is true on any rank."""
    if info.world == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def gather_strings(items: list[str], info: DistInfo) -> list[str]:
    """All ranks' string lists concatenated (rank order)."""
    if info.world == 1:
        return list(items)
    out: list[list[str] | None] = [None] * info.world
    dist.all_gather_object(out, items)
    return [s for part in out for s in (part or [])]


def teardown(info: DistInfo) -> None:
    """Destroy the process group :func:`setup` created."""
    if info.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
