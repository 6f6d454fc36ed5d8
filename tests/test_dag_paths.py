"""Paths a config names fail when the DAG is built, with the key and the path in one line.

Snakemake alone would report a missing checkpoint only as a missing input of some job, and after
an earlier run (a demo run, then an overlay with a typo'd checkpoint) not at all: it keeps the old
outputs and plans nothing. `pipeline.config.check_paths` runs in `common.smk` for every target.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from pipeline.config import ConfigError, check_paths, validate
from tests.workflow_helpers import snakemake_command, snakemake_env, tiny_demo_config


def _dry_run(workdir, config: dict, target: str = "pseudo_labels") -> str:
    proc = subprocess.run(snakemake_command(workdir, config, "-n", target), capture_output=True, text=True,
                          env=snakemake_env(), timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert "Nothing to be done" not in out and not re.search(r"(?m)^rule \w+:", out)  # no job planned
    return out


def test_typo_in_clip_checkpoint_fails_the_dry_run(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "clip.safetensors").write_bytes(b"x")  # the right name exists, the typo not
    config = tiny_demo_config(3, 2, clip={"backend": "open_clip", "checkpoint": "checkpoints/nope.safetensors"})
    out = _dry_run(tmp_path, config)
    assert f"config key clip.checkpoint: checkpoints/nope.safetensors not found (relative to {tmp_path};" in out, out[-3000:]


def test_missing_dataset_root_fails_the_dry_run(tmp_path):
    config = tiny_demo_config(3, 2)
    config["dataset"].update(root="scans_typo", demo={"enabled": False})
    out = _dry_run(tmp_path, config, "prepare")
    assert "config key dataset.root: scans_typo not found" in out, out[-3000:]
    assert "split file" not in out  # the root is named, not the first file looked for below it


def test_missing_ablation_preset_fails_the_dry_run(tmp_path):
    config = tiny_demo_config(3, 2, ablation={"presets": ["workflow/configs/ablation/a1_refined_only.yaml", "presets/nope.yaml"]})
    out = _dry_run(tmp_path, config, "pseudo_labels")  # any target: the presets are checked when the DAG is built
    assert "config key ablation.presets: presets/nope.yaml not found" in out, out[-3000:]


def test_check_paths_cases(tmp_path):
    """In-process: each key named; random_init, simulated backends and the demo need no files."""
    def fails(match: str, **sections) -> None:
        with pytest.raises(ConfigError, match=re.escape(match)):
            check_paths(validate(sections), tmp_path)

    demo = {"demo": {"enabled": True}}
    check_paths(validate({"dataset": demo, "clip": {"backend": "simulated"}, "sam": {"backend": "simulated"}}), tmp_path)
    check_paths(validate({"dataset": demo, "clip": {"random_init": True}, "sam": {"random_init": True}}), tmp_path)
    fails("config key clip.checkpoint: not set (clip.backend open_clip", dataset=demo)
    fails("config key sam.checkpoint: weights/sam.pth not found", dataset=demo, clip={"backend": "simulated"},
          sam={"checkpoint": "weights/sam.pth"})
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "sam.pth").write_bytes(b"x")
    check_paths(validate({"dataset": demo, "clip": {"backend": "simulated"}, "sam": {"checkpoint": "weights/sam.pth"}}), tmp_path)
    real = {"clip": {"backend": "simulated"}, "sam": {"backend": "simulated"}}
    (tmp_path / "scannet").mkdir()
    fails("config key dataset.label_map: scannet/scannetv2-labels.combined.tsv not found", dataset={"root": "scannet"}, **real)
    (tmp_path / "nusc").mkdir()
    fails("config key dataset.nuscenes.version: nusc/v1.0-mini not found",
          dataset={"root": "nusc", "kind": "nuscenes", "nuscenes": {"version": "v1.0-mini"}}, **real)
    (tmp_path / "nusc" / "v1.0-mini").mkdir()
    check_paths(validate({"dataset": {"root": "nusc", "kind": "nuscenes", "nuscenes": {"version": "v1.0-mini"}}, **real}), tmp_path)


def test_nested_config_on_the_command_line_names_the_overlay_way():
    """Snakemake's --config gives nested values as strings; the type error says what to do instead."""
    from pipeline.config import validate_workflow

    strings = {"train": {"stage1": {"steps": "300"}}}
    with pytest.raises(ConfigError, match=r"train\.stage1\.steps: '300' is not of type 'integer'\. .*--configfile overlay\.yaml"):
        validate_workflow(strings, cli_config=strings)
    with pytest.raises(ConfigError) as plain:  # the same mistake in a file: no word about --config
        validate_workflow(strings, cli_config={})
    assert "--config" not in str(plain.value)
    assert validate_workflow({"train": {"stage1": {"steps": 300}}}, cli_config={"results": "x"})["train"]["stage1"]["steps"] == 300
