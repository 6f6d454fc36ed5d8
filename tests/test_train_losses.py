"""CNS losses: target switching draws, ignore handling, latent loss against a hand computation."""

import numpy as np
import pytest
import torch

from pipeline.vocab import IGNORE
from train.data.pairs import label_pixels_to_cells
from train.losses.cns import cross_entropy
from train.losses.latent import latent_loss_2d, latent_loss_3d
from train.losses.switching import draw_targets, origin_weights
from pipeline.voting import segment_majority, segment_majority_torch


def _u8(values):
    return torch.tensor(values, dtype=torch.uint8)


def test_switching_draws_among_both_modalities_with_equal_share():
    n = 20000
    own = _u8([[1] * n])  # origin "pseudo": the pixel's refined label
    paired = _u8([[2] * n])  # the paired point's voted label
    g = torch.Generator().manual_seed(0)
    t = draw_targets(own, paired, torch.tensor([1.0]), g)
    share = (t == 2).float().mean().item()
    assert set(t.unique().tolist()) == {1, 2}
    assert abs(share - 0.5) < 0.02
    # no switching: always the own modality
    assert (draw_targets(own, None, torch.tensor([1.0]), g) == 1).all()


def test_unpaired_and_ignored_realisations_are_not_drawn():
    own = _u8([[1, 1, IGNORE, IGNORE]])
    paired = _u8([[IGNORE, 3, 3, IGNORE]])
    g = torch.Generator().manual_seed(1)
    draws = torch.stack([draw_targets(own, paired, torch.tensor([1.0]), g) for _ in range(200)])
    assert (draws[:, 0] == 1).all()  # unpaired: own modality only
    assert set(draws[:, 1].tolist()) == {1, 3}
    assert (draws[:, 2] == 3).all()  # own ignored: the paired realisation
    assert (draws[:, 3] == IGNORE).all()  # nothing available: ignored


def test_source_weights_and_network_perspective():
    origins = ["pseudo", "pred2d", "pred3d"]
    sources = {"pseudo": 1.0, "self": 2.0, "cross": 0.0}
    assert origin_weights(sources, "2d", origins).tolist() == [1.0, 2.0, 0.0]
    assert origin_weights(sources, "3d", origins).tolist() == [1.0, 0.0, 2.0]
    n = 30000
    own = _u8([[0] * n, [1] * n, [2] * n])
    g = torch.Generator().manual_seed(2)
    t = draw_targets(own, None, origin_weights(sources, "2d", origins), g)
    counts = torch.bincount(t, minlength=3).float() / n
    assert counts[2] == 0  # weight 0 disables an origin
    assert abs(counts[1].item() - 2 / 3) < 0.02


def test_draws_are_reproducible_per_generator_seed():
    own = torch.randint(0, 5, (2, 1000), dtype=torch.uint8)
    paired = torch.randint(0, 5, (2, 1000), dtype=torch.uint8)
    w = torch.tensor([1.0, 1.0])
    a = draw_targets(own, paired, w, torch.Generator().manual_seed(5))
    b = draw_targets(own, paired, w, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_cross_entropy_respects_ignore():
    logits = torch.randn(4, 3, requires_grad=True)
    target = torch.tensor([0, IGNORE, 2, IGNORE])
    loss = cross_entropy(logits, target)
    expected = torch.nn.functional.cross_entropy(logits[[0, 2]], target[[0, 2]])
    assert torch.allclose(loss, expected)
    all_ignored = cross_entropy(logits, torch.full((4,), IGNORE))
    assert all_ignored.item() == 0.0
    all_ignored.backward()  # still a graph, no NaN
    assert torch.isfinite(logits.grad).all()


def test_cell_mapping_matches_sam_resize_by_hand():
    # labels at 40x30, working images at 80x60: SAM resizes 80 -> 1024 (x12.8), 16-pixel cells
    cells = label_pixels_to_cells((40, 30), (80, 60)).reshape(30, 40)
    for y, x in [(0, 0), (7, 13), (29, 39), (15, 20)]:
        xw, yw = 2 * x + 1, 2 * y + 1  # label pixel centre (x + 0.5) * 2 -> working pixel 2x + 1
        col = int(np.floor((xw + 0.5) * 12.8 / 16))
        row = int(np.floor((yw + 0.5) * 12.8 / 16))
        assert cells[y, x] == row * 64 + col
    assert cells.max() == 47 * 64 + 63  # 4:3 -> 48 x 64 valid cells


def test_latent_loss_2d_matches_explicit_upsample_and_cosine():
    torch.manual_seed(0)
    v, d, h, w = 2, 5, 16, 24
    latent = torch.randn(v, d, h // 8, w // 8)
    feats = torch.randn(7, d)
    cells = torch.randint(0, 7, (v, h, w))
    cells[0, :2] = -1  # padding
    loss = latent_loss_2d(latent, cells, feats, per_view=0)
    up = torch.nn.functional.interpolate(latent, size=(h, w), mode="bilinear", align_corners=False)
    total, count = 0.0, 0
    for i in range(v):
        for y in range(h):
            for x in range(w):
                c = int(cells[i, y, x])
                if c < 0:
                    continue
                a, b = up[i, :, y, x], feats[c]
                total += 1 - float(a @ b / (a.norm() * b.norm()))
                count += 1
    assert loss.item() == pytest.approx(total / count, rel=1e-5)
    sampled = latent_loss_2d(latent, cells, feats, per_view=50, generator=torch.Generator().manual_seed(0))
    assert 0 < sampled.item() < 2


def test_latent_loss_3d_uses_paired_rows_only():
    latent = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    feats = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    index = torch.tensor([1, -1, 0])
    expected = ((1 - 0.0) + (1 - 1 / np.sqrt(2))) / 2
    assert latent_loss_3d(latent, index, feats).item() == pytest.approx(expected, rel=1e-6)
    assert latent_loss_3d(latent, torch.full((3,), -1), feats).item() == 0.0


def test_segment_vote_majority_inside_segments_only():
    labels = np.array([[1, 1, 2, 5], [IGNORE, 2, 2, 5]], np.uint8)
    segs = np.array([[0, 0, 0, -1], [0, 1, 1, -1]], np.int32)
    out = segment_majority(labels, segs, n_classes=20)
    # segment 0 votes {1, 1, 2} -> 1 (the ignore pixel inside it takes the majority too)
    assert out.tolist() == [[1, 1, 1, 5], [1, 2, 2, 5]]
    torch_out = segment_majority_torch(torch.from_numpy(labels).long(), torch.from_numpy(segs).long(), 20)
    assert torch_out.tolist() == out.tolist()


def test_switch_shares_count_targets_that_are_not_the_own_pseudo_label():
    from types import SimpleNamespace

    from train.losses.cns import CNSLoss

    own3d = _u8([[1, 1, 2, IGNORE]])
    t3d = torch.tensor([1, 3, 2, 4])  # 4: drawn from the paired pixel where the point has no own label
    own2d = _u8([[[[0, 0], [IGNORE, 1]]]])
    t2d = torch.tensor([[[0, 5], [IGNORE, 1]]])
    shares = CNSLoss.switch_shares(None, SimpleNamespace(own2d=own2d, own3d=own3d), t2d, t3d)
    assert shares == {"switch2d": pytest.approx(1 / 3), "switch3d": pytest.approx(2 / 4)}


def test_pseudo_label_fit_is_the_share_of_labelled_elements_predicted_as_labelled():
    from types import SimpleNamespace

    from train.losses.cns import CNSLoss

    logits3d = torch.eye(3)[[0, 1, 2, 2]] * 5  # predicts 0, 1, 2, 2
    own3d = _u8([[0, 2, 2, IGNORE]])
    logits2d = torch.zeros(1, 3, 1, 2)
    logits2d[0, 1] = 1.0  # predicts 1 everywhere
    own2d = _u8([[[[1, 0]]]])
    fit = CNSLoss.pseudo_label_fit({"logits3d": logits3d, "logits2d": logits2d}, SimpleNamespace(own2d=own2d, own3d=own3d))
    assert fit == {"fit2d": pytest.approx(0.5), "fit3d": pytest.approx(2 / 3)}
