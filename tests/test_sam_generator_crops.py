"""Crop layers and encoder batching of the one-pass generator, against the official generator."""

import pytest
import torch
from tests.sam_fixtures import TINY_AMG, assert_masks_match, official_masks, one_pass_masks, scene, tiny_sam
from segment_anything import SamPredictor
from segment_anything import automatic_mask_generator as amg_module

from pipeline.sam.generator import records_to_arrays


@pytest.fixture(scope="module")
def sam():
    torch.set_num_threads(2)
    return tiny_sam(seed=0)


def test_crop_layers_matchofficial_masks(sam):
    image = scene(5, h=120, w=160)[0]
    amg = {**TINY_AMG, "crop_n_layers": 1, "crop_n_points_downscale_factor": 2}
    gen, [(records, embedding)] = one_pass_masks(sam, [image], **amg)
    assert gen.predictor.encoder_passes == 1 + 4, "full image once (shared with features) + 4 crops"
    official, _ = official_masks(sam, image, **amg)
    assert len(official) > 0
    assert_masks_match(records_to_arrays(records, image.shape[:2])[0], official)
    predictor = SamPredictor(sam)
    predictor.set_image(image)
    torch.testing.assert_close(embedding, predictor.features)


def test_crop_masks_match_official_when_crops_keep_masks(sam, monkeypatch):
    """Random masks span their whole crop, so SAM's crop-edge filter drops every crop mask; with that
    filter disabled (for both generators) crop masks survive and go through uncropping and crop NMS."""
    monkeypatch.setattr(amg_module, "is_box_near_crop_edge", lambda boxes, *a, **k: torch.zeros(len(boxes), dtype=torch.bool))
    image = scene(5, h=120, w=160)[0]
    amg = {**TINY_AMG, "crop_n_layers": 1, "crop_n_points_downscale_factor": 2}
    _, [(records, _)] = one_pass_masks(sam, [image], **amg)
    official, official_records = official_masks(sam, image, **amg)
    crops = {tuple(r["crop_box"]) for r in official_records}
    assert len(crops) > 1, "masks from crops must be present"
    assert_masks_match(records_to_arrays(records, image.shape[:2])[0], official)
    assert [r["crop_box"] for r in records] == [r["crop_box"] for r in official_records]


def test_encoder_batch_gives_the_same_masks(sam):
    images = [scene(0)[0], scene(4)[0]]
    amg = {**TINY_AMG, "points_per_side": 4}
    gen1, single = one_pass_masks(sam, images, **amg)
    gen2, batched = one_pass_masks(sam, images, encoder_batch=2, **amg)
    assert gen2.predictor.encoder_passes == 1
    for image, (r1, e1), (r3, e3) in zip(images, single, batched):
        torch.testing.assert_close(e1, e3, rtol=1e-4, atol=1e-4)
        assert_masks_match(records_to_arrays(r3, image.shape[:2])[0], records_to_arrays(r1, image.shape[:2])[0])
