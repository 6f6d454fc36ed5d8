"""The refine stage: CLIP pseudo-labels max-voted inside SAM masks.

* :mod:`pipeline.refine.paint` — one view: mask winners (the one voting rule) painted in a nesting order.
* :mod:`pipeline.refine.stage` — one refine store per shard from the CLIP and SAM stores.
* :mod:`pipeline.refine.cli` — ``python -m pipeline refine``.
"""
