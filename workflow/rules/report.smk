# The pseudo-label quality report: per-shard confusion matrices and overlays, merged per split
# (one confusion matrix per split). Outputs flagged report() appear in `snakemake --report`.

REPORT_DIR = f"{RESULTS}/reports/pseudo_labels"

# Merging a split's shard matrices takes a second: on a cluster it runs on the submit host.
localrules:
    report_split,


rule report_shard:
    """One shard's confusion matrices (raw/refined pixels and points), coverage and overlays."""
    input:
        **{name: store(name) for name in ("prepared", *PSEUDO_LABEL_STORES)},
    output:
        json=f"{REPORT_DIR}/shards/{{shard}}.json",
        overlays=report(
            f"{REPORT_DIR}/shards/{{shard}}.overlays.png",
            caption="../report/overlays.rst",
            category="Pseudo-label quality",
            subcategory="Overlays",
            labels={"shard": "{shard}"},
        ),
    params:
        benchmark=config["vocabulary"]["benchmark"],
        overlays=config["report"]["overlays"],
        points=lambda wildcards, input: "" if IMAGE_ONLY else f"--points {shlex.quote(input.points)}",
    conda:
        CONDA_ENV
    log:
        f"{RESULTS}/logs/report/{{shard}}.log",
    shell:
        "python -m pipeline report shard --prepared {input.prepared:q} --clip {input.clip:q} --sam {input.sam:q}"
        " --refined {input.refined:q} {params.points} --benchmark {params.benchmark:q}"
        " --out {output.json:q} --overlays-out {output.overlays:q} --overlays {params.overlays} 2> {log:q}"


rule report_split:
    """One split's report: the shards' matrices summed, IoU per stage and class, coverage."""
    wildcard_constraints:
        split=r"[A-Za-z0-9_]+",
    input:
        lambda wildcards: [f"{REPORT_DIR}/shards/{s}.json" for s in SHARDS if parse_shard(s)[0] == wildcards.split],
    output:
        json=f"{REPORT_DIR}/{{split}}.json",
        markdown=f"{REPORT_DIR}/{{split}}.md",
        html=report(
            f"{REPORT_DIR}/{{split}}.html",
            caption="../report/pseudo_labels.rst",
            category="Pseudo-label quality",
            subcategory="Tables",
            labels={"split": "{split}", "figure": "tables"},
        ),
        png=report(
            f"{REPORT_DIR}/{{split}}.png",
            caption="../report/pseudo_labels.rst",
            category="Pseudo-label quality",
            subcategory="mIoU per stage",
            labels={"split": "{split}", "figure": "bars"},
        ),
    conda:
        CONDA_ENV
    log:
        f"{RESULTS}/logs/report/{{split}}.log",
    shell:
        "python -m pipeline report merge --split {wildcards.split:q} --json {output.json:q}"
        " --markdown {output.markdown:q} --html {output.html:q} --png {output.png:q} {input:q} 2> {log:q}"


# The report of each trained stage: its evaluation as HTML, training curves, confusion heatmaps
# and the evaluation's pictures (2D overlays; 3D from above where the dataset has points).
STAGE_REPORT_FIGURES = {
    "metrics.html": ("Evaluation", "Tables", "../report/stage_metrics.rst"),
    "curves.png": ("Training", "Curves", "../report/stage_curves.rst"),
    "confusion.png": ("Evaluation", "Confusion matrices", "../report/stage_confusion.rst"),
    **({"views.png": ("Evaluation", "2D overlays", "../report/stage_views.rst")} if config["evaluate"]["figure_views"] else {}),
    **({"points.png": ("Evaluation", "3D from above", "../report/stage_points.rst")}
       if config["evaluate"]["figure_scenes"] and not IMAGE_ONLY else {}),
}


localrules:
    report_stage,


rule report_stage:
    """A trained stage's report from its evaluation and training log (seconds; runs on the submit host)."""
    input:
        evaluation=f"{RESULTS}/evaluate/{{stage}}",
        checkpoint=f"{RESULTS}/train/{{stage}}/final.pt",
    output:
        **{
            name.split(".")[0]: report(
                f"{RESULTS}/reports/{{stage}}/{name}", caption=caption, category=category, subcategory=sub,
                labels={"stage": "{stage}", "figure": sub},
            )
            for name, (category, sub, caption) in STAGE_REPORT_FIGURES.items()
        },
    wildcard_constraints:
        stage="stage1|stage2",
    params:
        log=lambda w: f"{RESULTS}/train/{w.stage}/log.jsonl",
        pictures=lambda w, output: " ".join(
            f"--{key} {shlex.quote(getattr(output, key))}" for key in ("views", "points") if hasattr(output, key)
        ),
    conda:
        CONDA_ENV
    log:
        f"{RESULTS}/logs/report/{{stage}}.log",
    shell:
        "python -m pipeline report run --evaluation {input.evaluation:q} --log {params.log:q} --html {output.metrics:q}"
        " --curves {output.curves:q} --confusion {output.confusion:q} {params.pictures} 2> {log:q}"


# The run's closing lines: the evaluations it wrote (headline mIoU, where they are, and whether it
# was a plumbing run). Dry runs do not call it.
onsuccess:
    from pipeline.report.closing import closing_message

    _closing = closing_message(RESULTS, RUN_STARTED)
    if _closing:
        print(f"\n{_closing}")
