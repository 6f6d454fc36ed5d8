# The ablation table (target `ablation`): each preset of `ablation.presets` is a row applied on top
# of this config, run for every seed of `ablation.seeds` through the training rules of train.smk
# (family "ablation_"), under <results>/ablation/<preset>/seed<k>/. A row whose stage-1 settings
# equal an earlier row's uses that row's stage 1, and its predictions too when the predict settings
# are also equal (same seed; pipeline/runs.py).
# Snakemake's rerun triggers apply to every run: change a preset and only its rows rerun.

ABLATION_EVALS = {(p, k): f"{ABLATION_DIR}/{p}/seed{k}/evaluate/final" for p in ABLATION_RUNS.rows for k in ABLATION_RUNS.seeds}


rule ablation_evaluate:
    """Evaluate one row's final checkpoint for one seed (no exports)."""
    input:
        checkpoint=ablation_final,
        **evaluation_inputs(config),
    output:
        directory(f"{ABLATION_BASE}/evaluate/final"),
    wildcard_constraints:
        **ABLATION_CONSTRAINTS,
    params:
        stores=lambda w, input: store_flags(input, trainer_stores("evaluate")),
        options=lambda w: canonical_json(trainer_options("evaluate", ablation_cfg(w))),
    threads: lambda w: train_threads(ablation_cfg(w))
    resources:
        gpu=1,
        mem_mb=8000,
    conda:
        CONDA_ENV
    log:
        f"{ABLATION_BASE}/logs/evaluate/final.log",
    shell:
        EVALUATE_SHELL


rule ablation_table:
    """Mean, spread and range over seeds of every row's final 2D and 3D mIoU (table.md, table.json)."""
    input:
        list(ABLATION_EVALS.values()),
    output:
        markdown=f"{ABLATION_DIR}/table.md",
        json=f"{ABLATION_DIR}/table.json",
    params:
        runs=quoted(f"{p}:{k}:{path}" for (p, k), path in ABLATION_EVALS.items()),
        presets=quoted(f"{p}:{path}" for p, path in ABLATION_RUNS.rows.items()),
        comparisons=canonical_json(config["ablation"]["comparisons"]),
    conda:
        CONDA_ENV
    log:
        f"{ABLATION_DIR}/logs/table.log",
    shell:
        "python -m train ablation-table --runs {params.runs} --presets {params.presets}"
        " --comparisons {params.comparisons:q} --markdown {output.markdown:q} --json {output.json:q} 2> {log:q}"


rule ablation:
    """The ablation table: every row of ablation.presets x every seed of ablation.seeds."""
    input:
        rules.ablation_table.output,
