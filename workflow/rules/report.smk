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
        markdown=report(
            f"{REPORT_DIR}/{{split}}.md",
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
        " --markdown {output.markdown:q} --png {output.png:q} {input:q} 2> {log:q}"


# The run's closing lines: the evaluations it wrote (headline mIoU, where they are, and whether it
# was a plumbing run). Dry runs do not call it.
onsuccess:
    from pipeline.report.closing import closing_message

    _closing = closing_message(RESULTS, RUN_STARTED)
    if _closing:
        print("\n" + _closing)
