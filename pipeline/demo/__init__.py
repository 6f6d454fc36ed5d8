"""The built-in demo dataset: procedural indoor rooms written in the ScanNet v2 export format.

Modules, one job each:

* :mod:`~pipeline.demo.spec` — scene names, train/val split and per-scene seeds (standard
  library only; the Snakefile imports it when it builds the DAG).
* :mod:`~pipeline.demo.categories` — raw categories, the ``scannetv2-labels.combined.tsv``
  text and each class's look (colour, texture).
* :mod:`~pipeline.demo.boxes` — the scene as oriented boxes with per-face attributes.
* :mod:`~pipeline.demo.furniture` — objects as several boxes (parts) in an object frame.
* :mod:`~pipeline.demo.room` — the room, its furniture and wall objects, placed without overlap.
* :mod:`~pipeline.demo.cameras` — per-scene colour/depth intrinsics and the camera path.
* :mod:`~pipeline.demo.raycast` — ray/box intersection, all boxes at once, with a z-buffer.
* :mod:`~pipeline.demo.texture` — the surface colour function shared by pixels and vertices.
* :mod:`~pipeline.demo.mesh` — tessellated mesh with vertex colours and labels.
* :mod:`~pipeline.demo.render` — colour, depth, label and instance images of one view.
* :mod:`~pipeline.demo.visibility` — which vertices a view truly sees (test ground truth).
* :mod:`~pipeline.demo.defects` — real-world defects (``-inf`` poses, a missing frame, depth holes).
* :mod:`~pipeline.demo.scannet_files` — writers for the ScanNet file formats, atomic directories.
* :mod:`~pipeline.demo.generate` — one scene end to end; the split files and label map.
* :mod:`~pipeline.demo.cli` — ``python -m pipeline demo-scene`` and ``demo-meta``.
"""
