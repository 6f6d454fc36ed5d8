# prepare: dataset files -> one prepared Zarr store per shard, plus its Parquet manifest.


rule prepare_shard:
    """Read one shard's scenes into a prepared store (atomic: it appears only when complete)."""
    input:
        prepare_inputs,
    output:
        directory(store("prepared")),
    params:
        split=shard_split,
        samples=lambda wc: quoted(shard_samples(wc)),
        options=store_options("prepared"),
    threads: 2
    conda:
        CONDA_ENV
    resources:
        mem_mb=8000,
    log:
        f"{RESULTS}/logs/prepare/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/prepare/{{shard}}.tsv"
    shell:
        "python -m pipeline prepare --out {output:q} --shard {wildcards.shard:q} --split {params.split:q}"
        " --samples {params.samples} --options {params.options:q} --threads {threads} 2> {log:q}"


rule manifest_shard:
    """Parquet manifest of one prepared store."""
    input:
        store("prepared"),
    output:
        f"{RESULTS}/manifests/{{shard}}.parquet",
    conda:
        CONDA_ENV
    log:
        f"{RESULTS}/logs/manifest/{{shard}}.log",
    shell:
        "python -m pipeline manifest --store {input:q} --out {output:q} 2> {log:q}"


rule manifest:
    """All shard manifests merged into one file, for users (no stage reads it)."""
    input:
        [f"{RESULTS}/manifests/{s}.parquet" for s in SHARDS],
    output:
        f"{RESULTS}/manifest.parquet",
    conda:
        CONDA_ENV
    log:
        f"{RESULTS}/logs/manifest/merged.log",
    shell:
        "python -m pipeline merge-manifests --out {output:q} {input:q} 2> {log:q}"
