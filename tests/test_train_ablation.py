"""The ablation inside the DAG: rows and owners (pipeline.runs), the table builder, the Snakemake target."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from pipeline.config import ConfigError, validate
from pipeline.runs import AblationRuns
from tests.test_train_engine import TINY
from tests.workflow_helpers import REPO, snakemake_command, snakemake_env, tiny_demo_config

PRESETS = [f"workflow/configs/ablation/{name}.yaml" for name in ("a0_clip_unrefined", "a1_refined_only", "a2_latent", "a3_switching", "a4_stage2", "a5_stage2_pseudo_only")]


def test_rows_share_stage1_only_when_their_stage1_and_predict_settings_match():
    runs = AblationRuns(validate({"ablation": {"presets": PRESETS, "seeds": [0, 3]}}), search=[REPO])
    assert list(runs.rows) == ["a0_clip_unrefined", "a1_refined_only", "a2_latent", "a3_switching", "a4_stage2", "a5_stage2_pseudo_only"]
    owners = {row: runs.owner(row, 3) for row in runs.rows}
    assert owners == {"a0_clip_unrefined": "a0_clip_unrefined", "a1_refined_only": "a1_refined_only", "a2_latent": "a2_latent", "a3_switching": "a3_switching",
                      "a4_stage2": "a3_switching", "a5_stage2_pseudo_only": "a3_switching"}
    assert runs.final_stage("a1_refined_only", 0) == ("stage1", "a1_refined_only")
    assert runs.final_stage("a4_stage2", 0) == ("stage2", "a4_stage2")
    assert runs.row_config("a2_latent", 3)["train"]["seed"] == 3
    assert runs.row_config("a2_latent", 3)["evaluate"]["export_ply"] is False
    with pytest.raises(ConfigError, match="nope.yaml not found"):
        AblationRuns(validate({"ablation": {"presets": ["nope.yaml"]}}), search=[REPO]).row_config("nope", 0)


def test_a_row_changing_only_the_predict_step_reuses_stage1_but_predicts_itself():
    presets = PRESETS + [f"workflow/configs/ablation/{n}.yaml" for n in ("a7_stage2_online", "a8_stage2_unrefined")]
    runs = AblationRuns(validate({"ablation": {"presets": presets, "seeds": [0]}}), search=[REPO])
    assert runs.row_config("a8_stage2_unrefined", 0)["train"]["predict"]["refine"] is False
    assert runs.stage1_owner("a8_stage2_unrefined", 0) == "a3_switching"
    assert runs.owner("a8_stage2_unrefined", 0) == "a8_stage2_unrefined"  # its own (unrefined) predictions
    assert runs.stage1_owner("a7_stage2_online", 0) == runs.owner("a7_stage2_online", 0) == "a3_switching"
    assert {runs.stage1_owner(r, 0) for r in ("a4_stage2", "a5_stage2_pseudo_only")} == {"a3_switching"}


def _metrics(folder: Path, stage: str, miou2d: float, miou3d: float, classes=("wall", "floor")) -> str:
    folder.mkdir(parents=True)
    results = {"2d": {"miou": miou2d}, "3d": {"miou": miou3d, "class_set": list(classes)}, "pseudo2d": {"miou": 0.3}, "pseudo3d": {"miou": 0.25}}
    (folder / "metrics.json").write_text(json.dumps({"checkpoint": {"stage": stage}, "splits": ["val"], "results": results}))
    return str(folder)


def test_table_reports_mean_spread_and_range_per_row(tmp_path):
    from train.ablation import write_table

    runs = [f"a:{k}:{_metrics(tmp_path / f'a{k}', 'stage1', 0.1 * (k + 1), 0.2)}" for k in range(3)]
    runs += [f"b:{k}:{_metrics(tmp_path / f'b{k}', 'stage2', 0.5, 0.4 + 0.1 * k)}" for k in range(3)]
    table = write_table(runs, ["a:a.yaml"], tmp_path / "t.md", tmp_path / "t.json")
    assert table["rows"]["a"]["2d"]["mean"] == pytest.approx(20.0) and table["rows"]["a"]["2d"]["std"] == pytest.approx(10.0)
    assert table["rows"]["b"]["3d"]["min"] == pytest.approx(40.0) and table["rows"]["b"]["stage"] == "stage2"
    text = (tmp_path / "t.md").read_text()
    assert "| a | stage1 | 20.0 ± 10.0 (10.0–30.0) | 20.0 ± 0.0 (20.0–20.0) |" in text and "pseudo-labels" in text
    with pytest.raises(Exception, match="different seeds"):
        write_table(runs[:5], [], tmp_path / "u.md", tmp_path / "u.json")
    assert table["class_sets"] == {"3d": ["wall", "floor"]} and "same classes" in text and "3D: 2" in text
    odd = runs[:5] + [f"b:2:{_metrics(tmp_path / 'odd', 'stage2', 0.5, 0.6, classes=('wall',))}"]
    with pytest.raises(Exception, match="different class sets"):
        write_table(odd, [], tmp_path / "v.md", tmp_path / "v.json")


def _config(presets, seeds):
    return tiny_demo_config(
        num_scenes=3, views=4, clip={"backend": "simulated"}, sam={"backend": "simulated"},
        train={**TINY, "stage1": {"steps": 2}, "stage2": {"steps": 2}, "checkpoint_every": 50},
        evaluate={"splits": ["val"]}, ablation={"presets": presets, "seeds": seeds},
    )


def test_dry_run_plans_shared_stage1_runs(tmp_path):
    proc = subprocess.run(snakemake_command(tmp_path, _config(PRESETS, [0, 1]), "-n", "ablation", "--quiet", "rules"),
                          capture_output=True, text=True, env=snakemake_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = {line.split()[0]: int(line.split()[1]) for line in proc.stdout.splitlines() if len(line.split()) == 2 and line.split()[1].isdigit()}
    # 4 distinct stage-1 settings (a0's raw CLIP targets are one) x 2 seeds; predictions only for the
    # owner of the frozen self/cross row (2 train shards)
    assert counts["ablation_train_stage1"] == 8 and counts["ablation_train_stage2"] == 4
    assert counts["ablation_predict_shard"] == 2 * 2 and counts["ablation_evaluate"] == 12 and counts["ablation_table"] == 1


@pytest.mark.slow
def test_ablation_target_builds_the_table_and_a_second_run_does_nothing(tmp_path):
    config = _config(PRESETS[3:5], [0, 1])
    run = subprocess.run(snakemake_command(tmp_path, config, "ablation"), capture_output=True, text=True, env=snakemake_env(), timeout=1500)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    table = json.loads((tmp_path / "results" / "ablation" / "table.json").read_text())
    assert list(table["rows"]) == ["a3_switching", "a4_stage2"]
    assert table["rows"]["a3_switching"]["stage"] == "stage1" and table["rows"]["a4_stage2"]["stage"] == "stage2"
    assert len(table["rows"]["a4_stage2"]["3d"]["values"]) == 2
    runs = tmp_path / "results" / "ablation"
    assert sorted(p.relative_to(runs).parts[0] for p in runs.glob("*/seed*/train/stage1/final.pt")) == ["a3_switching"] * 2
    again = subprocess.run(snakemake_command(tmp_path, config, "ablation", "-n"), capture_output=True, text=True, env=snakemake_env(), timeout=300)
    assert "Nothing to be done" in again.stdout + again.stderr
    # a changed preset reruns its rows only (Snakemake's params trigger)
    preset = tmp_path / "a4_stage2.yaml"
    row = yaml.safe_load((REPO / PRESETS[4]).read_text())
    row["train"]["stage2"]["lr_scale"] = 0.2
    preset.write_text(yaml.safe_dump(row))
    changed = _config([PRESETS[3], str(preset)], [0, 1])
    plan = subprocess.run(snakemake_command(tmp_path, changed, "ablation", "-n", "--quiet", "rules"), capture_output=True, text=True,
                          env=snakemake_env(), timeout=300)
    assert "ablation_train_stage1" not in plan.stdout and "ablation_train_stage2" in plan.stdout, plan.stdout


def test_paired_differences_and_verdicts(tmp_path):
    from train.ablation import write_table

    # b beats a by 10 +- 1 points in 2D on every seed (helps); 3D differences straddle 0 (not resolved);
    # c is 5 points below a in 3D on every seed (hurts)
    runs = []
    for k, (d2, d3) in enumerate(((0.09, 0.05), (0.10, -0.04), (0.11, 0.01))):
        runs.append(f"a:{k}:{_metrics(tmp_path / f'a{k}', 'stage1', 0.2 + 0.01 * k, 0.3 + 0.02 * k)}")
        runs.append(f"b:{k}:{_metrics(tmp_path / f'b{k}', 'stage1', 0.2 + 0.01 * k + d2, 0.3 + 0.02 * k + d3)}")
        runs.append(f"c:{k}:{_metrics(tmp_path / f'c{k}', 'stage2', 0.2, 0.25 + 0.02 * k)}")
    comparisons = [{"component": "B", "row": "b", "baseline": "a"}, {"component": "C", "row": "c", "baseline": "a"},
                   {"component": "gone", "row": "z", "baseline": "a"}]
    table = write_table(runs, [], tmp_path / "t.md", tmp_path / "t.json", comparisons)
    b, c, gone = table["paired"]
    assert b["2d"]["differences"] == pytest.approx([9.0, 10.0, 11.0]) and b["2d"]["mean"] == pytest.approx(10.0)
    assert b["2d"]["std"] == pytest.approx(1.0)
    assert b["2d"]["ci95"] == pytest.approx([10 - 4.303 / 3 ** 0.5, 10 + 4.303 / 3 ** 0.5], abs=1e-3)
    assert b["2d"]["verdict"] == "helps" and b["3d"]["verdict"] == "not resolved"
    assert c["3d"]["differences"] == pytest.approx([-5.0, -5.0, -5.0]) and c["3d"]["verdict"] == "hurts"
    assert gone["skipped"] and "3d" not in gone
    text = (tmp_path / "t.md").read_text()
    assert "| B | b − a | +10.0 ± 1.0 [+7.5, +12.5] (+9.0, +10.0, +11.0) | helps |" in text
    assert "| gone | z − a | skipped" in text
    assert json.loads((tmp_path / "t.json").read_text())["paired"][1]["3d"]["verdict"] == "hurts"
