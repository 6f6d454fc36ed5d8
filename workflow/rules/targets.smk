# Targets users type. None has work of its own; `--forcerun <stage>_shard` forces a stage's
# per-shard jobs among the requested ones. `rule all` (in the Snakefile) collects ALL_TARGETS.

PREPARE_TARGETS = [*all_stores("prepared"), f"{RESULTS}/manifest.parquet"]
SPLIT_REPORTS = [f"{REPORT_DIR}/{split}.{ext}" for split in sorted({parse_shard(s)[0] for s in SHARDS}) for ext in ("json", "md", "html", "png")]
PSEUDO_LABEL_TARGETS = [*(path for name in PSEUDO_LABEL_STORES for path in all_stores(name)), *SPLIT_REPORTS]
# train_stage1 and train_stage2 are single jobs (workflow/rules/train.smk): their rule names are the targets.
TRAIN_STAGE1_TARGETS = [f"{RESULTS}/train/stage1/final.pt"]
TRAIN_STAGE2_TARGETS = [f"{RESULTS}/train/stage2/final.pt"]
STAGE_REPORTS = [f"{RESULTS}/reports/{stage}/{name}" for stage in ("stage1", "stage2") for name in STAGE_REPORT_FIGURES]
EVALUATE_TARGETS = [f"{RESULTS}/evaluate/stage1", f"{RESULTS}/evaluate/stage2", *STAGE_REPORTS]
ALL_TARGETS = [*PREPARE_TARGETS, *PSEUDO_LABEL_TARGETS, *TRAIN_STAGE1_TARGETS, *TRAIN_STAGE2_TARGETS, *EVALUATE_TARGETS]


localrules:
    all,
    evaluate,
    prepare,
    manifest,
    clip,
    sam,
    refine,
    project,
    pseudo_label_report,
    pseudo_labels,
    ablation,
    ablation_table,


rule prepare:
    """Every shard's prepared store and the merged manifest."""
    input:
        PREPARE_TARGETS,


rule clip:
    """Every shard's CLIP store."""
    input:
        all_stores("clip"),


rule sam:
    """Every shard's SAM store."""
    input:
        all_stores("sam"),


rule refine:
    """Every shard's refine store (CLIP labels voted inside SAM masks)."""
    input:
        all_stores("refined"),


rule project:
    """Every shard's points store (point labels and pixel<->point pairs)."""
    input:
        all_stores("points"),


rule pseudo_label_report:
    """The quality report of every split (JSON, Markdown, PNG)."""
    input:
        SPLIT_REPORTS,


rule pseudo_labels:
    """Everything the trainer needs (clip, sam, refined and points stores of every shard) and the reports."""
    input:
        PSEUDO_LABEL_TARGETS,


rule evaluate:
    """Evaluation of both stages' final checkpoints on the evaluation splits, and their reports."""
    input:
        EVALUATE_TARGETS,
