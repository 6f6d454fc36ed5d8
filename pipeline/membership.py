"""Which samples a config processes, per split: decided when the DAG is built (no checkpoint rule).

The built-in demos know their sample ids before they are generated (ScanNet demo: scene names;
nuScenes demo: sample tokens derived from the seed and scene names); real datasets are listed by
their adapter from the split files or tables. ``dataset.scenes`` keeps only the given scenes.
"""

from __future__ import annotations

from typing import Any, Mapping


def _scannet_demo(demo: Mapping[str, Any]) -> tuple[dict[str, list[str]], dict[str, str]]:
    from pipeline.demo.spec import scene_names

    train, val = scene_names(demo["num_scenes"], demo["num_val"])
    return {"train": train, "val": val}, {s: s for s in train + val}


def _tokens_by_split(splits: Mapping[str, list[str]], samples: int, token) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Split → sample tokens (``token(group, k)`` for k < ``samples`` of each scene or log, in
    order) and token → its scene or log."""
    by_split: dict[str, list[str]] = {}
    group_of: dict[str, str] = {}
    for split, groups in splits.items():
        by_split[split] = []
        for group in groups:
            for k in range(samples):
                by_split[split].append(token(group, k))
                group_of[by_split[split][-1]] = group
    return by_split, group_of


def _nuscenes_demo(demo: Mapping[str, Any]) -> tuple[dict[str, list[str]], dict[str, str]]:
    from pipeline.demo_nuscenes.spec import sample_token, scene_names

    train, val = scene_names(demo["num_scenes"], demo["num_val"])
    return _tokens_by_split({"mini_train": train, "mini_val": val}, demo["samples_per_scene"],
                            lambda scene, k: sample_token(demo["seed"], scene, k))


def _nuimages_demo(demo: Mapping[str, Any]) -> tuple[dict[str, list[str]], dict[str, str]]:
    from pipeline.demo_nuimages.spec import log_names, sample_token

    train, val = log_names(demo["num_scenes"], demo["num_val"])
    return _tokens_by_split({"train": train, "val": val}, demo["samples_per_scene"],
                            lambda log, k: sample_token(demo["seed"], log, k))


DEMOS = {"nuscenes": _nuscenes_demo, "nuimages": _nuimages_demo}
"""Dataset kind → its demo's membership (ScanNet's otherwise)."""


def split_samples(dataset: Mapping[str, Any]) -> dict[str, list[str]]:
    """``{split: [sample ids]}`` of the validated ``dataset`` section, for its ``splits`` only."""
    demo = dataset["demo"]
    if demo["enabled"]:
        by_split, scene_of = DEMOS.get(dataset["kind"], _scannet_demo)(demo)
    else:
        from pipeline.datasets import make_adapter

        adapter = make_adapter(dataset)
        by_split = {split: adapter.list_samples(split) for split in dataset["splits"]}
        scene_of = None
    by_split = {s: ids for s, ids in by_split.items() if s in dataset["splits"]}
    if dataset["scenes"] is not None:
        keep = set(dataset["scenes"])
        if scene_of is None:
            scene_of = {i: adapter.sample_scene(i) for ids in by_split.values() for i in ids}
        by_split = {s: [i for i in ids if scene_of[i] in keep] for s, ids in by_split.items()}
    return by_split
