"""The SAM stage: automatic masks, segment-id maps and encoder feature maps per view.

Modules, one job each:

* :mod:`pipeline.sam.model` — build or load a segment-anything model (local checkpoint, tiny
  configurations for tests and the demo, explicit random initialisation).
* :mod:`pipeline.sam.generator` — one encoder pass per view serving the official automatic mask
  generator and the feature map.
* :mod:`pipeline.sam.batched` — the default generator: the official masks of crop layer 0, with the
  prompts of several views decoded together and post-processing kept on the device.
* :mod:`pipeline.sam.device_masks` — those masks → the store's per-view arrays, on the device.
* :mod:`pipeline.sam.masks` — row-major run-length encoding of masks and segment-id maps in a
  nesting order (numpy only; the refine stage imports it).
* :mod:`pipeline.sam.features` — valid-region feature maps, their per-store PCA + int8 storage and
  :func:`~pipeline.sam.features.decode_features` (numpy only; the trainer imports it).
* :mod:`pipeline.sam.simulated` — the ``simulated`` backend: masks and features from ground truth.
* :mod:`pipeline.sam.stage` — the stage runner writing one ``sam`` store per shard.
* :mod:`pipeline.sam.cli` — ``python -m pipeline sam``.
"""
