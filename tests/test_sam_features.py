"""Feature storage: per-store PCA basis + int8 coefficients, decode_features, no model imports."""

import subprocess
import sys

import numpy as np
import pytest

from pipeline.sam.features import mean_cosine, valid_region
from pipeline.stores.sam_codecs import decode_features, encode_features, fit_basis


def _low_rank(n=3000, rank=20, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, rank)) @ rng.standard_normal((rank, 256)) + 3.0).astype(np.float32)


def test_basis_is_orthonormal_and_deterministic():
    data = _low_rank(rank=40) + 0.01 * np.random.default_rng(5).standard_normal((3000, 256)).astype(np.float32)
    basis, mean = fit_basis(data, 32)
    assert basis.shape == (32, 256) and basis.dtype == np.float32 and mean.shape == (256,)
    np.testing.assert_allclose(basis @ basis.T, np.eye(32), atol=1e-5)
    again, _ = fit_basis(data[::-1].copy(), 32)
    np.testing.assert_allclose(np.abs(again), np.abs(basis), atol=1e-4)
    np.testing.assert_allclose(again, basis, atol=1e-4)  # sign convention makes it identical
    ident, zero = fit_basis(data, 256)
    np.testing.assert_array_equal(ident, np.eye(256, dtype=np.float32))
    assert not zero.any()


def test_round_trip_within_quantisation_error():
    data = _low_rank(rank=20)
    basis, mean = fit_basis(data, 32)  # rank 20 < 32: the projection is lossless
    q, scale = encode_features(data, basis, mean)
    assert q.dtype == np.int8 and scale.dtype == np.float16 and q.shape == (3000, 32)
    coef = (data - mean) @ basis.T
    back = decode_features(q, scale, basis, mean, space="reduced")
    assert np.all(np.abs(back - coef) <= scale.astype(np.float32)[:, None] * 0.5 + 1e-6)
    assert mean_cosine(data, decode_features(q, scale, basis, mean)) > 0.999
    assert np.abs(q).max() == 127


def test_reduction_keeps_the_dominant_subspace():
    rng = np.random.default_rng(1)
    spectrum = 1.0 / (1 + np.arange(256)) ** 0.8  # decaying, like real embeddings
    data = (rng.standard_normal((4000, 256)) * spectrum) @ np.linalg.qr(rng.standard_normal((256, 256)))[0]
    data = data.astype(np.float32)
    fit, test = data[:2000], data[2000:]
    cos = {}
    for channels in (8, 64, 256):
        basis, mean = fit_basis(fit, channels)
        q, scale = encode_features(test, basis, mean)
        cos[channels] = mean_cosine(test, decode_features(q, scale, basis, mean))
    assert cos[8] < cos[64] - 0.05 and cos[64] > 0.95 and cos[256] > 0.999


def test_zero_vectors_and_shapes():
    basis, mean = fit_basis(_low_rank(), 16)
    feats = np.repeat(mean[None, None], 3, axis=0).reshape(3, 1, 256)  # exactly the mean: zero coefficients
    q, scale = encode_features(feats, basis, mean)
    assert q.shape == (3, 1, 16) and scale.shape == (3, 1) and not q.any() and not scale.any()
    np.testing.assert_allclose(decode_features(q, scale, basis, mean), feats, atol=1e-6)
    with pytest.raises(ValueError, match="space"):
        decode_features(q, scale, basis, mean, space="clip")


def test_valid_region_crops_top_left_channels_last():
    emb = np.arange(256 * 64 * 64, dtype=np.float32).reshape(256, 64, 64)
    out = valid_region(emb, (48, 64))
    assert out.shape == (48, 64, 256)
    np.testing.assert_array_equal(out[5, 7], emb[:, 5, 7])
    with pytest.raises(ValueError):
        valid_region(emb, (65, 64))


def test_decoding_modules_import_no_model_library():
    code = (
        "import sys, pipeline.sam.features, pipeline.sam.masks; "
        "bad = [m for m in ('torch', 'segment_anything', 'open_clip') if m in sys.modules]; "
        "sys.exit(f'imported {bad}' if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
