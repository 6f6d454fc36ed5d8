# clip: prepared store -> dense CLIP pseudo-labels (MaskCLIP or the simulated backend), one store per shard.
# Its options are the `clip` and `vocabulary` sections: changing either reruns clip and what follows.
# With a real model, the prompt vocabulary is encoded once (clip_text) and shared by every shard.


rule clip_text:
    """Encode the prompt vocabulary once: the text classifier every clip_shard job loads."""
    input:
        clip_checkpoint_inputs,
    output:
        CLIP_TEXT,
    params:
        options=store_options("clip"),
    threads: 2
    conda:
        CONDA_ENV
    resources:
        mem_mb=8000,
        gpu=1,
    log:
        f"{RESULTS}/logs/clip/text.log",
    shell:
        "python -m pipeline clip-text --out {output:q} --options {params.options:q} 2> {log:q}"


rule clip_shard:
    """Label every view of one shard with CLIP (atomic store: it appears only when complete)."""
    input:
        **store_inputs("clip"),
        model=clip_model_inputs,
    output:
        directory(store("clip")),
    params:
        options=store_options("clip"),
        text=lambda wildcards, input: f"--text {shlex.quote(input.model[-1])}" if CLIP_REAL else "",
    threads: 2
    conda:
        CONDA_ENV
    resources:
        mem_mb=8000,
        gpu=1 if CLIP_REAL else 0,
    log:
        f"{RESULTS}/logs/clip/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/clip/{{shard}}.tsv"
    shell:
        "python -m pipeline clip --prepared {input.prepared:q} --out {output:q} --options {params.options:q}"
        " {params.text} 2> {log:q}"
