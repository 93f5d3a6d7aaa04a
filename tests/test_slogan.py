"""Property tests of the Lipschitz-quotient penalties (slogan.py) on analytic critics."""
import itertools

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from slogan import PAIRINGS, lipschitz_penalty, lipschitz_quotient, pair_quotients

seeds = st.integers(0, 2**31 - 1)
pairings = st.sampled_from(PAIRINGS)


def batch(seed, n, shape=(2,), scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn((n,) + shape, generator=g, dtype=torch.float64) * scale


def unit(seed, d=2):
    a = batch(seed + 7, 1, (d,))[0]
    return a / a.norm()


def one_lipschitz_critics():
    """a·x with ‖a‖ ≤ 1, ‖x − c‖, and the min of such: all have Lipschitz constant ≤ 1."""
    lin = st.builds(lambda s, r: ("linear", lambda x: x @ (unit(s) * r)), seeds, st.floats(0, 1))
    rad = st.builds(lambda s: ("radial", lambda x: (x - 2 * unit(s)).norm(dim=1)), seeds)
    base = st.one_of(lin, rad)
    mins = st.builds(lambda fs: ("min", lambda x: torch.stack([f(x) for _, f in fs]).min(0).values),
                     st.lists(base, min_size=2, max_size=4))
    return st.one_of(base, mins)


@given(seeds, pairings, one_lipschitz_critics())
def test_one_sided_is_zero_for_1_lipschitz_critics(seed, pairs, critic):
    _, f = critic
    real, fake = batch(seed, 24), batch(seed + 1, 24, scale=2.0) + 1
    assert lipschitz_penalty(f, real, fake, pairs=pairs, one_sided=True).item() == 0.0


@given(seeds, pairings, st.floats(1.05, 4.0))
def test_one_sided_is_positive_for_steep_linear_critic(seed, pairs, r):
    """‖a‖ > 1: every pair whose direction u has |a·u| > 1 is penalised. Pairs of random points
    are not all orthogonal to a, and the penalty is then positive."""
    a = unit(seed) * r
    real, fake = batch(seed, 24), batch(seed + 1, 24) + 3 * a / r  # offset along a
    assert lipschitz_penalty(lambda x: x @ a, real, fake, pairs=pairs).item() > 0


@given(seeds, st.floats(0.1, 3.0))
def test_linear_quotient_is_projection(seed, r):
    """For f = a·x, L(x, y) = |a·u| with u = (x − y)/‖x − y‖: ≤ ‖a‖, = ‖a‖ only along a."""
    a = unit(seed) * r
    x, y = batch(seed, 64), batch(seed + 1, 64)
    L = lipschitz_quotient(lambda p: p @ a, x, y)
    d = (x - y).norm(dim=1, keepdim=True)
    u = (x - y) / d
    shrink = (d / (d + 1e-8)).squeeze(1)  # the quotient's eps in its denominator
    torch.testing.assert_close(L, (u @ a).abs() * shrink, rtol=1e-9, atol=1e-12)
    assert (L <= r * (1 + 1e-9)).all()
    y_par = x - 0.7 * a  # parallel to a: equality
    torch.testing.assert_close(lipschitz_quotient(lambda p: p @ a, x, y_par),
                               torch.full((64,), r, dtype=torch.float64), rtol=1e-6, atol=1e-9)


@given(seeds, pairings)
def test_two_sided_penalises_a_perfect_linear_critic(seed, pairs):
    """The 2017-05-29 post's Figure 5: the 1-Lipschitz f = u·x is optimal between P and P shifted along u, yet
    its quotients on generic pairs are < 1, so the two-sided penalty is positive."""
    u = unit(seed)
    real, fake = batch(seed, 32), batch(seed + 1, 32) - 2 * u
    f = lambda x: x @ u  # noqa: E731
    assert lipschitz_penalty(f, real, fake, pairs=pairs, one_sided=False).item() > 1e-3
    assert lipschitz_penalty(f, real, fake, pairs=pairs, one_sided=True).item() == 0.0


@given(seeds, st.floats(0.5, 5.0))
def test_smooth_critic_obeys_mean_value_bound(seed, r):
    """f(x) = sin(a·x): L(x, y) ≤ max over the segment [x, y] of ‖∇f‖ = ‖a‖·|cos(a·x)|."""
    a = unit(seed) * r
    x, y = batch(seed, 32), batch(seed + 1, 32)
    L = lipschitz_quotient(lambda p: torch.sin(p @ a), x, y)
    s = torch.linspace(0, 1, 4001, dtype=torch.float64)[:, None, None]
    seg = y + s * (x - y)  # (4001, 32, 2)
    bound = (r * torch.cos(seg @ a).abs()).max(0).values
    assert (L <= bound + 1e-6).all()


@given(seeds, st.floats(0.1, 3.0))
def test_interpolate_quotients_agree_for_linear_critic(seed, r):
    a = unit(seed) * r
    real, fake = batch(seed, 40), batch(seed + 1, 40)
    torch.manual_seed(seed)  # eps = 0: a tiny t would otherwise let eps show against t‖d‖
    L = pair_quotients(lambda x: x @ a, real, fake, "interpolate", eps=0.0)
    assert L.shape == (80,)
    torch.testing.assert_close(L[:40], L[40:], rtol=1e-5, atol=1e-7)


@given(seeds)
def test_all_pairs_equals_double_loop(seed):
    real, fake = batch(seed, 5), batch(seed + 1, 7) + 0.5
    w = batch(seed + 2, 1)[0]
    f = lambda x: torch.tanh(x @ w) + 0.2 * (x ** 2).sum(1)  # noqa: E731
    L = pair_quotients(f, real, fake, "all").reshape(5, 7)
    for i, j in itertools.product(range(5), range(7)):
        want = (f(real[i:i + 1]) - f(fake[j:j + 1])).abs() / ((real[i] - fake[j]).norm() + 1e-8)
        torch.testing.assert_close(L[i, j], want[0])


@given(seeds, st.floats(0.2, 3.0), st.booleans())
def test_gradient_wrt_critic_matches_analytic(seed, r, one_sided):
    """f = a·x on real-fake pairs, d_i = x_r − x_f, s_i = sign(a·d_i), L_i = |a·d_i|/(‖d_i‖ + ε):
    dR/da = mean_i 2·g_i·s_i·d_i/(‖d_i‖ + ε), g_i = max(L_i − 1, 0) (one-sided) or L_i − 1."""
    real, fake = batch(seed, 16), batch(seed + 1, 16)
    a = (unit(seed) * r).requires_grad_(True)
    R = lipschitz_penalty(lambda x: x @ a, real, fake, pairs="real-fake", one_sided=one_sided)
    (g,) = torch.autograd.grad(R, a)
    d = real - fake
    den = d.norm(dim=1) + 1e-8
    ad = d @ a.detach()
    L = ad.abs() / den
    gap = (L - 1).clamp(min=0) if one_sided else L - 1
    want = (2 * gap * ad.sign() / den)[:, None] * d
    torch.testing.assert_close(g, want.mean(0), rtol=1e-6, atol=1e-10)


@given(seeds, pairings, st.sampled_from([(1, 3, 3), (2, 2, 4)]), st.booleans())
def test_image_batch_equals_flattened_twin(seed, pairs, shape, one_sided):
    real, fake = batch(seed, 6, shape), batch(seed + 1, 6, shape)
    w = batch(seed + 2, 1, shape)[0].flatten()
    f = lambda x: torch.tanh(x @ w) + 0.3 * (x ** 2).sum(1)  # noqa: E731
    torch.manual_seed(seed)
    R_img = lipschitz_penalty(lambda x: f(x.flatten(1)), real, fake, pairs, one_sided)
    torch.manual_seed(seed)
    R_flat = lipschitz_penalty(f, real.flatten(1), fake.flatten(1), pairs, one_sided)
    torch.testing.assert_close(R_img, R_flat)


def test_coincident_points_are_finite():
    x = torch.randn(8, 2, dtype=torch.float64)
    w = torch.tensor([1.5, 0.0], dtype=torch.float64, requires_grad=True)
    for pairs in PAIRINGS:
        R = lipschitz_penalty(lambda p: p @ w, x, x.clone(), pairs=pairs, one_sided=False)
        (g,) = torch.autograd.grad(R, w)
        assert torch.isfinite(R) and torch.isfinite(g).all()


def test_unknown_pairing():
    with pytest.raises(ValueError, match="pairs must be one of"):
        lipschitz_penalty(lambda x: x.sum(1), torch.zeros(2, 2), torch.ones(2, 2), pairs="some")
