"""Shard membership: which samples each Snakemake job processes.

Decided when the DAG is built, from the split lists: a sample's shard is a stable hash of its
id modulo the split's shard count. Adding samples changes only the shards they land in; the
other shards keep their membership, their params and therefore their outputs.
"""

from __future__ import annotations

import hashlib
import re
from typing import Mapping, Sequence

from pipeline.errors import UserError


class MembershipError(UserError, ValueError):
    """Samples cannot be cut into shards as configured (one line naming the config key)."""

_SHARD = re.compile(r"^(?P<split>[A-Za-z0-9_]+)-(?P<index>\d{3})$")


def shard_index(sample_id: str, n_shards: int) -> int:
    """Stable shard index of ``sample_id`` (SHA-1 of the id, not Python's salted ``hash``)."""
    if n_shards < 1:
        raise ValueError("n_shards must be >= 1")
    return int.from_bytes(hashlib.sha1(sample_id.encode("utf-8")).digest()[:8], "big") % n_shards


def shard_name(split: str, index: int) -> str:
    """``train-003``: the wildcard value used in every stage's store path."""
    return f"{split}-{index:03d}"


def parse_shard(name: str) -> tuple[str, int]:
    """Inverse of :func:`shard_name`."""
    match = _SHARD.match(name)
    if not match:
        raise ValueError(f"not a shard name: {name!r}")
    return match["split"], int(match["index"])


def assign_shards(samples: Mapping[str, Sequence[str]], n_shards: Mapping[str, int]) -> dict[str, list[str]]:
    """``{split: [ids]}`` → ``{shard name: sorted ids}``; empty shards are left out.

    A sample listed in two splits is an error (its outputs would collide).
    """
    seen: dict[str, str] = {}
    shards: dict[str, list[str]] = {}
    for split, ids in samples.items():
        if split not in n_shards:
            raise MembershipError(f"config key dataset.shards: no shard count for split {split!r}")
        for sample in ids:
            if sample in seen and seen[sample] != split:
                raise MembershipError(
                    f"sample {sample!r} is listed in splits {seen[sample]!r} and {split!r} (config key dataset.split_files: "
                    "a sample belongs to one split, or its outputs would collide and the splits leak into each other)"
                )
            seen[sample] = split
            shards.setdefault(shard_name(split, shard_index(sample, n_shards[split])), []).append(sample)
    return {name: sorted(set(ids)) for name, ids in sorted(shards.items())}
