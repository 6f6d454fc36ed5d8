# Targets users type. None has work of its own; `--forcerun <stage>` forces the stage's
# per-shard jobs (see common.smk). `rule all` (in the Snakefile) collects ALL_TARGETS.

PREPARE_TARGETS = [*all_stores("prepared"), f"{RESULTS}/manifest.parquet"]
ALL_TARGETS = [*PREPARE_TARGETS]


localrules:
    all,
    prepare,
    manifest,
    demo_meta,


rule prepare:
    """Every shard's prepared store and the merged manifest."""
    input:
        PREPARE_TARGETS,
