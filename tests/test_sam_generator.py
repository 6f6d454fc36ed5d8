"""One encoder pass per view: masks equal the official SamAutomaticMaskGenerator's, features equal set_image's."""

import numpy as np
import pytest
import torch
from tests.sam_fixtures import TINY_AMG, assert_masks_match, official_masks, one_pass_masks, scene, tiny_sam
from segment_anything import SamPredictor

from pipeline.sam.generator import OnePassMaskGenerator, records_to_arrays


@pytest.fixture(scope="module")
def sam():
    torch.set_num_threads(2)
    return tiny_sam(seed=0)


def test_masks_equal_official_with_one_encoder_pass(sam):
    images = [scene(0)[0], scene(3)[0]]
    gen, out = one_pass_masks(sam, images, **TINY_AMG)
    assert gen.predictor.encoder_passes == len(images), "one encoder pass per view (crop layers 0)"
    total = 0
    for image, (records, embedding) in zip(images, out):
        official, official_records = official_masks(sam, image, **TINY_AMG)
        ours, iou, stability = records_to_arrays(records, image.shape[:2])
        assert_masks_match(ours, official)
        total += len(ours)
        np.testing.assert_allclose(iou, [r["predicted_iou"] for r in official_records], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(stability, [r["stability_score"] for r in official_records], rtol=1e-5, atol=1e-6)
        # the feature map is the embedding a separate SamPredictor.set_image computes
        predictor = SamPredictor(sam)
        predictor.set_image(image)
        torch.testing.assert_close(embedding, predictor.features)
    assert total > 1, "the thresholds must yield masks on the tiny random model"


def test_point_batching_matchesofficial_masks(sam):
    """16 prompts in batches of 5 (the last one partial) give the official result for that batching."""
    image = scene(0)[0]
    amg = {**TINY_AMG, "points_per_side": 4, "points_per_batch": 5}
    _, [(records, _)] = one_pass_masks(sam, [image], **amg)
    official, _ = official_masks(sam, image, **amg)
    assert len(official) > 0
    assert_masks_match(records_to_arrays(records, image.shape[:2])[0], official)


def test_small_region_removal_matchesofficial_masks(sam):
    pytest.importorskip("cv2")
    image = scene(0)[0]
    amg = {**TINY_AMG, "min_mask_region_area": 30}
    _, [(records, _)] = one_pass_masks(sam, [image], **amg)
    official, _ = official_masks(sam, image, **amg)
    assert len(official) > 0
    assert_masks_match(records_to_arrays(records, image.shape[:2])[0], official)


def test_unknown_amg_option_is_a_user_error(sam):
    from pipeline.errors import UserError

    with pytest.raises(UserError, match="sam.amg"):
        OnePassMaskGenerator(sam, {"points_per_sides": 8})
