"""The ablation command: presets x seeds -> one table with mean and spread (tiny, slow-marked)."""

import json

import pytest
import yaml

from test_train_engine import TINY


@pytest.mark.slow
def test_ablation_table(tmp_path):
    from train.ablation import run_ablation
    from train_synthetic import make_stores

    make_stores(tmp_path / "results", samples_per_shard=(2,), n_points=150, n_views=2)
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump({"train": {**TINY, "stage1": {"steps": 1}, "stage2": {"steps": 1}},
                                    "evaluate": {"splits": ["train"]}}))
    presets = ["workflow/configs/ablation/a1_refined_only.yaml", "workflow/configs/ablation/a4_stage2.yaml"]
    table = run_ablation(str(base), presets, str(tmp_path / "results"), str(tmp_path / "out"), seeds=[0, 1])
    rows = table["rows"]
    assert list(rows) == ["a1_refined_only", "a4_stage2"]
    assert rows["a1_refined_only"]["stage"] == "stage1" and rows["a4_stage2"]["stage"] == "stage2"
    assert len(rows["a4_stage2"]["3d"]["values"]) == 2
    text = (tmp_path / "out" / "table.md").read_text()
    assert "± " in text and "pseudo-labels" in text
    assert len(list((tmp_path / "out" / "stage1").glob("*/predictions/train-000.zarr"))) == 2  # a4's two seeds
    assert len(list((tmp_path / "out" / "stage1").glob("*/final.pt"))) == 4  # a1 and a4 differ in stage 1
    # a second call reuses the finished runs
    again = run_ablation(str(base), presets, str(tmp_path / "results"), str(tmp_path / "out"), seeds=[0, 1])
    assert json.dumps(again["rows"], sort_keys=True) == json.dumps(table["rows"], sort_keys=True)
