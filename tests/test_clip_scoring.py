"""Classifier head: CLIP temperature, confidence, synonyms, prompt denoising, key smoothing."""

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.clip import scoring


def test_logits_use_clip_temperature_and_confidence_is_max_softmax():
    feats = F.normalize(torch.randn(1, 8, 2, 3), dim=1)
    text = F.normalize(torch.randn(4, 8), dim=-1)
    logits = scoring.class_logits(feats, text)
    cos = torch.einsum("bdhw,cd->bchw", feats, text)
    torch.testing.assert_close(logits, 100 * cos)
    to_class = torch.tensor([0, 1, 1, 255], dtype=torch.uint8)  # row 2 is a synonym of class 1, row 3 prompt-only
    label, conf = scoring.labels_and_confidence(logits, (2, 3), to_class)
    torch.testing.assert_close(conf.float(), logits.softmax(1).amax(1), atol=1e-3, rtol=1e-3)
    np.testing.assert_array_equal(label.numpy(), to_class[logits.argmax(1)].numpy())


def test_small_cosine_differences_give_decisive_probabilities():
    # cosines 0.25 vs 0.24: with the temperature the winner gets e^1/(1+e^1) ~ 0.73, not ~0.5
    logits = 100 * torch.tensor([0.25, 0.24]).view(1, 2, 1, 1)
    _, conf = scoring.labels_and_confidence(logits, (1, 1), torch.tensor([0, 1], dtype=torch.uint8))
    assert abs(float(conf) - np.e / (1 + np.e)) < 2e-3


def test_upsampling_is_bilinear_of_scores_then_argmax():
    scores = torch.zeros(1, 2, 1, 2)
    scores[0, 0, 0, 0], scores[0, 1, 0, 1] = 10.0, 10.0  # left patch class 0, right patch class 1
    label, _ = scoring.labels_and_confidence(scores, (2, 8), torch.tensor([0, 1], dtype=torch.uint8))
    assert label.shape == (1, 2, 8)
    np.testing.assert_array_equal(label[0, 0].numpy(), [0, 0, 0, 0, 1, 1, 1, 1])


def test_prompt_denoising_suppresses_rows_never_confident_in_the_image():
    logits = torch.zeros(2, 3, 2, 2)
    logits[0, 0] = 5.0  # row 0 wins everywhere in image 0
    logits[0, 1, 0, 0] = 4.9  # row 1 is close somewhere but never above 0.5
    logits[1, 2] = 3.0  # image 1: row 2 wins
    out = scoring.prompt_denoising(logits, 0.5)
    assert torch.all(out[0, 1] == scoring.SUPPRESSED) and torch.all(out[0, 2] == scoring.SUPPRESSED)
    torch.testing.assert_close(out[0, 0], logits[0, 0])
    assert torch.all(out[1, 2] == 3.0) and torch.all(out[1, 0] == scoring.SUPPRESSED)
    # the best row survives even when nothing reaches the threshold
    flat = scoring.prompt_denoising(torch.zeros(1, 4, 2, 2), 0.9)
    assert (flat[0, :, 0, 0] != scoring.SUPPRESSED).sum() == 1


def test_key_smoothing_averages_low_confidence_patches_over_similar_keys():
    # 3 patches: 0 and 1 have identical keys, 2 is orthogonal. Patch 1 is unsure, patch 0 sure of class 0.
    logits = torch.tensor([[8.0, 0.0], [0.2, 0.0], [0.0, 8.0]]).T.reshape(1, 2, 1, 3)
    keys = torch.tensor([[[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]]])
    probs = logits.softmax(1).reshape(2, 3).T
    out = scoring.key_smoothing(logits, keys, threshold=0.9).exp().reshape(2, 3).T
    torch.testing.assert_close(out[1], (probs[0] + probs[1]) / 2)  # mean of the two same-key patches
    torch.testing.assert_close(out[0], probs[0])  # confident patches are kept
    torch.testing.assert_close(out[2], probs[2])
    everything = scoring.key_smoothing(logits, keys, threshold=1.0).exp().reshape(2, 3).T
    torch.testing.assert_close(everything[0], (probs[0] + probs[1]) / 2)  # threshold 1: all patches smoothed
