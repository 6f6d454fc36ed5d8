# Targets users type. Each has no work of its own; `--forcerun <stage>` forces the stage's
# per-shard jobs (see common.smk).

localrules:
    all,
    prepare,
    manifest,
    demo_meta,


rule all:
    """Everything the configuration asks for."""
    default_target: True
    input:
        all_stores("prepared"),
        f"{RESULTS}/manifest.parquet",


rule prepare:
    """Every shard's prepared store and the merged manifest."""
    input:
        all_stores("prepared"),
        f"{RESULTS}/manifest.parquet",
