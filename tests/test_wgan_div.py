"""The WGAN-div term k·E‖∇f(x̂)‖^p (wgan_div.py) on critics where the answer is known: a linear
critic with ‖a‖ = r gives k·r^p wherever x̂ is drawn, its gradient for the critic's weights is
the closed form, images equal their flattened twins, and a constant critic gives a finite 0."""
import pytest
import torch
from hypothesis import given, strategies as st

from wgan_div import POINTS, divergence_penalty

finite = st.floats(-3, 3, allow_nan=False)


def linear(a):
    return lambda x: x.flatten(1) @ a


@given(a=st.lists(finite, min_size=2, max_size=2), k=st.floats(0, 10), p=st.floats(1.01, 8),
       points=st.sampled_from(POINTS), seed=st.integers(0, 2**31 - 1))
def test_a_linear_critic_gives_k_r_to_the_p(a, k, p, points, seed):
    a = torch.tensor(a, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    real, fake = torch.randn(16, 2, generator=g, dtype=torch.float64), \
        torch.randn(16, 2, generator=g, dtype=torch.float64) + 2
    got = divergence_penalty(linear(a), real, fake, k, p, points).item()
    want = k * (a.norm().item() ** 2 + 1e-12) ** (p / 2)  # ‖g‖² + eps, the penalty's eps
    assert got == pytest.approx(want, rel=1e-6, abs=1e-15)


@given(a=st.lists(st.floats(0.2, 3), min_size=3, max_size=3), p=st.floats(1.5, 8))
def test_the_weight_gradient_is_the_closed_form(a, p):
    """d/da k‖a‖^p = k·p·‖a‖^(p−2)·a for f = a·x."""
    a = torch.tensor(a, dtype=torch.float64, requires_grad=True)
    real, fake = torch.randn(8, 3, dtype=torch.float64), torch.randn(8, 3, dtype=torch.float64)
    (grad,) = torch.autograd.grad(divergence_penalty(linear(a), real, fake, 2.0, p), a)
    want = 2.0 * p * a.norm() ** (p - 2) * a
    torch.testing.assert_close(grad, want.detach(), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("points", POINTS)
def test_images_equal_their_flattened_twins(points):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    real, fake = torch.rand(12, 1, 8, 8), torch.rand(12, 1, 8, 8)
    torch.manual_seed(5)
    image = divergence_penalty(lambda x: net(x.flatten(1)), real, fake, 2.0, 6.0, points)
    torch.manual_seed(5)
    flat = divergence_penalty(net, real.flatten(1), fake.flatten(1), 2.0, 6.0, points)
    assert image.item() == pytest.approx(flat.item(), rel=1e-6)


def test_a_constant_critic_gives_a_finite_zero():
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    for critic in (lambda x: torch.ones(len(x)), lambda x: 0 * x.sum(1) + 3.0):
        pen = divergence_penalty(critic, real, fake)
        assert torch.isfinite(pen) and pen.item() == pytest.approx(0, abs=1e-30)
    w = torch.zeros(2, requires_grad=True)
    (g,) = torch.autograd.grad(divergence_penalty(lambda x: x @ w, real, fake), w)
    assert torch.isfinite(g).all() and g.abs().max() == 0  # p = 6: flat at ∇f = 0


def test_real_fake_is_the_mean_over_both_sets():
    """--points real-fake = k/2·(E_real ‖∇f‖^p + E_fake ‖∇f‖^p), as the public code writes it."""
    f = lambda x: (x ** 2).sum(1)  # noqa: E731  ∇f = 2x, ‖∇f‖^p = (2‖x‖)^p
    real, fake = torch.randn(10, 2, dtype=torch.float64), torch.randn(10, 2, dtype=torch.float64)
    want = 2.0 / 2 * ((2 * real.norm(dim=1)) ** 6 + (2 * fake.norm(dim=1)) ** 6).mean()
    got = divergence_penalty(f, real, fake, 2.0, 6.0, "real-fake")
    assert got.item() == pytest.approx(want.item(), rel=1e-9)


def test_bad_batches_and_points_are_errors():
    with pytest.raises(ValueError, match="one shape"):
        divergence_penalty(lambda x: x.sum(1), torch.zeros(4, 2), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="points"):
        divergence_penalty(lambda x: x.sum(1), torch.zeros(4, 2), torch.zeros(4, 2),
                           points="all")
