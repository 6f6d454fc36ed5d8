"""The schema owns the trainer's keys and defaults; train/config.py's dataclasses hold values only."""

import dataclasses

import pytest
import yaml

from pipeline.config import schema_path, validate
from pipeline.errors import UserError
from train import config as tc

SECTIONS = {
    tc.Net2DConfig: "net2d",
    tc.Net3DConfig: "net3d",
    tc.DataConfig: "data",
    tc.LossConfig: "loss",
    tc.OptimConfig: "optim",
}


@pytest.fixture(scope="module")
def train_schema():
    return yaml.safe_load(schema_path().read_text())["properties"]["train"]["properties"]


def _fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


@pytest.mark.parametrize("cls", list(SECTIONS), ids=lambda c: c.__name__)
def test_section_dataclasses_have_exactly_the_schemas_keys(train_schema, cls):
    props = train_schema[SECTIONS[cls]]["properties"]
    assert _fields(cls) == set(props)
    assert all("default" in p for p in props.values())  # the schema, not the dataclass, owns defaults


def test_train_and_stage_configs_match_the_schema(train_schema):
    assert _fields(tc.TrainConfig) == (set(train_schema) - set(tc.READ_ELSEWHERE)) | set(tc.FROM_OTHER_SECTIONS)
    stage1, stage2 = set(train_schema["stage1"]["properties"]), set(train_schema["stage2"]["properties"])
    assert _fields(tc.StageConfig) == stage2 | {"name"}
    assert stage1 | set(tc.STAGE1_FIXED) == stage2 and not stage1 & set(tc.STAGE1_FIXED)
    for stage in ("stage1", "stage2"):
        assert set(train_schema[stage]["properties"]["sources"]["properties"]) == set(tc.SOURCES)


def test_dataclasses_take_values_only():
    for cls in [*SECTIONS, tc.StageConfig, tc.TrainConfig]:
        for f in dataclasses.fields(cls):
            assert f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING, f"{cls.__name__}.{f.name}"


def test_the_validated_defaults_build_every_config_and_a_disagreement_is_named():
    cfg = tc.train_config(validate({}))
    assert cfg.data.crop_size == (512, 384) and cfg.net3d.input_features == ("rgb",)
    assert cfg.stage("stage1").lr_scale == 1.0 and cfg.stage("stage2").lr_scale == 0.1
    partial = tc.train_config(validate({"train": {"stage2": {"sources": {"pseudo": 2}}}})).stage("stage2")
    assert partial.sources == {"pseudo": 2.0, "self": 0.0, "cross": 0.0}  # the schema's per-source default
    section = dict(validate({})["train"]["net2d"], extra=1)
    with pytest.raises(UserError, match=r"train.net2d: keys \['extra'\]"):
        tc._build(tc.Net2DConfig, section, "train.net2d")
    with pytest.raises(UserError, match=r"train.stage1.loss: unknown keys \['ce4d'\]"):
        tc.train_config(validate({"train": {"stage1": {"loss": {"ce4d": 1}}}})).stage("stage1")
