"""The refine stage: CLIP pseudo-labels max-voted inside SAM masks.

* :mod:`pipeline.refine.voting` — the pure, vectorised voting core (one view, numpy).
* :mod:`pipeline.refine.stage` — one refine store per shard from the CLIP and SAM stores.
* :mod:`pipeline.refine.cli` — ``python -m pipeline refine``.
"""
