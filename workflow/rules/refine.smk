# refine: CLIP labels max-voted inside SAM masks, one store per shard (docs/method.md).


rule refine_shard:
    """Refine one shard's CLIP labels with its SAM masks, in both nesting orders (atomic store)."""
    input:
        **store_inputs("refined"),
    output:
        directory(store("refined")),
    params:
        options=store_options("refined"),
    conda:
        CONDA_ENV
    resources:
        mem_mb=4000,
    log:
        f"{RESULTS}/logs/refine/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/refine/{{shard}}.tsv"
    shell:
        "python -m pipeline refine --clip {input.clip:q} --sam {input.sam:q} --out {output:q}"
        " --options {params.options:q} 2> {log:q}"
