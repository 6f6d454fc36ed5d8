"""The project stage: which points each view sees, at which pixel, and the labels they carry.

* :mod:`pipeline.project.reference` — the decision rule (float64 statement), ``Cameras``, ``Occlusion``.
* :mod:`pipeline.project.blocks` — Morton-ordered point blocks and conservative frustum culling.
* :mod:`pipeline.project.guards` — per-view float32 error bounds (guard bands).
* :mod:`pipeline.project.kernel` — the float32 kernel over chunks of (view, block) rows.
* :mod:`pipeline.project.runner` — ``visible_pairs``: chunks in threads, float64 re-decision of
  uncertain pairs.
* :mod:`pipeline.project.backend` — the array operations of the kernel (numpy on CPU, torch on CUDA).
* :mod:`pipeline.project.backface` — the back-face test of meshes (float64, after the pass).
* :mod:`pipeline.project.lidar_occlusion` — the occlusion test of lidar samples (depth
  buffers splatted from the sample's points; float64, after the pass).
* :mod:`pipeline.project.stage` — one points store per shard from the prepared, CLIP and refine stores.
* :mod:`pipeline.project.cli` — ``python -m pipeline project``.
"""
