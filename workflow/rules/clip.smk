# clip: prepared store -> dense CLIP pseudo-labels (MaskCLIP or the simulated backend), one store per shard.
# Its options are the `clip` and `vocabulary` sections: changing either reruns clip and what follows.


rule clip_shard:
    """Label every view of one shard with CLIP (atomic store: it appears only when complete)."""
    input:
        stage_store("prepared"),
    output:
        directory(stage_store("clip")),
    params:
        options=canonical_json({"clip": config["clip"], "vocabulary": config["vocabulary"]}),
    threads: 2
    conda:
        CONDA_ENV
    resources:
        mem_mb=8000,
        gpu=0 if config["clip"]["backend"] == "simulated" else 1,
    log:
        f"{RESULTS}/logs/clip/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/clip/{{shard}}.tsv"
    shell:
        "python -m pipeline clip --prepared {input:q} --out {output:q} --options {params.options:q} 2> {log:q}"
