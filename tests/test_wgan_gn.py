"""Gradient normalisation (wgan_gn.py) on critics whose answer is known: |f̂| ≤ 1, with 1 where
∇f = 0; f̂ = f/(‖a‖ + |f|) for a linear f; ‖∇f̂‖ ≤ 1 inside every linear piece of a ReLU critic
(the paper's bound), and what happens across a kink: f̂ jumps where ‖∇f‖ does, so its Lipschitz
quotient there has no bound. It works under torch.no_grad(), where evaluation calls it."""
import pytest
import torch
from hypothesis import given, strategies as st

import wgan_gn as gn

finite = st.floats(-3, 3, allow_nan=False)


@given(a=st.lists(finite, min_size=1, max_size=6), b=finite, seed=st.integers(0, 2**31 - 1))
def test_a_linear_critic_gives_f_over_the_slope_plus_its_size(a, b, seed):
    a = torch.tensor(a, dtype=torch.float64)
    x = torch.randn(16, len(a), dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    f = x @ a + b
    got = gn.grad_normalized(lambda x: x @ a + b, x)
    want = f / (a.norm() + f.abs()).clamp(min=1e-12)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert (got.abs() <= 1).all()


@pytest.mark.parametrize("c", [-2.0, 0.3, 5.0])
def test_where_the_gradient_is_zero_the_normalised_critic_is_plus_or_minus_one(c):
    const = lambda x: torch.full((len(x),), c, dtype=x.dtype) + 0 * x.sum(1)  # noqa: E731
    got = gn.grad_normalized(const, torch.randn(5, 3))
    assert torch.equal(got, torch.full((5,), 1.0 if c > 0 else -1.0))
    zero = gn.grad_normalized(lambda x: 0 * x.sum(1), torch.randn(5, 3))
    assert torch.equal(zero, torch.zeros(5))  # 0/0 kept finite


def relu_critic(seed, width=32, dim=2):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(dim, width), torch.nn.ReLU(),
                               torch.nn.Linear(width, width), torch.nn.ReLU(),
                               torch.nn.Linear(width, 1)).double()


@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(0.1, 10))
def test_inside_every_linear_piece_the_gradient_is_at_most_1(seed, scale):
    """The paper's bound, at random points (each inside a linear piece with probability 1)."""
    net = relu_critic(seed % 1000)
    with torch.no_grad():
        net[4].weight.mul_(scale)
    x = torch.randn(256, 2, dtype=torch.float64) * 3
    _, g = common_grad(gn.GradNorm(net), x)
    assert g.max() <= 1 + 1e-9


def common_grad(critic, x):
    import common
    return common.critic_and_grad_norm(critic, x)


def test_across_a_kink_the_normalised_critic_jumps():
    """f(x) = max(x, 3x) + 1: slope 1 left of 0, 3 right of it, f(0) = 1. f̂ is 1/2 just left of
    the kink and 1/4 just right: a jump, so |f̂(δ) − f̂(−δ)|/2δ grows like 1/(8δ). f̂ is
    1-Lipschitz inside each piece, not across: measured on a random ReLU critic too."""
    f = lambda x: torch.maximum(x, 3 * x).sum(1) + 1  # noqa: E731
    for delta in (1e-2, 1e-4, 1e-6):
        left, right = gn.grad_normalized(f, torch.tensor([[-delta], [delta]],
                                                           dtype=torch.float64))
        assert left.item() == pytest.approx(0.5, abs=delta)
        assert right.item() == pytest.approx(0.25, abs=delta)
        assert (left - right).abs().item() / (2 * delta) > 0.1 / delta
    # a random ReLU critic: the largest quotient between close pairs crosses 1 somewhere
    net = gn.GradNorm(relu_critic(3))
    torch.manual_seed(1)
    x = torch.randn(20000, 2, dtype=torch.float64) * 2
    y = x + 1e-3 * torch.randn_like(x)
    with torch.no_grad():
        q = (net(x) - net(y)).abs() / (x - y).norm(dim=1)
    assert q.median() <= 1 and q.max() > 1


def test_it_works_under_no_grad_and_keeps_its_graph_otherwise():
    net = relu_critic(0)
    D = gn.GradNorm(net)
    x = torch.randn(8, 2, dtype=torch.float64)
    with torch.no_grad():
        quiet = D(x)
    assert not quiet.requires_grad
    loud = D(x)
    torch.testing.assert_close(quiet, loud.detach())
    loud.sum().backward()  # through ∇ₓf: a double backward to the weights
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_a_critic_that_is_not_one_score_per_sample_is_an_error():
    with pytest.raises(ValueError, match=r"\(N,\) or \(N, 1\) scores"):
        gn.grad_normalized(lambda x: torch.cat([x, x], 1), torch.randn(4, 2))


def test_the_bce_setting_takes_the_papers_optimiser_and_one_critic_step():
    import harness
    args, _ = harness.parse_or_resume(gn.build_parser(), ["--loss", "bce"], "wgan_gn", set())
    assert (args.n_critic, args.lr, args.betas, args.iters) == (1, 2e-4, [0.0, 0.9], 15000)
    args, _ = harness.parse_or_resume(gn.build_parser(), [], "wgan_gn", set())
    assert (args.n_critic, args.lr, args.betas, args.iters) == (5, 1e-4, [0.5, 0.9], 5000)
