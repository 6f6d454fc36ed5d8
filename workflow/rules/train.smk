# Training (python -m train): stage 1 over every training shard, the stage-1 networks'
# predictions per shard, stage 2 from stage 1, and the evaluation of the final checkpoints.
# Which stores each command reads and which config keys it depends on come from the store
# registry (pipeline/stores/registry.py); see docs/method.md.
#
# The same rules serve two families of runs: the main run (<results>/train/...) and the ablation
# rows (<results>/ablation/<preset>/seed<k>/..., workflow/rules/ablation.smk), each with its own
# config. A stage's output is its run folder's final.pt: periodic checkpoints beside it are not
# outputs, so Snakemake never deletes them and a failed or killed run resumes where it stopped.

STAGE_SHELL = (
    "python -m train {params.command} --out {params.out:q} {params.stores} {params.init} --options {params.options:q} 2> {log:q}"
)
PREDICT_SHELL = (
    "python -m train predict --checkpoint {input.checkpoint:q} {params.stores} --out {output:q} --options {params.options:q} 2> {log:q}"
)
EVALUATE_SHELL = (
    "python -m train evaluate --checkpoint {input.checkpoint:q} --out {output:q} {params.stores}"
    " --options {params.options:q} 2> {log:q}"
)


for fam in TRAIN_FAMILIES:

    rule:
        name:
            f"{fam.prefix}train_stage1"
        input:
            unpack(lambda w, fam=fam: training_inputs("stage1", fam.cfg(w))),
        output:
            f"{fam.base}/train/stage1/final.pt",
        wildcard_constraints:
            **fam.constraints,
        params:
            command="stage1",
            out=lambda w, output: os.path.dirname(output[0]),
            stores=lambda w, input: store_flags(input, trainer_stores("stage1")),
            init="",
            options=lambda w, fam=fam: canonical_json(trainer_options("stage1", fam.cfg(w))),
        threads: lambda w, fam=fam: train_threads(fam.cfg(w))
        resources:
            gpu=1,
            mem_mb=16000,
        conda:
            CONDA_ENV
        log:
            f"{fam.base}/logs/train/stage1.log",
        benchmark:
            f"{fam.base}/benchmarks/train/stage1.tsv"
        shell:
            STAGE_SHELL

    rule:
        name:
            f"{fam.prefix}predict_shard"
        input:
            checkpoint=lambda w, fam=fam: f"{fam.stage1_owner(w)}/train/stage1/final.pt",
            **predict_inputs(),
        output:
            directory(f"{fam.base}/predictions/{{shard}}.zarr"),
        wildcard_constraints:
            **fam.constraints,
        params:
            stores=lambda w, input: store_flags(input, trainer_stores("predict")),
            options=lambda w, fam=fam: canonical_json(trainer_options("predict", fam.cfg(w))),
        threads: lambda w, fam=fam: train_threads(fam.cfg(w))
        resources:
            gpu=1,
            mem_mb=8000,
        conda:
            CONDA_ENV
        log:
            f"{fam.base}/logs/predict/{{shard}}.log",
        benchmark:
            f"{fam.base}/benchmarks/predict/{{shard}}.tsv"
        shell:
            PREDICT_SHELL

    rule:
        name:
            f"{fam.prefix}train_stage2"
        input:
            unpack(lambda w, fam=fam: training_inputs("stage2", fam.cfg(w))),
            init=lambda w, fam=fam: f"{fam.stage1_owner(w)}/train/stage1/final.pt",
            predictions=lambda w, fam=fam: (
                all_stores("predictions", train_splits(fam.cfg(w)), results=fam.owner(w))
                if stage2_needs_predictions(fam.cfg(w)["train"]) else []
            ),
        output:
            f"{fam.base}/train/stage2/final.pt",
        wildcard_constraints:
            **fam.constraints,
        params:
            command="stage2",
            out=lambda w, output: os.path.dirname(output[0]),
            stores=lambda w, input: store_flags(input, trainer_stores("stage2")),
            init=lambda w, input: f"--init {quoted([input.init])}",
            options=lambda w, fam=fam: canonical_json(trainer_options("stage2", fam.cfg(w))),
        threads: lambda w, fam=fam: train_threads(fam.cfg(w))
        resources:
            gpu=1,
            mem_mb=16000,
        conda:
            CONDA_ENV
        log:
            f"{fam.base}/logs/train/stage2.log",
        benchmark:
            f"{fam.base}/benchmarks/train/stage2.tsv"
        shell:
            STAGE_SHELL


rule evaluate_stage:
    """mIoU tables, confusion matrices, ScanNet benchmark files and PLYs of a stage's final networks."""
    input:
        checkpoint=f"{RESULTS}/train/{{stage}}/final.pt",
        **evaluation_inputs(config),
    output:
        directory(f"{RESULTS}/evaluate/{{stage}}"),
    wildcard_constraints:
        stage="stage1|stage2",
    params:
        stores=lambda w, input: store_flags(input, trainer_stores("evaluate")),
        options=canonical_json(trainer_options("evaluate", config)),
    threads: train_threads(config)
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
        EVALUATE_SHELL
