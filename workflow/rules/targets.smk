# Targets users type. None has work of its own; `--forcerun <stage>` forces the stage's
# per-shard jobs (see common.smk). `rule all` (in the Snakefile) collects ALL_TARGETS.

PREPARE_TARGETS = [*all_stores("prepared"), f"{RESULTS}/manifest.parquet"]
# train_stage1 and train_stage2 are single jobs (workflow/rules/train.smk): their rule names are the targets.
TRAIN_STAGE1_TARGETS = [f"{RESULTS}/train/stage1/final.pt"]
TRAIN_STAGE2_TARGETS = [f"{RESULTS}/train/stage2/final.pt"]
EVALUATE_TARGETS = [f"{RESULTS}/evaluate/stage1", f"{RESULTS}/evaluate/stage2"]
# Training needs the pseudo-label stores; `all` includes it once rules producing them exist
# (transitional: while the pseudo-label rules are missing, `all` stops at prepare).
PSEUDO_LABEL_STORES_MADE = all(
    any(str(o).startswith(f"{RESULTS}/{stage}/") for r in workflow.rules for o in r.output)
    for stage in ("clip", "sam", "refined", "points")
)
ALL_TARGETS = [*PREPARE_TARGETS]
if PSEUDO_LABEL_STORES_MADE:
    ALL_TARGETS += [*TRAIN_STAGE1_TARGETS, *TRAIN_STAGE2_TARGETS, *EVALUATE_TARGETS]


localrules:
    all,
    prepare,
    evaluate,
    manifest,
    demo_meta,


rule prepare:
    """Every shard's prepared store and the merged manifest."""
    input:
        PREPARE_TARGETS,


rule evaluate:
    """Evaluation of both stages' final checkpoints on the evaluation splits."""
    input:
        EVALUATE_TARGETS,
