"""SDP-based Lipschitz layers (wgan_sll.py) on facts that are known: every SLL block is
1-Lipschitz for every weight, bias and q (Araujo et al. 2023), its Jacobian's spectral norm is
≤ 1 at every input, the formula checks by hand on a 2×2 weight, and the whole critic (AOL in,
SLL blocks, AOL out) passes no quotient above 1."""
import argparse
import math

import pytest
import torch
from hypothesis import given, strategies as st

import wgan_sll as sll

seeds = st.integers(0, 2**31 - 1)


def block(seed, width, inner, scale):
    torch.manual_seed(seed)
    b = sll.SLLBlock(width, inner).double()
    with torch.no_grad():
        b.weight.mul_(scale)
        b.bias.mul_(scale)
        b.log_q.mul_(2.0)  # q spread over e^±4 and more
    return b


@given(seeds, st.integers(1, 8), st.integers(1, 8), st.sampled_from([0.01, 1.0, 20.0]))
def test_every_blocks_jacobian_has_spectral_norm_at_most_one(seed, width, inner, scale):
    """At 100 random inputs, the Jacobian of h (torch.func.jacrev) has ‖J‖₂ ≤ 1."""
    b = block(seed, width, inner, scale)
    x = torch.randn(100, width, generator=torch.Generator().manual_seed(seed),
                    dtype=torch.float64) * 2
    jac = torch.func.vmap(torch.func.jacrev(lambda v: b(v[None])[0]))(x)  # (100, width, width)
    assert torch.linalg.matrix_norm(jac, 2).max() <= 1 + 1e-10


def test_the_formula_by_hand_on_a_2x2_weight():
    """Stored weight [[1, 0], [1, 1]] (their (inner × width) layout, the paper's Wᵀ): the Gram
    matrix [[1, 1], [1, 2]], q = (1, 2), so t = ((1·1 + 1·2)/1, (1·1 + 2·2)/2) = (3, 2.5); with
    b = (0, −1) and x = (1, 2): relu(Wᵀx + b) = (1, 2), T⁻¹ of it (1/3, 0.8), and
    h(x) = x − 2·(1/3 + 0.8, 0.8) = (−1.2667, 0.4)."""
    b = sll.SLLBlock(2).double()
    with torch.no_grad():
        b.weight.copy_(torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
        b.bias.copy_(torch.tensor([0.0, -1.0]))
        b.log_q.copy_(torch.tensor([0.0, math.log(2.0)]))
    torch.testing.assert_close(b.t_inverse(), torch.tensor([1 / 3, 0.4], dtype=torch.float64))
    out = b(torch.tensor([[1.0, 2.0]], dtype=torch.float64))
    torch.testing.assert_close(out, torch.tensor([[1 - 2 * (1 / 3 + 0.8), 2 - 2 * 0.8]],
                                                 dtype=torch.float64))


def test_a_unit_with_an_all_zero_weight_is_left_out_not_a_nan():
    b = sll.SLLBlock(3).double()
    with torch.no_grad():
        b.weight[1].zero_()
    assert b.t_inverse()[1] == 0 and torch.isfinite(b.t_inverse()).all()
    x = torch.randn(5, 3, dtype=torch.float64)
    assert torch.isfinite(b(x)).all()


@given(seeds, st.integers(1, 4), st.sampled_from([2, 4, 8]), st.integers(2, 4),
       st.sampled_from([0.1, 1.0, 30.0]))
def test_the_critic_is_1_lipschitz_on_random_pairs(seed, d_in, width, hidden, scale):
    """AOL in, SLL blocks, AOL out, every parameter scaled: the largest quotient over 2000
    random pairs, near and far, stays ≤ 1; so does ‖∇f‖."""
    torch.manual_seed(seed)
    net = sll.critic_net([d_in, *[width] * hidden, 1], argparse.Namespace()).double()
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


def test_a_critic_of_unequal_hidden_widths_is_refused():
    with pytest.raises(ValueError, match="equal hidden widths"):
        sll.critic_net([2, 8, 4, 1], argparse.Namespace())
    assert len([m for m in sll.critic_net([2, 8, 8, 8, 1], argparse.Namespace())
                if isinstance(m, sll.SLLBlock)]) == 2
