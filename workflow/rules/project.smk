# project: points <-> pixels of every view; per-point majority labels and the pairs (docs/method.md).


rule project_shard:
    """Project one shard's points into its views; majority of refined and raw CLIP labels (atomic store)."""
    input:
        **store_inputs("points"),
    output:
        directory(store("points")),
    params:
        options=store_options("points"),
    threads: 2
    conda:
        CONDA_ENV
    resources:
        mem_mb=4000,
        gpu=1 if config["project"]["device"].startswith("cuda") else 0,
    log:
        f"{RESULTS}/logs/project/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/project/{{shard}}.tsv"
    shell:
        "python -m pipeline project --prepared {input.prepared:q} --clip {input.clip:q} --refined {input.refined:q}"
        " --out {output:q} --options {params.options:q} --threads {threads} 2> {log:q}"
