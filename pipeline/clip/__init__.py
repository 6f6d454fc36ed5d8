"""The CLIP stage: dense MaskCLIP pseudo-labels per view, or their simulated stand-in.

Modules, one job each:

* :mod:`pipeline.clip.checkpoint` builds an open_clip model and loads a local checkpoint
  (never downloads; ``weights_only`` loading or safetensors).
* :mod:`pipeline.clip.convert` turns OpenAI's TorchScript archives into safetensors (explicit,
  one-off; it runs TorchScript).
* :mod:`pipeline.clip.maskclip` computes MaskCLIP dense features from the image tower.
* :mod:`pipeline.clip.text` builds the prompt-ensemble text classifier.
* :mod:`pipeline.clip.scoring` turns features into logits, optional MaskCLIP refinements,
  labels and confidences.
* :mod:`pipeline.clip.labeller` labels batches of views (preprocessing, encoder, head).
* :mod:`pipeline.clip.simulated` is the ground-truth-plus-noise benchmark instrument.
* :mod:`pipeline.clip.options` parses the ``clip`` config section.
* :mod:`pipeline.clip.stage` runs the stage over a prepared store and writes a ``clip`` store.
* :mod:`pipeline.clip.cli` / :mod:`pipeline.clip.convert_cli` are the command-line entries.

Importing this package does not import torch (the CLI's ``--help`` stays fast).
"""
