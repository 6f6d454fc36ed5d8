"""Offline half of the CNS tool: datasets, foundation-model stages and Zarr stores.

`pipeline` never imports `train`. Each stage is an importable function with a CLI
(`python -m pipeline <command>`); the Snakemake rules in `workflow/` call those CLIs.
"""

__version__ = "0.1.0"
