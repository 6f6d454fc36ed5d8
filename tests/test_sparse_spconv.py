"""The spconv backend against the torch backend: each layer alone and a tiny MinkUNet, same weights
(converted by train/models/convert_spconv.py), same sites, compared row by row at the same
coordinates. Runs where spconv imports (.ci/run installs its CPU build)."""

from __future__ import annotations

import pytest
import torch

spconv = pytest.importorskip("spconv")

from tests.test_sparse_conv import random_sites  # noqa: E402
from tests.test_sparse_minkunet import scene_batch  # noqa: E402
from train.models.convert_spconv import from_spconv, kernel_to_spconv, to_spconv  # noqa: E402
from train.models.minkunet import MINKUNET_TINY, MinkUNet34  # noqa: E402
from train.sparse import TorchBackend, get_backend, spconv_available  # noqa: E402
from train.sparse.spconv_backend import SpconvBackend  # noqa: E402

LO = -520
"""Sites start here: negative, and across a multiple of 512 (the backend's origin alignment)."""


@pytest.fixture(scope="module")
def backends() -> tuple[TorchBackend, SpconvBackend]:
    return TorchBackend(), get_backend("spconv")  # type: ignore[return-value]


def _sites(seed: int, grid: int = 10, fill: float = 0.3) -> torch.Tensor:
    return random_sites(2, grid, fill, seed=seed, lo=LO)


def _copy_weights(src: torch.nn.Module, dst: torch.nn.Module) -> None:
    dst.load_state_dict(to_spconv(src.state_dict()))


def _assert_same_rows(ref_t, out_s, backend: SpconvBackend, tol: float = 1e-10) -> torch.Tensor:  # noqa: ANN001
    """The spconv tensor has exactly the torch tensor's sites and, at each, the same features."""
    assert out_s.stride == ref_t.stride and len(out_s) == len(ref_t)
    got = backend.features_in_order(out_s, ref_t.coords)  # KeyError if a site is missing
    torch.testing.assert_close(got, ref_t.features, rtol=tol, atol=tol)
    return got


@pytest.mark.parametrize("k", [1, 3, 5])
def test_stride1_conv_matches_torch_backend_with_gradients(backends, k: int) -> None:
    tb, sb = backends
    coords = _sites(seed=k)
    feats = torch.randn(coords.shape[0], 3, dtype=torch.float64, requires_grad=True)
    tm = tb.conv(3, 4, k, bias=True).double()
    with torch.no_grad():
        tm.bias.normal_()
    sm = sb.conv(3, 4, k, bias=True).double()
    _copy_weights(tm, sm)
    yt, ys = tm(tb.tensor(feats, coords)), sm(sb.tensor(feats, coords))
    assert sb.rows_of(ys, coords) is None  # submanifold: the input's rows, in its order
    torch.testing.assert_close(sb.features(ys), yt.features, rtol=1e-10, atol=1e-10)
    g = torch.randn_like(yt.features)
    gx_t, gw_t = torch.autograd.grad((yt.features * g).sum(), (feats, tm.weight))
    gx_s, gw_s, gb_s = torch.autograd.grad((sb.features(ys) * g).sum(), (feats, sm.weight, sm.bias))
    torch.testing.assert_close(gx_s, gx_t, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gw_s, kernel_to_spconv(gw_t), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gb_s, g.sum(0), rtol=1e-10, atol=1e-10)


def test_strided_conv_floors_negative_sites_like_the_torch_backend(backends) -> None:
    tb, sb = backends
    coords = _sites(seed=11)
    feats = torch.randn(coords.shape[0], 3, dtype=torch.float64, requires_grad=True)
    tm, sm = tb.conv(3, 5, 2, stride=2).double(), sb.conv(3, 5, 2, stride=2).double()
    _copy_weights(tm, sm)
    yt, ys = tm(tb.tensor(feats, coords)), sm(sb.tensor(feats, coords))
    assert yt.stride == 2 and bool((yt.coords[:, 1:] < 0).any())
    got = _assert_same_rows(yt, ys, sb)
    g = torch.randn_like(yt.features)
    gx_t, gw_t = torch.autograd.grad((yt.features * g).sum(), (feats, tm.weight))
    gx_s, gw_s = torch.autograd.grad((got * g).sum(), (feats, sm.weight))
    torch.testing.assert_close(gx_s, gx_t, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gw_s, kernel_to_spconv(gw_t), rtol=1e-10, atol=1e-10)


def test_transposed_conv_returns_onto_the_original_sites(backends) -> None:
    """Down on each backend (so each has its own way back), the same coarse features on both,
    then the transposed convolution alone."""
    tb, sb = backends
    coords = _sites(seed=12)
    feats = torch.randn(coords.shape[0], 2, dtype=torch.float64)
    down_t, down_s = tb.conv(2, 3, 2, stride=2).double(), sb.conv(2, 3, 2, stride=2).double()
    _copy_weights(down_t, down_s)
    coarse_t, coarse_s = down_t(tb.tensor(feats, coords)), down_s(sb.tensor(feats, coords))
    values = torch.randn(len(coarse_t), 3, dtype=torch.float64, requires_grad=True)
    rows = sb.rows_of(coarse_s, coarse_t.coords)
    in_s = values.new_zeros(len(coarse_s), 3).index_copy(0, rows, values)
    up_t, up_s = tb.conv_transpose(3, 4, 2, stride=2).double(), sb.conv_transpose(3, 4, 2, stride=2).double()
    _copy_weights(up_t, up_s)
    yt, ys = up_t(coarse_t.replace(values)), up_s(coarse_s.replace(in_s))
    assert yt.stride == ys.stride == 1
    got = _assert_same_rows(yt, ys, sb)
    assert sb.rows_of(ys, coords) is None  # back on the input's rows, in the input's order
    g = torch.randn_like(yt.features)
    gv_t, gw_t = torch.autograd.grad((yt.features * g).sum(), (values, up_t.weight))
    gv_s, gw_s = torch.autograd.grad((got * g).sum(), (values, up_s.weight))
    torch.testing.assert_close(gv_s, gv_t, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gw_s, kernel_to_spconv(gw_t), rtol=1e-10, atol=1e-10)


def test_spconv_1x1_kernel_reads_its_weight_as_c_in_by_c_out() -> None:
    """The layout fact convert_spconv relies on for 1x1x1 kernels (measured on spconv 2.3.8); if a
    spconv release changes it, kernel_to_spconv must change with it."""
    import spconv.pytorch as sp

    x = sp.SparseConvTensor(torch.randn(3, 2, dtype=torch.float64), torch.tensor([[0, 1, 2, 3], [0, 2, 2, 2], [0, 5, 1, 0]], dtype=torch.int32), [8, 8, 8], 1)
    m = sp.SubMConv3d(2, 3, 1, bias=False).double()
    w = torch.randn(1, 2, 3, dtype=torch.float64)  # ours: (1, C_in, C_out)
    with torch.no_grad():
        m.weight.copy_(kernel_to_spconv(w))
    torch.testing.assert_close(m(x).features, x.features @ w[0])


def test_layer_checks(backends) -> None:
    tb, sb = backends
    coords = _sites(seed=13)
    x = sb.tensor(torch.randn(coords.shape[0], 2), coords)
    assert x.origin == (-1024, -1024, -1024) and x.sp.spatial_shape == [1024, 1024, 1024]  # sites -520 .. -511
    assert bool((x.sp.indices >= 0).all()) and torch.equal(x.coords, coords)
    with pytest.raises(ValueError, match="no down convolution"):
        sb.conv_transpose(2, 2, 2, stride=2)(x)
    with pytest.raises(ValueError, match="kernel size = stride"):
        sb.conv(2, 2, 3, stride=2)
    with pytest.raises(ValueError, match="odd kernel"):
        sb.conv(2, 2, 2)
    coarse = sb.conv(2, 2, 2, stride=2)(x)
    with pytest.raises(ValueError, match="same sites"):
        sb.cat(x, coarse)
    with pytest.raises(ValueError, match="same sites"):
        x + sb.tensor(torch.randn(coords.shape[0], 2), coords.flip(0))  # same sites, other order
    with pytest.raises(ValueError, match="stride-2 convolution"):
        sb.conv_transpose(2, 2, 4, stride=4)(coarse)
    with pytest.raises(ValueError, match="duplicate"):
        sb.tensor(torch.zeros(2, 2), torch.tensor([[0, -3, 2, 1], [0, -3, 2, 1]], dtype=torch.int32))
    with pytest.raises(KeyError):
        sb.rows_of(coarse, coords)  # stride-1 sites are not sites of the stride-2 tensor


def test_down_up_down_again_builds_fresh_index_pairs(backends) -> None:
    """A second visit to a coarser stride goes through its own down convolution, not a stale key."""
    tb, sb = backends
    coords = _sites(seed=14)
    feats = torch.randn(coords.shape[0], 2, dtype=torch.float64)
    mods_t = [tb.conv(2, 2, 2, stride=2), tb.conv_transpose(2, 2, 2, stride=2), tb.conv(2, 2, 3), tb.conv(2, 2, 2, stride=2),
              tb.conv(2, 2, 3), tb.conv_transpose(2, 2, 2, stride=2)]
    mods_s = [sb.conv(2, 2, 2, stride=2), sb.conv_transpose(2, 2, 2, stride=2), sb.conv(2, 2, 3), sb.conv(2, 2, 2, stride=2),
              sb.conv(2, 2, 3), sb.conv_transpose(2, 2, 2, stride=2)]
    yt, ys = tb.tensor(feats, coords), sb.tensor(feats, coords)
    for mt, ms in zip(mods_t, mods_s):
        mt.double(), ms.double()
        _copy_weights(mt, ms)
        yt, ys = mt(yt), ms(ys)
        _assert_same_rows(yt, ys, sb)


def _tiny_pair(dtype: torch.dtype, seed: int = 0):  # noqa: ANN202
    torch.manual_seed(seed)
    ours = MinkUNet34(3, 6, latent_dim=10, backend="torch", config=MINKUNET_TINY).to(dtype)
    spc = MinkUNet34(3, 6, latent_dim=10, backend="spconv", config=MINKUNET_TINY).to(dtype)
    converted = to_spconv(ours.state_dict())
    assert set(converted) == set(spc.state_dict())
    spc.load_state_dict(converted)
    return ours, spc


def _negative_scene(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Two clouds (batch 0 and 1), shifted so that coordinates are negative and far apart."""
    feats, coords = scene_batch(n_points=800, seed=5)
    coords = coords.clone()
    coords[:, 1:] -= torch.tensor([40, 7, 530], dtype=coords.dtype)
    coords[coords[:, 0] == 1, 1] -= 1000
    return feats.to(dtype), coords


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-9), (torch.float32, 1e-4)])
def test_tiny_minkunet_same_logits_gradients_and_statistics(dtype: torch.dtype, tol: float) -> None:
    """One train-mode step on both backends: same logits and latents, same parameter gradients
    (converted; all of them in float64, a few across the network in float32), same batch-norm
    statistics; then the same outputs in eval mode. Tolerances are relative to each tensor's
    largest entry; measured: float64 within 1e-14, float32 within 3e-6 (torch 2.14.1, spconv 2.3.8)."""
    feats, coords = _negative_scene(dtype)
    assert bool((coords[:, 1:] < -512).any()) and set(coords[:, 0].tolist()) == {0, 1}
    ours, spc = _tiny_pair(dtype)
    outs, grads = [], []
    for model in (ours, spc):
        logits, latent = model(feats, coords)
        loss = torch.nn.functional.cross_entropy(logits, (coords[:, 1] % 6).long()) + latent.square().mean()
        loss.backward()
        outs.append((logits.detach(), latent.detach()))
        grads.append({k: p.grad for k, p in model.named_parameters()})
    for a, b in zip(*outs):
        torch.testing.assert_close(b, a, rtol=tol, atol=tol * float(a.abs().max()))
    g_spc = from_spconv(grads[1])
    assert set(g_spc) == set(grads[0])
    few = ("conv0p1s1.weight", "conv2p2s2.weight", "convtr5p8s2.weight", "block8.0.conv2.weight", "final.weight", "final.bias",
           "bn0.bn.weight", "proj.weight")
    for name in grads[0] if dtype == torch.float64 else few:
        ref = grads[0][name]
        torch.testing.assert_close(g_spc[name], ref, rtol=tol, atol=tol * float(ref.abs().max()), msg=name)
    buffers = dict(spc.named_buffers())
    for name, buf in ours.named_buffers():
        torch.testing.assert_close(buffers[name], buf, rtol=tol, atol=tol * max(1.0, float(buf.abs().max())), msg=name)
    ours.eval(), spc.eval()
    with torch.no_grad():
        for a, b in zip(ours(feats, coords), spc(feats, coords)):
            torch.testing.assert_close(b, a, rtol=tol, atol=tol * float(a.abs().max()))


def test_spconv_is_optional_and_not_picked_by_auto() -> None:
    assert spconv_available()
    assert get_backend("auto").name in ("torch", "minkowski")
    assert isinstance(get_backend("spconv"), SpconvBackend)


def test_cpu_forward_is_repeatable_with_two_threads() -> None:
    """spconv's CPU build gave wrong features now and then with 2 torch threads; the backend runs its
    convolutions on one thread, so repeated forward passes are identical."""
    feats, coords = _negative_scene(torch.float64)
    _, spc = _tiny_pair(torch.float64)
    spc.eval()
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch.no_grad():
            ref = spc(feats, coords)[0]
            for _ in range(25):
                assert torch.equal(spc(feats, coords)[0], ref)
        assert torch.get_num_threads() == 2  # restored after every convolution
    finally:
        torch.set_num_threads(threads)
