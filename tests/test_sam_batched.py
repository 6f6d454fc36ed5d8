"""The batched SAM generator: the official generator's masks, scores and order; its device-side
post-processing equal to the numpy one; the stage's stores equal to the official generator's."""

import numpy as np
import pytest
import torch
from tests.sam_fixtures import TINY, TINY_AMG, official_masks, scene, tiny_sam, write_prepared

from pipeline.sam.backends import SegmentAnythingBackend, resize_masks
from pipeline.sam.batched import BatchedMaskGenerator, supports
from pipeline.sam.device_masks import view_masks_from_device
from pipeline.sam.masks import ViewMasks
from pipeline.sam.model import load_sam
from pipeline.stores import StoreReader
from pipeline.stores.sam_codecs import encode_rle, encode_rle_batch
from pipeline.sam.stage import run_sam_stage

# Many masks (NMS keeps distinct boxes only at 1.0) and a stability filter that bites: with an offset
# of 0.02 the tiny model's stability scores spread over 0.03..0.77, so 0.5 drops about a quarter.
LOADED = {**TINY_AMG, "box_nms_thresh": 1.0, "stability_score_offset": 0.02, "stability_score_thresh": 0.5}


@pytest.fixture(scope="module")
def sam():
    torch.set_num_threads(2)
    return tiny_sam(seed=0)


def _check_equal_official(sam, images, amg, encoder_batch):
    gen = BatchedMaskGenerator(sam, amg)
    out = list(gen.generate_views(images, encoder_batch))
    assert len(out) == len(images)
    total = 0
    for image, (found, embedding) in zip(images, out):
        official, records = official_masks(sam, image, **amg)
        ours = found.masks.cpu().numpy()
        assert ours.shape == official.shape
        assert np.array_equal(ours, official), "same masks in the same order"
        # scores: equal up to float32 rounding (a decoder call holding other views' prompts may round
        # differently in the last bit); the masks above are equal bit for bit
        np.testing.assert_allclose(found.predicted_iou.numpy(), [r["predicted_iou"] for r in records], rtol=1e-6, atol=0)
        np.testing.assert_allclose(found.stability_score.numpy(), [r["stability_score"] for r in records], rtol=1e-6, atol=0)
        np.testing.assert_array_equal(found.points.numpy(), np.array([r["point_coords"][0] for r in records]).reshape(-1, 2))
        assert embedding.shape[0] == 1
        total += len(ours)
    return total, gen


@pytest.mark.parametrize("encoder_batch, points_per_batch", [(1, 16), (3, 16), (3, 7), (2, 64)])
def test_masks_scores_and_order_equal_official(sam, encoder_batch, points_per_batch):
    """Prompts of several views in one decoder call, chunks that straddle views, a last partial chunk."""
    images = [scene(0)[0], scene(3)[0], scene(4)[0]]
    amg = {**LOADED, "points_per_batch": points_per_batch}
    total, gen = _check_equal_official(sam, images, amg, encoder_batch)
    assert total > 100, "the thresholds must leave many masks to compare"
    assert gen.predictor.encoder_passes == -(-len(images) // encoder_batch)


def test_default_thresholds_of_the_parity_tests(sam):
    total, _ = _check_equal_official(sam, [scene(1)[0], scene(2)[0]], TINY_AMG, 2)
    assert total > 1


def test_a_view_without_masks(sam):
    """A threshold no mask passes: empty results of the right shape, as the official gives none."""
    images = [scene(0)[0]]
    total, _ = _check_equal_official(sam, images, {**TINY_AMG, "pred_iou_thresh": 5.0}, 1)
    assert total == 0


def test_crop_layers_and_small_regions_are_left_to_the_official_generator(sam):
    assert supports(TINY_AMG)
    assert not supports({**TINY_AMG, "crop_n_layers": 1}) and not supports({**TINY_AMG, "min_mask_region_area": 10})
    loaded = load_sam("tiny", None, random_init=True, seed=0, tiny=TINY)
    assert SegmentAnythingBackend(loaded, {**TINY_AMG, "crop_n_layers": 1}).generator_name == "official"
    assert SegmentAnythingBackend(loaded, TINY_AMG).generator_name == "batched"
    assert SegmentAnythingBackend(loaded, TINY_AMG, generator="official").generator_name == "official"


def _random_masks(rng, m, h, w):
    masks = rng.random((m, h, w)) < rng.uniform(0.05, 0.9, (m, 1, 1))
    masks[0] = False
    masks[1] = True
    masks[2, 0, 0], masks[3, 0, 0] = True, False
    masks[4] = masks[5]  # equal areas: the tie rule of the paint order
    return masks


def test_batched_rle_equals_numpy_rle():
    rng = np.random.default_rng(0)
    masks = _random_masks(rng, 12, 7, 9)
    got = encode_rle_batch(torch.from_numpy(masks))
    assert len(got) == len(masks)
    for ours, mask in zip(got, masks):
        assert ours.dtype == np.uint32
        np.testing.assert_array_equal(ours, encode_rle(mask))
    assert encode_rle_batch(torch.zeros((0, 4, 4), dtype=torch.bool)) == []


@pytest.mark.parametrize("nesting_order", ["part", "object"])
@pytest.mark.parametrize("label_size", [(9, 7), (5, 4), (13, 11)])
def test_device_view_masks_equal_the_numpy_path(nesting_order, label_size):
    rng = np.random.default_rng(1)
    masks = _random_masks(rng, 10, 7, 9)
    masks[6] = False
    masks[6, 2:4, 3:6] = True  # a small nested part
    iou, stab = rng.random(10).astype(np.float32), rng.random(10).astype(np.float32)
    ours = view_masks_from_device(torch.from_numpy(masks), torch.from_numpy(iou), torch.from_numpy(stab), label_size, nesting_order)
    ref = ViewMasks.from_masks(resize_masks(masks, label_size), iou, stab, nesting_order)
    assert len(ours.runs) == len(ref.runs)
    for a, b in zip(ours.runs, ref.runs):
        np.testing.assert_array_equal(a, b)
    for name in ("area", "bbox", "predicted_iou", "stability_score", "segments"):
        got, want = getattr(ours, name), getattr(ref, name)
        assert got.dtype == want.dtype and np.array_equal(got, want), name


def test_stage_stores_equal_with_either_generator(tmp_path):
    """The whole stage: every array of the store equal, batched generator vs official generator."""
    torch.set_num_threads(2)
    prepared = write_prepared(tmp_path / "prep.zarr", {"s0": [0, 3, 4], "s1": [5]}, codec="png")
    options = {"model_type": "tiny", "random_init": True, "tiny": TINY, "amg": LOADED, "encoder_batch": 2,
               "output_size": [64, 48], "features": {"channels": 64, "fit_views": 2}}
    stores = {}
    for name in ("batched", "official"):
        stores[name] = StoreReader(run_sam_stage(prepared, tmp_path / f"{name}.zarr", {**options, "generator": name}), "sam")
    a, b = stores["batched"], stores["official"]
    assert a.attrs["generator"] == "batched" and b.attrs["generator"] == "official"
    assert a.attrs["masks"] == b.attrs["masks"] > 50
    for sid in ("s0", "s1"):
        for array in ("views/mask_offsets", "masks/rle", "masks/rle_offsets", "masks/area", "masks/bbox",
                      "masks/predicted_iou", "masks/stability_score", "views/segments", "views/features", "views/feature_scale"):
            np.testing.assert_array_equal(a.read(sid, array), b.read(sid, array), err_msg=f"{sid} {array}")
