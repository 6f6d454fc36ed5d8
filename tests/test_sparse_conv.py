"""Torch sparse backend against dense references, gradients, determinism."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from train.sparse import CoordinateSet, SparseConv3d, SparseTensor, cat, kernel_offsets
from train.sparse.conv_function import SparseConvFunction
from train.sparse.kernel_map import down_map, submanifold_map, up_map

GRID = 8


def random_sites(batch: int, grid: int, fill: float, seed: int, lo: int = 0) -> torch.Tensor:
    """(M, 4) int32 unique active sites in a ``grid``^3 box starting at ``lo``, in shuffled order."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(batch, grid, grid, grid, generator=g) < fill
    idx = mask.nonzero().to(torch.int32)
    idx[:, 1:] += lo
    return idx[torch.randperm(idx.shape[0], generator=g)]


def to_dense(feats: torch.Tensor, coords: torch.Tensor, batch: int, grid: int, scale: int = 1, lo: int = 0) -> torch.Tensor:
    """Scatter (M, C) features at ``coords`` (multiples of ``scale``) into (B, C, grid, grid, grid)."""
    dense = feats.new_zeros(batch, feats.shape[1], grid, grid, grid)
    c = coords.long()
    x, y, z = ((c[:, 1:] - lo) // scale).unbind(1)
    dense[c[:, 0], :, x, y, z] = feats
    return dense


def at_sites(dense: torch.Tensor, coords: torch.Tensor, scale: int = 1, lo: int = 0) -> torch.Tensor:
    c = coords.long()
    x, y, z = ((c[:, 1:] - lo) // scale).unbind(1)
    return dense[c[:, 0], :, x, y, z]


def dense_kernel(weight: torch.Tensor, k: int) -> torch.Tensor:
    """Our (k^3, C_in, C_out) kernel as a dense (C_out, C_in, k, k, k) conv3d weight indexed [dx, dy, dz]."""
    offs = kernel_offsets(k)
    lo = offs.min()
    dense = weight.new_zeros(weight.shape[2], weight.shape[1], k, k, k)
    for i, (dx, dy, dz) in enumerate((offs - lo).tolist()):
        dense[:, :, dx, dy, dz] = weight[i].t()
    return dense


@pytest.mark.parametrize("k", [1, 3, 5])
def test_submanifold_conv_equals_masked_dense_conv(k: int) -> None:
    coords = random_sites(2, GRID, 0.3, seed=k)
    x = SparseTensor.from_coords(torch.randn(coords.shape[0], 3, dtype=torch.float64), coords)
    conv = SparseConv3d(3, 4, kernel_size=k, bias=True).double()
    with torch.no_grad():
        conv.bias.normal_()
    y = conv(x)
    assert y.coordinate_set is x.coordinate_set
    ref = F.conv3d(to_dense(x.features, coords, 2, GRID), dense_kernel(conv.weight, k), conv.bias, padding=k // 2)
    torch.testing.assert_close(y.features, at_sites(ref, coords), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("k", [2, 3])
def test_strided_conv_equals_dense_strided_conv(k: int) -> None:
    lo = -4  # negative coordinates: the coarse grid is the floor of c/2, aligned with the dense one
    coords = random_sites(2, GRID, 0.35, seed=10 + k, lo=lo)
    x = SparseTensor.from_coords(torch.randn(coords.shape[0], 3, dtype=torch.float64), coords)
    conv = SparseConv3d(3, 5, kernel_size=k, stride=2).double()
    y = conv(x)
    assert y.stride == 2
    expected_sites = torch.unique(torch.cat([coords[:, :1], torch.div(coords[:, 1:], 2, rounding_mode="floor") * 2], 1), dim=0)
    assert torch.equal(torch.unique(y.coords, dim=0), expected_sites)
    ref = F.conv3d(to_dense(x.features, coords, 2, GRID, lo=lo), dense_kernel(conv.weight, k), stride=2, padding=(k - 1) // 2)
    torch.testing.assert_close(y.features, at_sites(ref, y.coords, scale=2, lo=lo), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("k", [2, 3])
def test_transposed_conv_equals_dense_transposed_conv(k: int) -> None:
    coords = random_sites(2, GRID, 0.35, seed=20 + k)
    fine = CoordinateSet(coords)
    coarse = fine.coarser(2)
    x = SparseTensor(torch.randn(len(coarse), 4, dtype=torch.float64), coarse)
    conv = SparseConv3d(4, 3, kernel_size=k, stride=2, transposed=True).double()
    y = conv(x)
    assert y.coordinate_set is fine and y.stride == 1
    # torch's transposed weight is (C_in, C_out, k, k, k): out[2p + j - pad] += x[p] W[j]
    w = dense_kernel(conv.weight, k).transpose(0, 1)
    pad = (k - 1) // 2
    ref = F.conv_transpose3d(to_dense(x.features, coarse.coords, 2, GRID // 2, scale=2), w, stride=2, padding=pad, output_padding=k % 2)
    torch.testing.assert_close(y.features, at_sites(ref, coords), rtol=1e-12, atol=1e-12)


def test_submanifold_conv_at_tensor_stride_two_uses_strided_offsets() -> None:
    coords = random_sites(1, GRID, 0.4, seed=3) * torch.tensor([1, 2, 2, 2], dtype=torch.int32)
    x = SparseTensor.from_coords(torch.randn(coords.shape[0], 2, dtype=torch.float64), coords, stride=2)
    conv = SparseConv3d(2, 2, kernel_size=3).double()
    ref = F.conv3d(to_dense(x.features, coords, 1, GRID, scale=2), dense_kernel(conv.weight, 3), padding=1)
    torch.testing.assert_close(conv(x).features, at_sites(ref, coords, scale=2), rtol=1e-12, atol=1e-12)


def test_kernel_maps_have_unique_rows_per_offset_and_cover_the_centre() -> None:
    cs = CoordinateSet(random_sites(2, GRID, 0.3, seed=4))
    for kmap in [submanifold_map(cs, 3), down_map(cs, 2, 2)[1], down_map(cs, 3, 2)[1]]:
        for rin, rout in zip(kmap.in_rows, kmap.out_rows):
            assert rin.unique().numel() == rin.numel() and rout.unique().numel() == rout.numel()
    sub = submanifold_map(cs, 3)
    assert sub.identity == 13 and torch.equal(sub.in_rows[13], torch.arange(len(cs)))
    # every fine site has exactly one parent under a kernel-2 stride-2 map
    _, down = down_map(cs, 2, 2)
    assert torch.equal(torch.cat(down.in_rows).sort().values, torch.arange(len(cs)))
    # maps are cached on the set
    assert submanifold_map(cs, 3) is sub and down_map(cs, 2, 2)[1] is down
    assert up_map(cs.coarser(2), 2, 2)[1].in_rows == down.out_rows


@pytest.mark.parametrize("kind", ["sub1", "sub3", "down2", "down3", "up2"])
def test_gradcheck(kind: str) -> None:
    coords = random_sites(2, 4, 0.4, seed=7)
    cs = CoordinateSet(coords)
    if kind.startswith("sub"):
        k = int(kind[-1])
        kmap, n_in = submanifold_map(cs, k), len(cs)
    elif kind.startswith("down"):
        k = int(kind[-1])
        kmap, n_in = down_map(cs, k, 2)[1], len(cs)
    else:
        k = 2
        coarse = cs.coarser(2)
        kmap, n_in = up_map(coarse, 2, 2)[1], len(coarse)
    x = torch.randn(n_in, 2, dtype=torch.float64, requires_grad=True)
    w = torch.randn(k**3, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: SparseConvFunction.apply(a, b, kmap), (x, w))


def test_row_order_of_the_input_is_kept() -> None:
    coords = random_sites(2, GRID, 0.3, seed=8)
    feats = torch.randn(coords.shape[0], 3, dtype=torch.float64)
    conv = SparseConv3d(3, 2, kernel_size=3).double()
    y = conv(SparseTensor.from_coords(feats, coords)).features
    perm = torch.randperm(coords.shape[0])
    y_perm = conv(SparseTensor.from_coords(feats[perm], coords[perm])).features
    torch.testing.assert_close(y_perm, y[perm], rtol=0, atol=1e-13)


def test_cat_and_add_need_the_same_coordinate_set() -> None:
    coords = random_sites(1, GRID, 0.3, seed=9)
    a = SparseTensor.from_coords(torch.randn(coords.shape[0], 2), coords)
    b = a.replace(torch.randn(coords.shape[0], 3))
    assert cat(a, b).num_channels == 5
    assert torch.equal(cat(a, b).features[:, 2:], b.features)
    other = SparseTensor.from_coords(torch.randn(coords.shape[0], 2), coords.clone())
    with pytest.raises(ValueError, match="same coordinate set"):
        cat(a, other)
    with pytest.raises(ValueError, match="same coordinate set"):
        _ = a + other


def test_transposed_conv_without_a_finer_set_is_an_error() -> None:
    coords = random_sites(1, GRID, 0.3, seed=11) * 2
    x = SparseTensor.from_coords(torch.randn(coords.shape[0], 2), coords, stride=2)
    with pytest.raises(ValueError, match="not made by downsampling"):
        SparseConv3d(2, 2, kernel_size=2, stride=2, transposed=True)(x)


def test_results_are_bit_identical_across_runs() -> None:
    from train.models.minkunet import MINKUNET_TINY, MinkUNet34

    coords = random_sites(2, 12, 0.25, seed=12)
    feats = torch.randn(coords.shape[0], 3)

    def run() -> tuple[torch.Tensor, ...]:
        torch.manual_seed(0)
        model = MinkUNet34(3, 5, 8, config=MINKUNET_TINY)
        logits, latent = model(feats, coords)
        (logits.square().mean() + latent.abs().mean()).backward()
        return (logits, latent) + tuple(p.grad for p in model.parameters())

    first, second = run(), run()
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_autocast_bf16_runs_and_keeps_fp32_weight_gradients() -> None:
    coords = random_sites(1, GRID, 0.3, seed=13)
    x = SparseTensor.from_coords(torch.randn(coords.shape[0], 4), coords)
    conv = SparseConv3d(4, 4, kernel_size=3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(x)
    assert y.features.dtype == torch.bfloat16
    y.features.float().sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.dtype == torch.float32


def test_kernel_offset_order_is_minkowskiengines() -> None:
    """x fastest, z slowest (measured on MinkowskiEngine 0.5.4; see docs/method.md)."""
    k3 = kernel_offsets(3).tolist()
    assert k3[:4] == [[-1, -1, -1], [0, -1, -1], [1, -1, -1], [-1, 0, -1]]
    assert k3[13] == [0, 0, 0] and k3[-1] == [1, 1, 1]
    assert kernel_offsets(2).tolist()[:3] == [[0, 0, 0], [1, 0, 0], [0, 1, 0]]


def test_features_at_sites_and_backend_row_mapping() -> None:
    from train.sparse import get_backend

    coords = random_sites(2, GRID, 0.3, seed=14)
    x = SparseTensor.from_coords(torch.randn(coords.shape[0], 3), coords)
    pick = coords[[5, 0, 3]]
    assert torch.equal(x.features_at(pick), x.features[[5, 0, 3]])
    with pytest.raises(KeyError):
        x.features_at(torch.tensor([[9, 0, 0, 0]], dtype=torch.int32))
    backend = get_backend("torch")
    down = SparseConv3d(3, 3, kernel_size=2, stride=2)(x)
    assert backend.rows_of(x, coords) is None
    coarse_sites = down.coords[torch.randperm(len(down))]
    assert torch.equal(backend.features_in_order(down, coarse_sites), down.features_at(coarse_sites))


def test_coordinate_sets_form_no_reference_cycles() -> None:
    """A batch's sets and kernel maps are freed by reference counting alone (no GC pass), so GPU
    memory of kernel maps goes back as soon as a step's tensors do."""
    import gc
    import weakref

    gc.disable()
    try:
        coords = random_sites(1, GRID, 0.3, seed=15)
        x = SparseTensor.from_coords(torch.randn(coords.shape[0], 2), coords)
        down = SparseConv3d(2, 2, kernel_size=2, stride=2)(x)
        up = SparseConv3d(2, 2, kernel_size=2, stride=2, transposed=True)(down)
        SparseConv3d(2, 2, kernel_size=3)(up)
        assert up.coordinate_set is x.coordinate_set
        fine, coarse = weakref.ref(x.coordinate_set), weakref.ref(down.coordinate_set)
        del x, down, up
        assert fine() is None and coarse() is None
    finally:
        gc.enable()
