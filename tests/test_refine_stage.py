"""The refine stage through stores and the CLI: SAM masks (as the SAM stage encodes them) vote on CLIP labels."""

from __future__ import annotations

import numpy as np

from pipeline.__main__ import main
from pipeline.stores import StoreReader, StoreWriter
from pipeline.refine.stage import refine_shard
from pipeline.sam.masks import ViewMasks, pack_views
from pipeline.vocab import IGNORE
from tests.factory import complete_arrays

H, W = 12, 16


def _sam_arrays(view_masks):
    """The masks packed as the SAM stage packs them; feature arrays zero (refine never reads them)."""
    return complete_arrays("sam", pack_views(view_masks), {"view": len(view_masks), "Hc": 2, "Wc": 2, "C": 4})


def _stores(tmp_path, labels, view_masks):
    clip = tmp_path / "clip.zarr"
    sam = tmp_path / "sam.zarr"
    with StoreWriter(clip, "clip", attrs={"backend": "test", "shard": "train-000"}) as w:
        w.add_sample("s0", {"views/label": labels, "views/confidence": np.ones(labels.shape, np.float16)})
    with StoreWriter(sam, "sam", attrs={"backend": "test"}) as w:
        w.add_sample("s0", _sam_arrays(view_masks))
    return clip, sam


def _rect(y0, y1, x0, x1, shape=(H, W)):
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def test_refine_store_in_both_orders(tmp_path):
    labels = np.full((2, H, W), 3, dtype=np.uint8)
    labels[0, :, :6] = 1  # part (cols 0-7) majority 1; object (whole view) majority 3
    labels[0, 0, 0] = IGNORE
    whole, part = np.ones((H, W), bool), _rect(0, H, 0, 8)
    v0 = ViewMasks.from_masks(np.stack([whole, part]), np.ones(2), np.ones(2), "part")
    v1 = ViewMasks.from_masks(np.zeros((0, H, W), bool), np.zeros(0), np.zeros(0), "part")  # a view without masks
    clip, sam = _stores(tmp_path, labels, [v0, v1])
    out = refine_shard(clip, sam, tmp_path / "refined.zarr", {"nesting_order": "part"})
    ref = StoreReader(out, "refined")
    part_level, object_level = ref.read("s0", "views/label"), ref.read("s0", "views/label_alt")
    assert np.all(part_level[0, :, :8] == 1) and np.all(part_level[0, :, 8:] == 3)
    assert np.all(object_level[0] == 3)
    np.testing.assert_array_equal(part_level[1], labels[1])  # no masks: CLIP labels unchanged
    assert ref.attrs["options"] == {"nesting_order": "part", "ignore": "abstain"}
    assert ref.sample_attrs("s0")["alt_nesting_order"] == "object"
    swapped = refine_shard(clip, sam, tmp_path / "refined2.zarr", {"nesting_order": "object"})
    np.testing.assert_array_equal(StoreReader(swapped, "refined").read("s0", "views/label"), object_level)


def test_label_resolution_mismatch_is_a_clear_error(tmp_path, capsys):
    labels = np.zeros((1, H, W), dtype=np.uint8)
    small = ViewMasks.from_masks(np.ones((1, H // 2, W // 2), bool), np.ones(1), np.ones(1), "part")
    clip, sam = _stores(tmp_path, labels, [small])
    code = main(["refine", "--clip", str(clip), "--sam", str(sam), "--out", str(tmp_path / "r.zarr")])
    err = capsys.readouterr().err
    assert code == 2 and "label resolution" in err and "8x6" in err and "16x12" in err
    assert not (tmp_path / "r.zarr").exists()


def test_cli_runs_and_rejects_bad_options(tmp_path, capsys):
    labels = np.zeros((1, H, W), dtype=np.uint8)
    clip, sam = _stores(tmp_path, labels, [ViewMasks.from_masks(np.ones((1, H, W), bool), np.ones(1), np.ones(1), "part")])
    assert main(["refine", "--clip", str(clip), "--sam", str(sam), "--out", str(tmp_path / "r.zarr"), "--options", '{"refine": {"ignore": "compete"}}']) == 0
    assert StoreReader(tmp_path / "r.zarr", "refined").attrs["options"]["ignore"] == "compete"
    code = main(["refine", "--clip", str(clip), "--sam", str(sam), "--out", str(tmp_path / "bad.zarr"), "--options", '{"refine": {"nesting_order": "bottom"}}'])
    assert code == 2 and "refine.nesting_order" in capsys.readouterr().err
    code = main(["refine", "--clip", str(sam), "--sam", str(clip), "--out", str(tmp_path / "bad.zarr")])
    assert code == 2 and "expected a 'clip' store" in capsys.readouterr().err
    assert not (tmp_path / "bad.zarr").exists()
