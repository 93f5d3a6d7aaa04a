"""Almost-orthogonal layers (wgan_aol.py) on facts that are known: the rescaled weight has
spectral norm ≤ 1 whatever the free weight (Prach & Lampert 2022, Theorem 1), an orthogonal
weight is left as it is, a layer of one output is a row of unit norm, MaxMin is a permutation of
each pair, and the whole critic is 1-Lipschitz: no quotient over random pairs passes 1."""
import argparse

import torch
from hypothesis import given, strategies as st

import wgan_aol as aol

seeds = st.integers(0, 2**31 - 1)


def weights(seed, out, inp, scale):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(out, inp, generator=g, dtype=torch.float64) * scale


@given(seeds, st.integers(1, 12), st.integers(1, 12), st.sampled_from([1e-3, 1.0, 50.0]))
def test_every_rescaled_weight_has_spectral_norm_at_most_one(seed, out, inp, scale):
    w = aol.AOLRescale()(weights(seed, out, inp, scale))
    assert torch.linalg.matrix_norm(w, 2) <= 1 + 1e-12
    sparse = weights(seed, out, inp, scale) * (torch.rand(out, inp) < 0.3)  # zero columns too
    assert torch.isfinite(aol.AOLRescale()(sparse)).all()
    assert torch.linalg.matrix_norm(aol.AOLRescale()(sparse), 2) <= 1 + 1e-12
    huge = aol.AOLRescale()(weights(seed, out, inp, 1.0).float() * 1e30)  # PᵀP past float32
    torch.testing.assert_close(huge, aol.AOLRescale()(weights(seed, out, inp, 1.0).float()))


def test_the_formula_by_hand_on_a_2x2_weight():
    """P = [[1, 2], [3, 4]]: PᵀP = [[10, 14], [14, 20]], so d = (24^(−½), 34^(−½)) and
    W = P·diag(d), column by column."""
    p = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
    want = torch.tensor([[1 / 24 ** 0.5, 2 / 34 ** 0.5], [3 / 24 ** 0.5, 4 / 34 ** 0.5]],
                        dtype=torch.float64)
    torch.testing.assert_close(aol.AOLRescale(eps=0.0)(p), want, rtol=1e-15, atol=0)
    torch.testing.assert_close(aol.AOLRescale()(p), want, rtol=1e-6, atol=0)  # ε = 1e-6


@given(seeds, st.integers(1, 10), st.integers(0, 5))
def test_an_orthogonal_weight_is_left_alone_and_a_row_gets_unit_norm(seed, inp, more):
    """A layer that does not narrow starts orthogonal (PᵀP = I): D = I and W = P. A narrowing
    one is rescaled, and a single row comes out with unit norm."""
    torch.manual_seed(seed)
    lin = aol.aol_linear(inp, inp + more).double()
    q = lin.parametrizations.weight.original
    torch.testing.assert_close(lin.weight, q, rtol=0, atol=1e-6)  # starts orthogonal: D = I
    row = aol.AOLRescale(eps=0.0)(weights(seed, 1, inp, 3.0))
    torch.testing.assert_close(row.norm(), torch.tensor(1.0, dtype=torch.float64))


@given(seeds, st.integers(1, 5), st.sampled_from([2, 4, 8]))
def test_max_min_is_a_permutation_of_each_pair(seed, n, c):
    x = weights(seed, n, c, 1.0)
    y = aol.max_min(x)
    pairs_x, pairs_y = x.reshape(n, -1, 2), y.reshape(n, -1, 2)
    assert torch.equal(pairs_y, pairs_x.sort(dim=-1, descending=True).values)


@given(seeds, st.integers(1, 4), st.sampled_from([2, 4, 8]), st.integers(1, 3),
       st.sampled_from([0.1, 1.0, 30.0]))
def test_the_critic_is_1_lipschitz_on_random_pairs(seed, d_in, width, depth, scale):
    """Every layer's free weight scaled far from orthogonal: the largest quotient |f(x) − f(y)|
    / ‖x − y‖ over 2000 random pairs, near and far, stays ≤ 1; so does ‖∇f‖."""
    torch.manual_seed(seed)
    net = aol.critic_net([d_in, *[width] * depth, 1], argparse.Namespace()).double()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(scale)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2000, d_in, generator=g, dtype=torch.float64) * 3
    y = torch.where(torch.arange(2000)[:, None] < 1000, x + 1e-3 * torch.randn(
        2000, d_in, generator=g, dtype=torch.float64), torch.randn(2000, d_in, generator=g,
                                                                   dtype=torch.float64) * 3)
    with torch.no_grad():
        q = (net(x) - net(y)).abs().squeeze(1) / (x - y).norm(dim=1)
    assert q.max() <= 1 + 1e-9
    x.requires_grad_(True)
    (gx,) = torch.autograd.grad(net(x).sum(), x)
    assert gx.norm(dim=1).max() <= 1 + 1e-9
