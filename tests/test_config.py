"""Configuration validation: defaults, errors naming the key, parity with Snakemake's validator."""

from pathlib import Path

import pytest
import yaml

from pipeline.config import ConfigError, config_hash, load_config, validate

REPO = Path(__file__).resolve().parents[1]
CONFIGS = [REPO / "config.yaml", *sorted((REPO / "workflow" / "configs").glob("*.yaml"))]


def test_defaults_filled():
    config = validate({})
    assert config["dataset"]["frame_skip"] == 20
    assert config["vocabulary"]["benchmark"] == "scannet20"
    assert config["dataset"]["demo"]["enabled"] is False


@pytest.mark.parametrize(
    "bad, key",
    [
        ({"dataset": {"frame_skip": "a"}}, "dataset.frame_skip"),
        ({"dataset": {"working_size": [640]}}, "dataset.working_size"),
        ({"vocabulary": {"benchmark": "coco"}}, "vocabulary.benchmark"),
        ({"dataset": {"demo": {"num_scenes": 0}}}, "dataset.demo.num_scenes"),
    ],
)
def test_errors_name_the_key(bad, key):
    with pytest.raises(ConfigError, match=f"config key {key}:"):
        validate(bad)


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match="datset"):
        validate({"datset": {}})


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_validate_like_snakemake(path):
    from snakemake.utils import validate as snakemake_validate

    ours = load_config(path)
    theirs = yaml.safe_load(path.read_text()) or {}
    snakemake_validate(theirs, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    assert ours == theirs


def test_hash_is_order_independent():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_scannet_preset_selects_real_models_and_full_networks():
    """The ScanNet preset, merged over config.yaml as Snakemake merges --configfile, must reset
    every demo-only choice: simulated backends, the generated dataset, the tiny networks."""
    from pipeline.config import deep_merge

    base = yaml.safe_load((REPO / "config.yaml").read_text())
    preset = yaml.safe_load((REPO / "workflow" / "configs" / "scannet.yaml").read_text())
    config = validate(deep_merge(base, preset))
    assert config["dataset"]["demo"]["enabled"] is False
    assert config["clip"]["backend"] == "open_clip" and config["clip"]["checkpoint"]
    assert config["sam"]["backend"] == "segment_anything" and config["sam"]["model_type"] == "vit_h"
    assert not config["clip"]["random_init"] and not config["sam"]["random_init"]
    assert config["train"]["net2d"]["backbone"] == "resnet50" and config["train"]["net3d"]["size"] == "full"
    defaults = validate({})["train"]
    assert config["train"]["data"] == defaults["data"]
    assert config["train"]["stage1"]["steps"] == defaults["stage1"]["steps"]


def test_several_config_files_merge_in_order(tmp_path):
    """``load_config([a, b])`` merges like Snakemake's --configfile over config.yaml: later wins, key by key."""
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text("dataset: {frame_skip: 5, working_size: [320, 240]}\n")
    b.write_text("dataset: {frame_skip: 7}\n")
    config = load_config([a, b])
    assert config["dataset"]["frame_skip"] == 7
    assert config["dataset"]["working_size"] == [320, 240]
    with pytest.raises(ConfigError, match="missing.yaml"):
        load_config([a, tmp_path / "missing.yaml"])


def test_set_overrides_parse_dotted_keys_as_yaml():
    from pipeline.config import parse_overrides

    assert parse_overrides(["train.stage1.steps=300", "train.data.crop_size=[64, 48]", "a=x"]) == {
        "train": {"stage1": {"steps": 300}, "data": {"crop_size": [64, 48]}}, "a": "x"}
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_overrides(["train.seed"])
