# Training (python -m train): stage 1 over every training shard, the stage-1 networks'
# predictions per shard, stage 2 from stage 1, and the evaluation of both stages' final
# checkpoints. Stores are read only through the paths below; see docs/method.md.
#
# A stage's output is its run folder's final.pt: periodic checkpoints beside it are not
# outputs, so Snakemake never deletes them and a failed or killed run resumes where it stopped.

TRAIN = config["train"]
TRAIN_SPLITS = ["train", "val"] if TRAIN["transductive"] else ["train"]
EVAL_SPLITS = config["evaluate"]["splits"]
STAGE2_NEEDS_PREDICTIONS = (
    TRAIN["stage2"]["enabled"]
    and TRAIN["stage2"]["predictions"] == "frozen"
    and any(TRAIN["stage2"]["sources"].get(s, 0) > 0 for s in ("self", "cross"))
)


# The sections each command depends on, as JSON params (a change reruns the command).
TRAIN_VOCAB = {"benchmark": config["vocabulary"]["benchmark"]}
STAGE1_OPTIONS = canonical_json({"train": {k: v for k, v in TRAIN.items() if k not in ("stage2", "predict")}, "vocabulary": TRAIN_VOCAB})
PREDICT_OPTIONS = canonical_json({"train": {k: v for k, v in TRAIN.items() if k not in ("stage1", "stage2")}, "vocabulary": TRAIN_VOCAB})
STAGE2_OPTIONS = canonical_json({"train": {k: v for k, v in TRAIN.items() if k != "predict"}, "vocabulary": TRAIN_VOCAB})
EVALUATE_OPTIONS = canonical_json(
    {"evaluate": config["evaluate"], "train": {"device": TRAIN["device"], "threads": TRAIN["threads"]}, "vocabulary": TRAIN_VOCAB}
)
TRAINING_STORES = {role: all_stores(role, TRAIN_SPLITS) for role in ("prepared", "refined", "points", "sam", "clip")}


rule train_stage1:
    """Stage 1: both networks on the SAM-refined pseudo-labels of every training shard."""
    input:
        **TRAINING_STORES,
    output:
        f"{RESULTS}/train/stage1/final.pt",
    params:
        out=lambda wildcards, output: os.path.dirname(output[0]),
        options=STAGE1_OPTIONS,
    threads: 2
    resources:
        gpu=1,
        mem_mb=16000,
    conda:
        CONDA_ENV
    log:
        f"{RESULTS}/logs/train/stage1.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/stage1.tsv"
    shell:
        "python -m train stage1 --out {params.out:q} --prepared {input.prepared:q} --refined {input.refined:q}"
        " --points {input.points:q} --sam {input.sam:q} --clip {input.clip:q} --options {params.options:q} 2> {log:q}"


rule predict_shard:
    """The stage-1 networks' SAM-refined predictions of one shard (stage 2's frozen targets)."""
    input:
        checkpoint=f"{RESULTS}/train/stage1/final.pt",
        prepared=stage_store("prepared"),
        sam=stage_store("sam"),
        points=stage_store("points"),
    output:
        directory(stage_store("predictions")),
    params:
        options=PREDICT_OPTIONS,
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
    conda:
        CONDA_ENV
    log:
        f"{RESULTS}/logs/predict/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/predict/{{shard}}.tsv"
    shell:
        "python -m train predict --checkpoint {input.checkpoint:q} --prepared {input.prepared:q} --sam {input.sam:q}"
        " --points {input.points:q} --out {output:q} --options {params.options:q} 2> {log:q}"


rule train_stage2:
    """Stage 2 from stage 1: adds self- and cross-training on the networks' refined predictions."""
    input:
        **TRAINING_STORES,
        init=f"{RESULTS}/train/stage1/final.pt",
        predictions=all_stores("predictions", TRAIN_SPLITS) if STAGE2_NEEDS_PREDICTIONS else [],
    output:
        f"{RESULTS}/train/stage2/final.pt",
    params:
        out=lambda wildcards, output: os.path.dirname(output[0]),
        options=STAGE2_OPTIONS,
        predictions=lambda wildcards, input: f"--predictions {quoted(input.predictions)}" if input.predictions else "",
    threads: 2
    resources:
        gpu=1,
        mem_mb=16000,
    conda:
        CONDA_ENV
    log:
        f"{RESULTS}/logs/train/stage2.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/stage2.tsv"
    shell:
        "python -m train stage2 --out {params.out:q} --init {input.init:q} --prepared {input.prepared:q}"
        " --refined {input.refined:q} --points {input.points:q} --sam {input.sam:q} --clip {input.clip:q}"
        " {params.predictions} --options {params.options:q} 2> {log:q}"


rule evaluate_stage:
    """mIoU tables, confusion matrices, ScanNet benchmark files and PLYs of a stage's final networks."""
    input:
        checkpoint=f"{RESULTS}/train/{{stage}}/final.pt",
        prepared=all_stores("prepared", EVAL_SPLITS),
        refined=all_stores("refined", EVAL_SPLITS),
        points=all_stores("points", EVAL_SPLITS),
        sam=all_stores("sam", EVAL_SPLITS),
    output:
        directory(f"{RESULTS}/evaluate/{{stage}}"),
    wildcard_constraints:
        stage="stage1|stage2",
    params:
        options=EVALUATE_OPTIONS,
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
    conda:
        CONDA_ENV
    log:
        f"{RESULTS}/logs/evaluate/{{stage}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/{{stage}}.tsv"
    shell:
        "python -m train evaluate --checkpoint {input.checkpoint:q} --out {output:q} --prepared {input.prepared:q}"
        " --refined {input.refined:q} --points {input.points:q} --sam {input.sam:q} --options {params.options:q} 2> {log:q}"
