"""The adversarial Lipschitz penalty (wgan_alp.py) on critics whose answer is known: on a linear
critic f = a·x the power iteration finds ±a/‖a‖ and the penalty is max(‖a‖ − 1, 0)²; on a
critic steep along one direction only, ALP finds that direction where a random pair (SLOGAN's
real–fake line) sees almost none of it; the unit of ε and ξ; no second derivative."""
import math

import pytest
import torch
from hypothesis import given, strategies as st

import wgan_alp as alp
from slogan import lipschitz_quotient

finite = st.floats(-3, 3, allow_nan=False)


def linear(a):
    return lambda x: x.flatten(1) @ a


@given(a=st.lists(finite, min_size=2, max_size=8).filter(lambda v: math.hypot(*v) > 0.1),
       xi=st.floats(0.01, 10), seed=st.integers(0, 2**31 - 1))
def test_on_a_linear_critic_the_direction_is_a_over_its_norm(a, xi, seed):
    a = torch.tensor(a, dtype=torch.float64)
    torch.manual_seed(seed)
    x = torch.randn(16, len(a), dtype=torch.float64)
    d = alp.adversarial_direction(linear(a), x, xi, power_iterations=1)
    cos = (d @ a) / a.norm()
    assert torch.allclose(cos.abs(), torch.ones(16, dtype=torch.float64), atol=1e-9)


@given(a=st.lists(finite, min_size=2, max_size=8), eps=st.tuples(st.floats(0.01, 1),
                                                                  st.floats(1, 5)),
       seed=st.integers(0, 2**31 - 1))
def test_on_a_linear_critic_the_penalty_is_the_excess_slope_squared(a, eps, seed):
    a = torch.tensor(a, dtype=torch.float64)
    torch.manual_seed(seed)
    real, fake = torch.randn(8, len(a), dtype=torch.float64), torch.randn(8, len(a),
                                                                         dtype=torch.float64)
    got = alp.alp_penalty(linear(a), real, fake, eps[0], eps[1], xi=1.0).item()
    want = max(a.norm().item() - 1, 0) ** 2  # |a·r|/‖r‖ = ‖a‖ along ±a/‖a‖
    assert got == pytest.approx(want, rel=1e-6, abs=1e-9)


def test_the_adversary_finds_the_steep_direction_where_a_random_pair_does_not():
    """f(x) = 5·x₀ + 0.1·Σ others, in 64 dimensions: its slope is ~5 along e₀ and ~0.1
    elsewhere. ALP's quotient is ~5 (the penalty sees the violation); the quotient on the line
    between two random samples, SLOGAN's, is mostly the projection of ∇f on a random line
    (|cos| ~ 1/√64), near 5/8 and below 1 for most pairs: the one-sided quotient penalty misses
    a critic five times too steep."""
    dim = 64
    w = torch.full((dim,), 0.1, dtype=torch.float64)
    w[0] = 5.0
    f = linear(w)
    torch.manual_seed(0)
    real, fake = torch.randn(256, dim, dtype=torch.float64), torch.randn(256, dim,
                                                                         dtype=torch.float64)
    x = torch.cat([real, fake])
    d = alp.adversarial_direction(f, x, xi=1.0)
    q_adv = (f(x) - f(x + 0.5 * d)).abs() / 0.5
    q_pair = lipschitz_quotient(f, real, fake)
    assert q_adv.min() > 0.99 * w.norm()  # the steepest slope, ‖w‖, at every sample
    assert q_pair.median() < 1 < w.norm() and (q_pair > 1).double().mean() < 0.3
    assert alp.alp_penalty(f, real, fake, 0.1, 1.0, 1.0).item() == pytest.approx(
        (w.norm().item() - 1) ** 2, rel=1e-9)


def test_a_flat_critic_gives_zero_not_nan():
    """Where the critic is flat the power iteration's gradient is 0: the clamps keep d and the
    quotient finite (a constant critic: penalty 0)."""
    const = lambda x: torch.zeros(len(x), dtype=x.dtype) * x.sum()  # noqa: E731
    real, fake = torch.randn(8, 3), torch.randn(8, 3)
    pen = alp.alp_penalty(const, real, fake)
    assert torch.isfinite(pen) and pen.item() == 0


def test_no_second_derivative_is_needed():
    """The penalty's gradient for the weights is one ordinary backward: a critic whose backward
    cannot be differentiated again (a custom autograd Function without double backward) still
    trains."""
    class OnceDifferentiable(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x.clamp(min=0)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * (x > 0).to(g.dtype)  # computed without a graph: no double backward

    net = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Linear(16, 1))
    critic = lambda x: net[1](OnceDifferentiable.apply(net[0](x)))  # noqa: E731
    pen = alp.alp_penalty(critic, torch.randn(8, 2), torch.randn(8, 2))
    pen.backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())


def test_the_unit_keeps_the_papers_epsilon_per_coordinate():
    """ε in the paper's units (images in [−1, 1]³⁰⁷²) times ρ·√(D/3072): the same perturbation
    per coordinate relative to the data's range."""
    args = alp.build_parser().parse_args([])
    alp.resolve_defaults(args)
    assert args.radius == 2.0
    assert alp.data_unit(args, (3072,)) == pytest.approx(2.0)
    assert alp.data_unit(args, (2,)) == pytest.approx(2.0 * math.sqrt(2 / 3072))
    digits = alp.build_parser().parse_args(["--data", "digits"])
    alp.resolve_defaults(digits)
    assert alp.data_unit(digits, (1, 8, 8)) == pytest.approx(0.5 * math.sqrt(64 / 3072))
    mnist = alp.build_parser().parse_args(["--data", "mnist"])
    alp.resolve_defaults(mnist)
    assert alp.data_unit(mnist, (1, 28, 28)) == pytest.approx(0.5 * math.sqrt(784 / 3072))


@pytest.mark.parametrize("argv,says", [(["--eps-min", "5", "--eps-max", "1"], "--eps-min"),
                                       (["--power-iterations", "-1"], "--power-iterations"),
                                       (["--xi", "0"], "--xi")])
def test_bad_flags_are_one_line(argv, says, capsys):
    with pytest.raises(SystemExit) as e:
        alp.build_parser().parse_args(argv)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "\n" not in err and says in err
