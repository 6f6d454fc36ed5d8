"""The clip stage end to end on small prepared stores: contract, metadata, errors, CLI."""

import json

import numpy as np
import pytest
import torch

from pipeline.clip.stage import run_clip_stage
from pipeline.errors import UserError
from pipeline.stores import StoreReader
from pipeline.vocab import SCANNET20_NYU40_IDS, benchmark
from tests.clip_helpers import clip_options, run_cli, tiny_clip, write_prepared
from tests.clip_synthetic import synthetic_scene


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if ".partial-" in p.name)


def test_open_clip_backend_writes_the_clip_contract(tmp_path):
    prepared = write_prepared(tmp_path / "prep.zarr", {"s0": 5, "s1": 0, "s2": 3}, size=(48, 32))
    out = tmp_path / "clip" / "train-000.zarr"
    run_clip_stage(prepared, out, clip_options(batch_size=4, store_logits=True))
    store = StoreReader(out, "clip")
    assert store.samples == ["s0", "s1", "s2"]
    attrs = store.attrs
    assert attrs["backend"] == "open_clip" and attrs["checkpoint_sha256"] == "random-init"
    assert attrs["activation"] == "quick_gelu" and attrs["logit_scale"] == 100.0
    assert attrs["mean"] == pytest.approx([0.48145466, 0.4578275, 0.40821073])
    assert attrs["vocabulary"]["prompts"][-1] == "ceiling" and attrs["vocabulary"]["prompt_to_class"][-1] == 255
    assert attrs["vocabulary"]["templates"] == ["scene"] and len(attrs["options_hash"]) == 16
    assert store.sample_attrs("s0")["input_size"] == [48, 32] and store.sample_attrs("s0")["grid"] == [2, 3]
    label = store.read("s0", "views/label")
    conf = store.read("s0", "views/confidence")
    logits = store.read("s0", "views/logits")
    assert label.shape == (5, 32, 48) and label.dtype == np.uint8
    assert conf.dtype == np.float16 and np.all((conf > 0) & (conf <= 1))
    assert logits.shape == (5, 21, 2, 3) and logits.dtype == np.float16
    assert store.read("s1", "views/label").shape[0] == 0
    assert store.read("s2", "views/label").shape == (3, 32, 48)
    # batches crossed the sample boundary (4 + 4 views); each view equals a batch-of-one run
    from pipeline.clip.labeller import MaskClipLabeller
    from pipeline.images import read_view_images
    from pipeline.vocab import prompt_vocabulary

    loaded = tiny_clip()
    labeller = MaskClipLabeller(loaded, prompt_vocabulary("scannet20", extra_prompts={"ceiling": ["ceiling"]}), ["scene"],
                                {"device": "cpu"})
    prep = StoreReader(prepared, "prepared")
    for sample_id in ("s0", "s2"):
        images = read_view_images(prep, sample_id)
        for v in range(len(images)):
            single = labeller.label(images[v : v + 1], (48, 32))
            np.testing.assert_array_equal(store.read(sample_id, "views/label", v), single.label[0])


def test_maskclip_refinements_run_in_the_stage(tmp_path):
    prepared = write_prepared(tmp_path / "prep.zarr", {"s": 3}, size=(64, 48))
    plain = StoreReader(run_clip_stage(prepared, tmp_path / "a.zarr", clip_options(store_logits=True)), "clip")
    refined = StoreReader(run_clip_stage(prepared, tmp_path / "b.zarr", clip_options(
        store_logits=True, prompt_denoising={"enabled": True, "threshold": 0.5},
        key_smoothing={"enabled": True, "threshold": 1.0})), "clip")
    scores = refined.read("s", "views/logits").astype(np.float32)
    assert np.all(scores <= 1e-3)  # log-probabilities after key smoothing
    np.testing.assert_allclose(np.exp(scores).sum(1), 1.0, atol=0.02)
    assert (refined.read("s", "views/label") != plain.read("s", "views/label")).any()
    assert refined.attrs["options"]["clip"]["key_smoothing"]["enabled"] is True
    assert refined.attrs["options_hash"] != plain.attrs["options_hash"]


def test_output_and_input_size_options(tmp_path):
    prepared = write_prepared(tmp_path / "prep.zarr", {"s": 2}, size=(40, 30), codec="raw")
    out = tmp_path / "clip.zarr"
    run_clip_stage(prepared, out, clip_options(output_size=[20, 15], input_size=[64, 48]))
    store = StoreReader(out, "clip")
    assert store.read("s", "views/label").shape == (2, 15, 20)
    assert store.sample_attrs("s")["input_size"] == [64, 48] and store.sample_attrs("s")["grid"] == [3, 4]
    with pytest.raises(UserError, match="clip.input_size: 50x48 is not a multiple"):
        run_clip_stage(prepared, tmp_path / "bad.zarr", clip_options(input_size=[50, 48]))
    assert not (tmp_path / "bad.zarr").exists() and _leftovers(tmp_path) == []


@pytest.mark.parametrize("problem", ["missing", "pickle", "wrong_arch", "empty_vocabulary"])
def test_errors_name_the_problem_and_write_nothing(tmp_path, problem):
    prepared = write_prepared(tmp_path / "prep.zarr", {"s": 2})
    ckpt = tmp_path / "weights.pt"
    options = clip_options(random_init=False, checkpoint=str(ckpt))
    if problem == "pickle":
        from tests.test_clip_checkpoint import _Payload

        torch.save({"x": _Payload(tmp_path / "marker")}, ckpt)
    elif problem == "wrong_arch":
        torch.save(tiny_clip(layers=1).model.state_dict(), ckpt)
    elif problem == "empty_vocabulary":
        options = clip_options()
        options["vocabulary"] = {"prompts": {name: [] for name in benchmark("scannet20").class_names}}
    expected = {"missing": "weights.pt: checkpoint not found", "pickle": "weights.pt: refused to load",
                "wrong_arch": "weights.pt: weights do not fit", "empty_vocabulary": "empty vocabulary"}[problem]
    out = tmp_path / "out" / "clip.zarr"
    with pytest.raises(UserError, match=expected):
        run_clip_stage(prepared, out, options)
    assert not out.exists() and (not out.parent.exists() or _leftovers(out.parent) == [])
    assert not (tmp_path / "marker").exists()


def test_cli_runs_the_stage_and_reports_errors_in_one_line(tmp_path, monkeypatch, capsys):
    prepared = write_prepared(tmp_path / "prep.zarr", {"s": 3})
    out = tmp_path / "clip.zarr"
    rc = run_cli(monkeypatch, ["clip", "--prepared", str(prepared), "--out", str(out), "--options", json.dumps(clip_options())])
    assert rc == 0 and StoreReader(out, "clip").read("s", "views/label").shape == (3, 32, 48)
    bad = clip_options(random_init=False, checkpoint=str(tmp_path / "nope.safetensors"))
    rc = run_cli(monkeypatch, ["clip", "--prepared", str(prepared), "--out", str(tmp_path / "x.zarr"), "--options", json.dumps(bad)])
    err = capsys.readouterr().err
    assert rc == 2 and "nope.safetensors: checkpoint not found" in err and "Traceback" not in err
    rc = run_cli(monkeypatch, ["clip", "--prepared", str(prepared), "--out", str(tmp_path / "x.zarr"), "--options", '{"clip": {"backend": "magic"}}'])
    assert rc == 2 and "clip.backend" in capsys.readouterr().err
    assert not (tmp_path / "x.zarr").exists()


def test_simulated_backend_from_prepared_ground_truth(tmp_path):
    labels, instances = {}, {}
    nyu = np.array(SCANNET20_NYU40_IDS + (0,) * 236, dtype=np.uint16)  # class index -> nyu40 id (255 -> 0)
    for i, sample_id in enumerate(["scene0000_00", "scene0001_00"]):
        classes, inst = synthetic_scene(i, n_views=3, size=(64, 48))
        labels[sample_id] = nyu[classes]
        instances[sample_id] = inst
    prepared = write_prepared(tmp_path / "prep.zarr", {k: 3 for k in labels}, size=(64, 48), labels=labels, instances=instances)
    options = clip_options(backend="simulated", simulated={"systematic_only": True, "ignore_fill": "keep"})
    out = run_clip_stage(prepared, tmp_path / "sim.zarr", options)
    store = StoreReader(out, "clip")
    assert store.attrs["backend"] == "simulated" and store.attrs["simulated"]["systematic_only"] is True
    for i, sample_id in enumerate(store.samples):
        gt, _ = synthetic_scene(i, n_views=3, size=(64, 48))
        label = store.read(sample_id, "views/label")
        assert label.shape == gt.shape and store.read(sample_id, "views/confidence").dtype == np.float16
        assert np.all(label[gt == 255] == 255) and (label == gt).mean() > 0.6
    again = run_clip_stage(prepared, tmp_path / "sim2.zarr", options)
    np.testing.assert_array_equal(StoreReader(again, "clip").read("scene0001_00", "views/label"),
                                  store.read("scene0001_00", "views/label"))
    no_gt = write_prepared(tmp_path / "nogt.zarr", {"s": 2})
    with pytest.raises(UserError, match="needs 2D ground truth"):
        run_clip_stage(no_gt, tmp_path / "sim3.zarr", options)
    assert not (tmp_path / "sim3.zarr").exists()
