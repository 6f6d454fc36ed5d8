"""The SAM stage end to end on a prepared store: store contents, metadata, errors, CLI."""

import json

import numpy as np
import pytest
import torch
from tests.sam_fixtures import TINY, TINY_AMG, assert_masks_match, scene, tiny_sam, write_prepared
from segment_anything import SamAutomaticMaskGenerator, SamPredictor

from pipeline import __main__ as cli
from pipeline.camera import sam_valid_grid
from pipeline.errors import UserError
from pipeline.stores import StoreReader
from pipeline.sam.backends import resize_masks
from pipeline.sam.features import mean_cosine, valid_region
from pipeline.sam.masks import paint_segments
from pipeline.stores.sam_codecs import SamFeatureReader, decode_masks
from pipeline.sam.stage import run_sam_stage

SAMPLES = {"scene0000_00": [0, 3], "scene0001_00": [4]}
OPTIONS = {"model_type": "tiny", "random_init": True, "tiny": TINY, "amg": TINY_AMG, "features": {"channels": 128, "fit_views": 2}}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return write_prepared(tmp_path_factory.mktemp("prep") / "train-000.zarr", SAMPLES, codec="png")


@pytest.fixture(scope="module")
def sam_store(prepared, tmp_path_factory):
    torch.set_num_threads(2)
    out = tmp_path_factory.mktemp("sam") / "train-000.zarr"
    run_sam_stage(prepared, out, {**OPTIONS, "output_size": [64, 48]})
    return out


def test_store_masks_equal_official_and_features_are_the_valid_embedding(sam_store):
    reader = StoreReader(sam_store, "sam")
    assert reader.samples == list(SAMPLES)
    attrs = reader.attrs
    assert attrs["backend"] == "segment_anything" and attrs["weights"] == "random-init"
    assert attrs["encoder_passes"] == 3, "one encoder pass per view"
    assert attrs["nesting_order"] == "part" and attrs["options"]["amg"]["points_per_side"] == 8
    sam = tiny_sam(seed=0)  # the stage's model: same type, seed and widths
    features = SamFeatureReader(sam_store)
    total = 0
    for sid, seeds in SAMPLES.items():
        sizes = reader.sample_attrs(sid)
        assert sizes["image_size"] == [128, 96] and sizes["label_size"] == [64, 48]
        offsets = reader.read(sid, "views/mask_offsets")
        rle, rle_off = reader.read(sid, "masks/rle"), reader.read(sid, "masks/rle_offsets")
        segments = reader.read(sid, "views/segments")
        assert segments.shape == (len(seeds), 48, 64)
        for v, seed in enumerate(seeds):
            image = scene(seed)[0]
            masks = decode_masks(rle, rle_off, range(offsets[v], offsets[v + 1]), (48, 64))
            records = SamAutomaticMaskGenerator(sam, **TINY_AMG).generate(image)
            official = resize_masks(np.stack([r["segmentation"] for r in records]), (64, 48))
            assert_masks_match(masks, official)
            total += len(masks)
            np.testing.assert_array_equal(reader.read(sid, "masks/area")[offsets[v] : offsets[v + 1]], masks.sum(axis=(1, 2)))
            np.testing.assert_array_equal(segments[v], paint_segments(masks, "part"))
            predictor = SamPredictor(sam)
            predictor.set_image(image)
            full = valid_region(predictor.features[0].numpy(), sam_valid_grid((128, 96), 256, 16))
            stored = features.view(sid, v)
            assert stored.shape == full.shape == (12, 16, 256)
            assert mean_cosine(stored, full) > 0.95
            cells = np.array([[3, 2], [15, 11]])
            # the same decoding of a few cells or of the whole map: float32 products through the basis, whose
            # rounding depends on how many rows one matmul takes (BLAS blocking), hence a float32 tolerance
            np.testing.assert_allclose(features.read(sid, [v, v], cells), stored[cells[:, 1], cells[:, 0]], rtol=1e-5, atol=1e-6)
    assert total > 0
    assert attrs["feature_cosine_mean"] > 0.95 and attrs["feature_channels"] == 128
    assert reader.read_store_array("_store/feature_basis").shape == (128, 256)


def test_nothing_written_on_bad_checkpoint(prepared, tmp_path):
    out = tmp_path / "sam" / "train-000.zarr"
    bad = tmp_path / "sam_vit_b.pth"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(UserError, match="sam_vit_b.pth"):
        run_sam_stage(prepared, out, {"model_type": "vit_b", "checkpoint": str(bad)})
    assert not out.exists()
    assert not any(p.name.startswith(".") for p in out.parent.iterdir()) if out.parent.exists() else True


def test_nothing_written_on_bad_options_or_inputs(prepared, tmp_path):
    out = tmp_path / "train-000.zarr"
    with pytest.raises(UserError, match="sam.amg"):
        run_sam_stage(prepared, out, {"model_type": "tiny", "random_init": True, "amg": {"points": 3}})
    with pytest.raises(UserError, match="not found"):
        run_sam_stage(tmp_path / "missing.zarr", out, {"backend": "simulated"})
    assert list(tmp_path.iterdir()) == []


def test_failure_mid_run_leaves_no_store(prepared, tmp_path, monkeypatch):
    from pipeline.sam import simulated

    def boom(*args, **kwargs):
        raise RuntimeError("killed mid-run")

    monkeypatch.setattr(simulated, "simulate_features", boom)
    with pytest.raises(RuntimeError):
        run_sam_stage(prepared, tmp_path / "train-000.zarr", {"backend": "simulated"})
    assert list(tmp_path.iterdir()) == []


def _main(monkeypatch, argv):
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("pipeline.sam.cli",))
    return cli.main(argv)


def test_cli_runs_and_reports_errors_without_traceback(prepared, tmp_path, monkeypatch, capsys):
    out = tmp_path / "sam.zarr"
    options = json.dumps({"sam": {"backend": "simulated", "simulated": {"zero_noise": True}}})
    assert _main(monkeypatch, ["sam", "--prepared", str(prepared), "--out", str(out), "--options", options]) == 0
    assert StoreReader(out, "sam").attrs["backend"] == "simulated"
    missing = tmp_path / "nope.pth"
    bad = json.dumps({"sam": {"model_type": "vit_h", "checkpoint": str(missing)}})
    assert _main(monkeypatch, ["sam", "--prepared", str(prepared), "--out", str(tmp_path / "x.zarr"), "--options", bad]) == 2
    err = capsys.readouterr().err
    assert f"{missing}: SAM checkpoint not found" in err and "Traceback" not in err
    assert not (tmp_path / "x.zarr").exists()


def test_cli_help_explains_options(monkeypatch, capsys):
    with pytest.raises(SystemExit):
        _main(monkeypatch, ["sam", "--help"])
    text = capsys.readouterr().out
    for flag in ("--prepared", "--out", "--options", "--shard", "--threads"):
        assert flag in text
