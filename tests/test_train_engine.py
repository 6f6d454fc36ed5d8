"""Engine: exact resumption, NaN stop with the last good checkpoint, checkpoint format, schedule."""

import json
from pathlib import Path

import pytest
import torch

from pipeline.config import validate
from pipeline.errors import UserError
from train.engine import checkpoint as ckpt
from train.engine.trainer import TrainingDiverged, run_stage

TINY = {
    "net2d": {"backbone": "tiny"},
    "net3d": {"size": "tiny", "voxel_size": 0.1},
    "threads": 1,
    "device": "cpu",
    "data": {"batch_size": 1, "views_per_sample": 2, "crop_size": [16, 16], "workers": 0, "latent_pixels_per_view": 32},
    "checkpoint_every": 2,
    "stage1": {"steps": 5},
}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from tests.train_synthetic import make_stores

    return make_stores(tmp_path_factory.mktemp("stores"), samples_per_shard=(2, 1), n_points=200, n_views=3)


def _losses(run_dir):
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def test_resume_continues_exactly(synthetic, tmp_path):
    config = validate({"train": TINY})
    run_stage(config, "stage1", synthetic["stores"], tmp_path / "full", progress=False)
    stopped = run_stage(config, "stage1", synthetic["stores"], tmp_path / "split", stop_after=2, progress=False)
    assert stopped.name == "step_00000002.pt" and not (tmp_path / "split" / "final.pt").exists()
    run_stage(config, "stage1", synthetic["stores"], tmp_path / "split", progress=False)
    full, split = _losses(tmp_path / "full"), _losses(tmp_path / "split")
    assert [r["step"] for r in split] == [1, 2, 3, 4, 5]
    keys = ("loss", "ce2d", "ce3d", "latent2d", "latent3d")
    assert [[r[k] for k in keys] for r in split] == [[r[k] for k in keys] for r in full]
    a = ckpt.load_checkpoint(tmp_path / "full" / "final.pt")
    b = ckpt.load_checkpoint(tmp_path / "split" / "final.pt")
    for name, tensor in a["model3d"].items():
        assert torch.equal(tensor, b["model3d"][name]), name


def test_an_unreadable_newest_checkpoint_falls_back_to_the_previous(synthetic, tmp_path):
    config = validate({"train": TINY})
    run_stage(config, "stage1", synthetic["stores"], tmp_path / "full", progress=False)
    newest = run_stage(config, "stage1", synthetic["stores"], tmp_path / "run", stop_after=4, progress=False)
    assert newest.name == "step_00000004.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated, as by a kill during a copy or a full disk
    run_stage(config, "stage1", synthetic["stores"], tmp_path / "run", progress=False)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["resumed_at"] == 2
    assert newest.with_name("step_00000004.pt.unreadable").is_file()  # kept aside, not deleted
    a = ckpt.load_checkpoint(tmp_path / "full" / "final.pt")
    b = ckpt.load_checkpoint(tmp_path / "run" / "final.pt")
    for name, tensor in a["model3d"].items():
        assert torch.equal(tensor, b["model3d"][name]), name


def test_checkpoint_loads_weights_only_and_records_meta(synthetic, tmp_path):
    config = validate({"train": {**TINY, "stage1": {"steps": 2}}})
    final = run_stage(config, "stage1", synthetic["stores"], tmp_path / "run", progress=False)
    state = torch.load(final, map_location="cpu", weights_only=True)
    meta = ckpt.checkpoint_meta(state)
    assert state["step"] == 2 and meta["stage"] == "stage1" and meta["latent_dim"] == 256
    assert meta["classes"][0] == "wall" and meta["transductive"] is False
    net2d, net3d, _ = ckpt.networks_from_checkpoint(state)
    assert not net2d.training
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="bad.pt"):
        ckpt.load_checkpoint(tmp_path / "bad.pt")


def test_a_changed_config_starts_afresh_and_keeps_the_old_run_aside(synthetic, tmp_path):
    run = tmp_path / "run"
    run_stage(validate({"train": TINY}), "stage1", synthetic["stores"], run, stop_after=2, progress=False)
    first = (run / "checkpoints" / "step_00000002.pt").read_bytes()
    other = validate({"train": {**TINY, "seed": 9}})
    with pytest.raises(UserError, match="--resume: .*step_00000002.pt was written with other settings"):
        run_stage(other, "stage1", synthetic["stores"], run, stop_after=2, progress=False, resume_mode="resume")
    run_stage(other, "stage1", synthetic["stores"], run, stop_after=2, progress=False)
    assert json.loads((run / "run.json").read_text())["resumed_at"] == 0
    aside = run / "previous" / "run-001"
    assert (aside / "checkpoints" / "step_00000002.pt").read_bytes() == first  # moved, not deleted
    assert [json.loads(line)["step"] for line in (aside / "log.jsonl").read_text().splitlines()] == [1, 2]
    assert json.loads((aside / "run.json").read_text())["config"]["seed"] != 9
    events = sorted(p.name for p in (run / "tensorboard").iterdir())
    assert len(events) == 1 and events[0] not in {p.name for p in (aside / "tensorboard").iterdir()}  # a fresh folder


def test_a_recomputed_input_store_starts_afresh(synthetic, tmp_path):
    """New labels under the same training settings (e.g. CLIP rerun with other options) must not
    continue checkpoints trained on the old ones: the input stores' metadata is in the run hash."""
    import shutil

    stores = {name: list(paths) for name, paths in synthetic["stores"].items()}
    copy = tmp_path / "stores"
    for name, paths in stores.items():
        stores[name] = [str(shutil.copytree(p, copy / name / Path(p).name)) for p in paths]
    config, run = validate({"train": TINY}), tmp_path / "run"
    run_stage(config, "stage1", stores, run, stop_after=2, progress=False)
    run_stage(config, "stage1", stores, run, stop_after=2, progress=False)
    assert json.loads((run / "run.json").read_text())["resumed_at"] == 2  # same inputs: resumes
    meta = Path(stores["refined"][0]) / "zarr.json"
    doc = json.loads(meta.read_text())
    doc["attributes"]["note"] = "recomputed with other options"
    meta.write_text(json.dumps(doc))
    with pytest.raises(UserError, match="written with other settings"):
        run_stage(config, "stage1", stores, run, stop_after=2, progress=False, resume_mode="resume")
    run_stage(config, "stage1", stores, run, stop_after=2, progress=False)
    assert json.loads((run / "run.json").read_text())["resumed_at"] == 0
    assert (run / "previous" / "run-001" / "checkpoints" / "step_00000002.pt").is_file()


def test_no_resume_starts_afresh_with_the_same_settings(synthetic, tmp_path):
    run, config = tmp_path / "run", validate({"train": TINY})
    run_stage(config, "stage1", synthetic["stores"], run, stop_after=2, progress=False)
    run_stage(config, "stage1", synthetic["stores"], run, stop_after=2, progress=False, resume_mode="resume")
    assert json.loads((run / "run.json").read_text())["resumed_at"] == 2
    run_stage(config, "stage1", synthetic["stores"], run, stop_after=2, progress=False, resume_mode="fresh")
    assert json.loads((run / "run.json").read_text())["resumed_at"] == 0
    assert sorted(p.name for p in (run / "previous").iterdir()) == ["run-001"]
    assert (run / "previous" / "run-001" / "checkpoints" / "step_00000002.pt").is_file()
    run_stage(config, "stage1", synthetic["stores"], run, progress=False, resume_mode="fresh")  # to the end: final.pt
    run_stage(config, "stage1", synthetic["stores"], run, stop_after=2, progress=False, resume_mode="fresh")
    assert sorted(p.name for p in (run / "previous").iterdir()) == ["run-001", "run-002", "run-003"]
    assert (run / "previous" / "run-003" / "final.pt").is_file() and not (run / "final.pt").exists()
    with pytest.raises(UserError, match="--resume: no readable checkpoint"):
        run_stage(config, "stage1", synthetic["stores"], tmp_path / "empty", progress=False, resume_mode="resume")


def test_nan_loss_stops_with_step_samples_and_keeps_last_good_checkpoint(synthetic, tmp_path, monkeypatch):
    from train.losses import cns

    original = cns.CNSLoss.__call__
    calls = {"n": 0}

    def poisoned(self, out, batch, generator=None):
        total, parts = original(self, out, batch, generator)
        calls["n"] += 1
        return (total * float("nan") if calls["n"] == 4 else total), parts

    monkeypatch.setattr(cns.CNSLoss, "__call__", poisoned)
    with pytest.raises(TrainingDiverged) as err:
        run_stage(validate({"train": TINY}), "stage1", synthetic["stores"], tmp_path / "run", progress=False)
    message = str(err.value)
    assert "step 3" in message and "scene" in message and "step_00000002.pt" in message
    assert (tmp_path / "run" / "checkpoints" / "step_00000002.pt").is_file()
    assert not (tmp_path / "run" / "final.pt").exists()


def test_poly_and_cosine_schedules():
    from train.engine.schedule import LRSchedule

    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    poly = LRSchedule(opt, 10, "poly", warmup_steps=2)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5)
    for _ in range(5):
        poly.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5**0.9)
    cos = LRSchedule(torch.optim.SGD([p], lr=2.0), 10, "cosine", warmup_steps=0)
    assert cos.factor(5) == pytest.approx(0.5) and cos.factor(10) == pytest.approx(0.0)
