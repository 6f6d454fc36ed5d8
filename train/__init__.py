"""Online half of the CNS tool: the 2D/3D co-trainer, reading only the Zarr stores.

`train` may import `pipeline` contracts (layout, vocab, camera) but never a foundation model.
"""

__version__ = "0.1.0"
