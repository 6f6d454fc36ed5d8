# The built-in demo datasets: procedural indoor rooms in ScanNet's export format (one job per
# scene), or procedural streets in nuScenes' format (one job: the tables span every scene).

if DEMO["enabled"] and NUSCENES:

    rule demo_nuscenes:
        """Generate the nuScenes-format demo (tables, lidar, 6 cameras, lidarseg; deterministic by seed)."""
        output:
            directory(ROOT),
        params:
            scenes=DEMO["num_scenes"],
            val=DEMO["num_val"],
            seed=DEMO["seed"],
            samples=DEMO["samples_per_scene"],
            camera_size=quoted(DEMO["color_size"]),
            beams=DEMO["lidar_beams"],
            azimuths=DEMO["lidar_azimuths"],
            defects="--defects" if DEMO["defects"] else "",
        threads: 2
        conda:
            CONDA_ENV
        log:
            f"{RESULTS}/logs/demo_nuscenes.log",
        shell:
            "python -m pipeline demo-nuscenes --out {output:q} --scenes {params.scenes} --val {params.val}"
            " --seed {params.seed} --samples-per-scene {params.samples} --camera-size {params.camera_size}"
            " --lidar-beams {params.beams} --lidar-azimuths {params.azimuths} --workers {threads} {params.defects} 2> {log:q}"


if DEMO["enabled"] and NUIMAGES:

    rule demo_nuimages:
        """Generate the nuImages-format demo (images, ten tables per split, RLE masks; deterministic by seed)."""
        output:
            directory(ROOT),
        params:
            logs=DEMO["num_scenes"],
            val=DEMO["num_val"],
            seed=DEMO["seed"],
            samples=DEMO["samples_per_scene"],
            camera_size=quoted(DEMO["color_size"]),
            defects="--defects" if DEMO["defects"] else "",
        conda:
            CONDA_ENV
        log:
            f"{RESULTS}/logs/demo_nuimages.log",
        shell:
            "python -m pipeline demo-nuimages --out {output:q} --logs {params.logs} --val {params.val}"
            " --seed {params.seed} --samples-per-log {params.samples} --camera-size {params.camera_size}"
            " {params.defects} 2> {log:q}"


if DEMO["enabled"] and not NUSCENES and not NUIMAGES:

    # Writes two small text files: on a cluster it runs on the submit host, not as a SLURM job.
    localrules:
        demo_meta,

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
