# sam: prepared store -> SAM masks, segment-id maps and feature maps, one store per shard.
# Its options are the `sam` section: a vocabulary change never reruns it.


rule sam_shard:
    """Run SAM (or its simulated backend) on every view of one shard (atomic store)."""
    input:
        **store_inputs("sam"),
        model=sam_checkpoint_inputs,
    output:
        directory(store("sam")),
    params:
        options=store_options("sam"),
    threads: 2
    conda:
        CONDA_ENV
    resources:
        mem_mb=16000,
        gpu=0 if config["sam"]["backend"] == "simulated" else 1,
    log:
        f"{RESULTS}/logs/sam/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/sam/{{shard}}.tsv"
    shell:
        "python -m pipeline sam --prepared {input.prepared:q} --out {output:q} --options {params.options:q}"
        " --shard {wildcards.shard:q} --threads {threads} 2> {log:q}"
