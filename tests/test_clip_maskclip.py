"""MaskCLIP dense features and logits against independent step-by-step references."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pipeline.clip import scoring
from pipeline.clip.maskclip import MaskClipEncoder, resize_positional_embedding
from tests.clip_helpers import tiny_clip


def _explicit_maskclip(visual, images, pos):
    """The MaskCLIP formula written out from the weights (no open_clip block code in the last block)."""
    b = images.shape[0]
    w = visual.conv1.weight  # (width, 3, p, p)
    p = w.shape[-1]
    patches = images.unfold(2, p, p).unfold(3, p, p)  # (B, 3, gh, gw, p, p)
    gh, gw = patches.shape[2], patches.shape[3]
    tokens = torch.einsum("bchwij,ocij->bhwo", patches, w).reshape(b, gh * gw, -1)
    x = torch.cat([visual.class_embedding.expand(b, 1, -1), tokens], 1) + pos
    x = F.layer_norm(x, x.shape[-1:], visual.ln_pre.weight, visual.ln_pre.bias, visual.ln_pre.eps)
    blocks = visual.transformer.resblocks
    for blk in blocks[:-1]:
        x = blk(x)  # standard blocks: full attention, as in CLIP
    last = blocks[-1]
    width = x.shape[-1]
    y = F.layer_norm(x, (width,), last.ln_1.weight, last.ln_1.bias, last.ln_1.eps)
    v = y @ last.attn.in_proj_weight[2 * width:].T + last.attn.in_proj_bias[2 * width:]
    a = v @ last.attn.out_proj.weight.T + last.attn.out_proj.bias
    x = x + a
    h = F.layer_norm(x, (width,), last.ln_2.weight, last.ln_2.bias, last.ln_2.eps)
    h = h @ last.mlp.c_fc.weight.T + last.mlp.c_fc.bias
    h = h * torch.sigmoid(1.702 * h)  # QuickGELU (the tiny config is a -quickgelu model)
    h = h @ last.mlp.c_proj.weight.T + last.mlp.c_proj.bias
    x = x + h
    x = F.layer_norm(x, (width,), visual.ln_post.weight, visual.ln_post.bias, visual.ln_post.eps)
    f = x[:, 1:] @ visual.proj
    f = f / f.norm(dim=-1, keepdim=True)
    return f.transpose(1, 2).reshape(b, -1, gh, gw)


def _masked_attention_reference(visual, images):
    """Same thing another way: the standard open_clip forward with the last block's attention
    restricted to the diagonal (each token attends only to itself = its value path)."""
    x = visual._embeds(images)
    blocks = visual.transformer.resblocks
    for blk in blocks[:-1]:
        x = blk(x)
    n = x.shape[1]
    mask = torch.full((n, n), float("-inf"))
    mask.fill_diagonal_(0.0)
    x = blocks[-1](x, attn_mask=mask)
    f = visual.ln_post(x)[:, 1:] @ visual.proj
    return F.normalize(f, dim=-1)


def test_dense_logits_equal_explicit_maskclip_formula_at_native_size():
    loaded = tiny_clip(seed=1)
    visual = loaded.model.visual
    enc = MaskClipEncoder(visual)
    torch.manual_seed(0)
    images = torch.randn(3, 3, 64, 64)
    text = F.normalize(torch.randn(7, 32), dim=-1)
    with torch.no_grad():
        dense = enc(images).features
        expected = _explicit_maskclip(visual, images, visual.positional_embedding)
        other = _masked_attention_reference(visual, images).transpose(1, 2).reshape(3, -1, 4, 4)
        logits = scoring.class_logits(dense, text)
        expected_logits = 100.0 * torch.einsum("bdhw,cd->bchw", expected, text)
    assert dense.shape == (3, 32, 4, 4)
    torch.testing.assert_close(dense.norm(dim=1), torch.ones(3, 4, 4))
    torch.testing.assert_close(dense, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(dense, other, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits, expected_logits, atol=1e-3, rtol=1e-5)
    # the value path differs from CLIP's own last block (attention mixes tokens): not a tautology
    with torch.no_grad():
        standard = visual.ln_post(visual.transformer(visual._embeds(images)))[:, 1:] @ visual.proj
    assert not torch.allclose(F.normalize(standard, dim=-1).transpose(1, 2).reshape(3, -1, 4, 4), dense, atol=1e-3)


def test_positional_embedding_identity_at_native_grid_and_axes_for_non_square():
    pos = torch.randn(1 + 16, 8)
    assert resize_positional_embedding(pos, (4, 4), (4, 4)) is pos
    # channel 0 ramps along columns, channel 1 along rows: resizing to 6 rows x 10 cols must keep that
    rows, cols = torch.meshgrid(torch.arange(4.0), torch.arange(4.0), indexing="ij")
    pos[1:, 0] = cols.reshape(-1)
    pos[1:, 1] = rows.reshape(-1)
    out = resize_positional_embedding(pos, (4, 4), (6, 10))
    assert out.shape == (1 + 60, 8)
    torch.testing.assert_close(out[0], pos[0])
    grid = out[1:].reshape(6, 10, 8)
    assert torch.all(grid[:, 1:, 0] >= grid[:, :-1, 0] - 1e-5)  # increases along W
    torch.testing.assert_close(grid[:, :, 0], grid[:1, :, 0].expand(6, 10))  # constant along H
    torch.testing.assert_close(grid[:, :, 1], grid[:, :1, 1].expand(6, 10))  # constant along W
    assert grid[0, 0, 1] < grid[-1, 0, 1]
    expected = F.interpolate(pos[1:].reshape(1, 4, 4, 8).permute(0, 3, 1, 2), size=(6, 10), mode="bicubic", align_corners=False)
    torch.testing.assert_close(grid, expected[0].permute(1, 2, 0))


def test_non_native_input_uses_resized_positional_embedding():
    loaded = tiny_clip(seed=2)
    visual = loaded.model.visual
    enc = MaskClipEncoder(visual)
    images = torch.randn(2, 3, 96, 160)  # 6 x 10 patches; native is 4 x 4
    with torch.no_grad():
        dense = enc(images).features
        pos = resize_positional_embedding(visual.positional_embedding, (4, 4), (6, 10))
        expected = _explicit_maskclip(visual, images, pos)
    assert dense.shape == (2, 32, 6, 10)
    torch.testing.assert_close(dense, expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(Exception, match="multiple of the patch"):
        enc(torch.randn(1, 3, 70, 64))


def test_fp32_labels_identical_for_batch_1_and_8():
    from pipeline.clip.labeller import MaskClipLabeller
    from pipeline.vocab import prompt_vocabulary

    loaded = tiny_clip(seed=3)
    vocab = prompt_vocabulary("scannet20")
    labeller = MaskClipLabeller(loaded, vocab, ["scene"], {"device": "cpu", "precision": "fp32"})
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 48, 64, 3), dtype=np.uint8)
    whole = labeller.label(images, (64, 48), keep_scores=True)
    singles = [labeller.label(images[i : i + 1], (64, 48), keep_scores=True) for i in range(8)]
    np.testing.assert_array_equal(whole.label, np.concatenate([s.label for s in singles]))
    np.testing.assert_allclose(whole.confidence.astype(np.float32), np.concatenate([s.confidence for s in singles]).astype(np.float32), atol=1e-3)
    assert whole.scores.shape == (8, len(vocab.names), 3, 4)
    assert len(np.unique(whole.label)) > 1  # a degenerate labeller would make this test vacuous


def test_bf16_encoder_keeps_head_in_fp32():
    from pipeline.clip.labeller import MaskClipLabeller
    from pipeline.vocab import prompt_vocabulary

    loaded = tiny_clip(seed=4)
    labeller = MaskClipLabeller(loaded, prompt_vocabulary("scannet20"), ["scene"], {"device": "cpu", "precision": "bf16"})
    images = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        dense = labeller.encoder(labeller.preprocess(images))
    assert dense.features.dtype == torch.float32
    out = labeller.label(images, (32, 32))
    assert out.label.dtype == np.uint8 and out.confidence.dtype == np.float16
