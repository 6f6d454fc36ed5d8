"""The store contract shared by the pipeline and the trainer: declarations, paths, readers, writers.

* :mod:`pipeline.stores.spec`: what a declaration is (arrays with named dimensions, a store).
* :mod:`pipeline.stores.registry`: every store, once: name, writer stage, inputs, config keys,
  arrays; ``store_path``; what each trainer command reads.
* :mod:`pipeline.stores.io`: atomic :class:`StoreWriter`, checked :class:`StoreReader`.
* :mod:`pipeline.stores.integrity`: what the reader checks, and a damaged store moved aside.
* :mod:`pipeline.stores.sam_codecs`: the ``sam`` store's mask and feature codecs.

``train`` imports this package, never a pipeline stage package.
"""

from pipeline.stores.integrity import StoreDamaged
from pipeline.stores.io import StoreReader, StoreWriter
from pipeline.stores.registry import (
    IMAGE_ONLY_KINDS,
    LAYOUT_VERSION,
    PSEUDO_LABEL_STORES,
    STORES,
    check_vocabulary,
    pseudo_label_stores,
    required_trainer_stores,
    shard_of,
    stage2_needs_predictions,
    stage_options,
    store_path,
    store_spec,
    trainer_options,
    trainer_stores,
    vocabulary_record,
)
from pipeline.stores.spec import ArraySpec, StoreError, StoreSpec

__all__ = [
    "IMAGE_ONLY_KINDS", "LAYOUT_VERSION", "PSEUDO_LABEL_STORES", "pseudo_label_stores", "STORES", "ArraySpec", "StoreDamaged", "StoreError", "StoreReader", "StoreSpec",
    "StoreWriter", "check_vocabulary", "required_trainer_stores", "shard_of", "stage2_needs_predictions", "stage_options",
    "store_path", "store_spec", "trainer_options", "trainer_stores", "vocabulary_record",
]
