"""The pixel -> SAM cell mapping (pipeline.camera.sam_cell_index) against what SAM's encoder actually sees.

A bright square is placed in a black image; the embedding cells whose tokens change are compared
with the cells the mapping predicts for the square's pixels. Near the bottom of the image SAM's
resize-and-pad geometry and the naive ``64 / H`` scaling disagree by many rows, so a wrong
mapping fails.
"""

import numpy as np
import pytest
import torch

from pipeline.camera import sam_cell_index, sam_valid_grid
from pipeline.sam.backends import SegmentAnythingBackend
from pipeline.sam.generator import OnePassPredictor
from pipeline.sam.model import LoadedSam, build_sam

# (image size (W, H), square x0, x1, y0, y1 inclusive, valid grid): edges kept >= 3 pixels away
# from cell boundaries (10 px per cell at 640 wide, 25 px at 1600 wide) so resampling blur
# cannot reach a neighbouring cell.
CASES = [
    ((640, 480), 403, 436, 404, 446, (48, 64)),  # 4:3, rows 40..44 (naive 64/H: 53..59)
    ((1600, 900), 205, 290, 705, 840, (36, 64)),  # 16:9, rows 28..33 (naive: 50..59)
]


def _square_image(size, x0, x1, y0, y1):
    image = np.zeros((size[1], size[0], 3), np.uint8)
    image[y0 : y1 + 1, x0 : x1 + 1] = 255
    return image


def _predicted_cells(size, x0, x1, y0, y1):
    ys, xs = np.mgrid[y0 : y1 + 1, x0 : x1 + 1]
    cells = sam_cell_index(np.stack([xs.ravel(), ys.ravel()], axis=1), size)
    return {(int(r), int(c)) for c, r in cells}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_sam("tiny", {"image_size": 1024, "depth": 0, "global_attn_indexes": []})


@pytest.mark.parametrize("size,x0,x1,y0,y1,grid", CASES)
def test_square_lands_in_predicted_patch_tokens(model, size, x0, x1, y0, y1, grid):
    """Patch tokens (before any mixing) change exactly in the predicted cells, never in padding."""
    assert sam_valid_grid(size) == grid
    predictor = OnePassPredictor(model)

    def tokens(image):
        x = torch.as_tensor(predictor.transform.apply_image(image)).permute(2, 0, 1)[None].contiguous()
        with torch.no_grad():
            return model.image_encoder.patch_embed(model.preprocess(x))[0]  # (64, 64, C)

    base = tokens(_square_image(size, 0, -1, 0, -1))
    changed = (tokens(_square_image(size, x0, x1, y0, y1)) - base).abs().amax(-1) > 1e-4
    got = {(int(r), int(c)) for r, c in zip(*np.nonzero(changed.numpy()))}
    want = _predicted_cells(size, x0, x1, y0, y1)
    assert got == want
    naive_rows = {int((y + 0.5) * 64 / size[1]) for y in (y0, y1)}
    assert not naive_rows & {r for r, _ in want}, "the case must separate SAM's mapping from 64/H"


@pytest.mark.parametrize("size,x0,x1,y0,y1,grid", CASES)
def test_square_lands_in_predicted_stored_feature_cells(model, size, x0, x1, y0, y1, grid):
    """Through the stage's backend: the stored (valid-region) features change at the predicted cells;
    with an encoder of no transformer blocks only the neck's 3x3 convolution spreads it, by one cell."""
    loaded = LoadedSam(model, "tiny", "random-init", None)
    backend = SegmentAnythingBackend(loaded, {"points_per_side": 1, "pred_iou_thresh": 0, "stability_score_thresh": 0})
    label_size = (size[0] // 4, size[1] // 4)
    (_, base), (_, feats) = backend.run_images(
        [_square_image(size, 0, -1, 0, -1), _square_image(size, x0, x1, y0, y1)], label_size
    )
    assert base.shape == (*grid, 256) and feats.shape == (*grid, 256)
    change = np.linalg.norm(feats - base, axis=-1)
    want = _predicted_cells(size, x0, x1, y0, y1)
    peak = np.unravel_index(np.argmax(change), change.shape)
    assert (int(peak[0]), int(peak[1])) in want
    assert all(change[r, c] > 0.05 * change.max() for r, c in want)
    near = {(r + dr, c + dc) for r, c in want for dr in (-1, 0, 1) for dc in (-1, 0, 1)}
    far = [change[r, c] for r in range(grid[0]) for c in range(grid[1]) if (r, c) not in near]
    assert max(far) < 1e-3 * change.max()


def test_label_resolution_pixels_map_like_working_pixels():
    """A label-resolution pixel (half size, same aspect) maps to the cell of the working pixels it covers."""
    work, label = (640, 480), (320, 240)
    ys, xs = np.mgrid[0:240, 0:320]
    small = sam_cell_index(np.stack([xs.ravel(), ys.ravel()], 1), label)
    big = sam_cell_index(np.stack([2 * xs.ravel(), 2 * ys.ravel()], 1), work)
    np.testing.assert_array_equal(small, big)
