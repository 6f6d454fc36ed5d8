"""The project stage: which points each view sees, at which pixel, and the labels they carry.

* :mod:`pipeline.project.geometry` — the decision rule (float64 statement), block culling, the
  float32 kernel with float64 re-decision near decision boundaries, :func:`visible_pairs`.
* :mod:`pipeline.project.backend` — the array operations of the kernel (numpy on CPU, torch on CUDA).
* :mod:`pipeline.project.votes` — multi-view majority voting of pair labels into point labels.
* :mod:`pipeline.project.stage` — one points store per shard from the prepared, CLIP and refine stores.
* :mod:`pipeline.project.synthetic` — synthetic RGB-D scenes for tests and the benchmark.
* :mod:`pipeline.project.cli` — ``python -m pipeline project``.
"""
