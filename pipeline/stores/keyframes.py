"""Which points of a prepared sample are its own: the rule every scorer of points shares."""

from __future__ import annotations

from pipeline.stores import StoreError


def keyframe_points(prepared, sample: str, n_points: int) -> int:
    """How many leading points of ``sample`` (in ``prepared``, a :class:`pipeline.stores.StoreReader`)
    are its own (keyframe) points: ``n_points`` less the sample attribute ``sweep_points`` (the
    nuScenes adapter appends that many sweep points after the keyframe's when
    ``dataset.nuscenes.sweeps > 0``), else all. Sweep points are never scored."""
    extra = int(prepared.sample_attrs(sample).get("sweep_points") or 0)
    if not 0 <= extra <= n_points:
        raise StoreError(f"{prepared.path}: sample {sample}: sweep_points {extra} outside 0..{n_points}")
    return n_points - extra
