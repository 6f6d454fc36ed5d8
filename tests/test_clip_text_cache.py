"""The shared text classifier: same labels as encoding per shard; refuses a mismatched file."""

import numpy as np
import pytest

from tests.clip_helpers import clip_options, write_prepared
from pipeline.clip.stage import run_clip_stage
from pipeline.clip.text_cache import compute_text_classifier
from pipeline.errors import UserError
from pipeline.stores import StoreReader


def test_cached_classifier_gives_identical_labels(tmp_path):
    prepared = write_prepared(tmp_path / "prepared.zarr", {"s0": 3})
    options = clip_options()
    text = compute_text_classifier(options, tmp_path / "text.safetensors")
    direct = run_clip_stage(prepared, tmp_path / "direct.zarr", options)
    cached = run_clip_stage(prepared, tmp_path / "cached.zarr", options, text=text)
    a, b = StoreReader(direct), StoreReader(cached)
    np.testing.assert_array_equal(a.read("s0", "views/label"), b.read("s0", "views/label"))
    np.testing.assert_array_equal(a.read("s0", "views/confidence"), b.read("s0", "views/confidence"))


def test_mismatched_classifier_is_refused(tmp_path):
    prepared = write_prepared(tmp_path / "prepared.zarr", {"s0": 1})
    text = compute_text_classifier(clip_options(), tmp_path / "text.safetensors")
    other = clip_options()
    other["vocabulary"]["templates"] = ["imagenet80"]
    with pytest.raises(UserError, match="another templates"):
        run_clip_stage(prepared, tmp_path / "out.zarr", other, text=text)
    reseeded = clip_options(seed=3)
    with pytest.raises(UserError, match="random_init_seed"):
        run_clip_stage(prepared, tmp_path / "out.zarr", reseeded, text=text)
    assert not (tmp_path / "out.zarr").exists()


def test_simulated_backend_has_no_classifier(tmp_path):
    with pytest.raises(UserError, match="clip.backend"):
        compute_text_classifier({"clip": {"backend": "simulated"}}, tmp_path / "t.safetensors")
