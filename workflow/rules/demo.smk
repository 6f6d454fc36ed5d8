# The built-in demo dataset: generated in ScanNet export format, one job per scene.

if DEMO["enabled"]:

    rule demo_scene:
        """Generate one procedural scene in the ScanNet export format (deterministic by seed)."""
        output:
            directory(f"{SCANS}/{{scene}}"),
        params:
            root=lambda wildcards, output: str(Path(output[0]).parent.parent),
            seed=DEMO["seed"],
            views=DEMO["views"],
            color_size=quoted(DEMO["color_size"]),
            depth_size=quoted(DEMO["depth_size"]),
            spacing=DEMO["vertex_spacing"],
            defects="--defects" if DEMO["defects"] else "",
        conda:
            CONDA_ENV
        log:
            f"{RESULTS}/logs/demo_scene/{{scene}}.log",
        shell:
            "python -m pipeline demo-scene --out {params.root:q} --scene {wildcards.scene:q}"
            " --seed {params.seed} --views {params.views} --color-size {params.color_size}"
            " --depth-size {params.depth_size} --vertex-spacing {params.spacing} {params.defects} 2> {log:q}"

    rule demo_meta:
        """Write the demo's label map and split lists."""
        output:
            label_map=f"{ROOT}/{DATASET['label_map']}",
            splits=[f"{ROOT}/{f}" for f in DATASET["split_files"].values()],
        params:
            root=lambda wildcards, output: str(Path(output.label_map).parent),
            train=quoted(SAMPLES.get("train", [])),
            val=quoted(SAMPLES.get("val", [])),
        conda:
            CONDA_ENV
        log:
            f"{RESULTS}/logs/demo_meta.log",
        shell:
            "python -m pipeline demo-meta --out {params.root:q} --train {params.train} --val {params.val} 2> {log:q}"
