"""Property tests of the zero-centred penalties (zero_centred.py): R1 on the data, R2 on the
fakes, 0-GP on interpolates; their value and gradient on critics whose gradient is known, the
points they look at, and the papers' configurations."""
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import harness
import zero_centred as zc
from zero_centred import POINTS, penalty_points, zero_centred_penalty

seeds = st.integers(0, 2**31 - 1)


@given(a=st.lists(st.floats(-3, 3, allow_nan=False), min_size=2, max_size=5),
       points=st.sampled_from(POINTS), seed=seeds)
def test_on_a_linear_critic_it_is_the_squared_slope(a, points, seed):
    """R1, R2, 0-GP of f = a·x: E‖∇f‖² = ‖a‖² at any point, and its gradient for a is 2a (the
    hand computation)."""
    a = torch.tensor(a, dtype=torch.float64, requires_grad=True)
    g = torch.Generator().manual_seed(seed)
    real = torch.randn(16, len(a), generator=g, dtype=torch.float64)
    fake = torch.randn(16, len(a), generator=g, dtype=torch.float64) + 1
    pen = zero_centred_penalty(lambda x: x @ a, real, fake, points)
    assert pen.item() == pytest.approx(a.norm().item() ** 2 + 1e-12, rel=1e-9, abs=1e-15)
    (grad,) = torch.autograd.grad(pen, a)
    torch.testing.assert_close(grad, 2 * a.detach(), rtol=1e-9, atol=1e-12)


@given(seed=seeds, c=st.floats(0.0, 2.0))
def test_a_quadratic_critic_gives_the_mean_squared_gap_at_its_points(seed, c):
    """f(x) = ½‖x‖²: ∇f(x) = x, so R = mean (‖x̂‖ − c)² at exactly the points it looks at."""
    g = torch.Generator().manual_seed(seed)
    real = torch.randn(8, 1, 2, 2, generator=g, dtype=torch.float64)
    fake = torch.randn(8, 1, 2, 2, generator=g, dtype=torch.float64) + 2
    f = lambda x: 0.5 * x.flatten(1).pow(2).sum(1)  # noqa: E731
    for points in POINTS:
        torch.manual_seed(seed)
        pen = zero_centred_penalty(f, real, fake, points, center=c)
        torch.manual_seed(seed)
        x = penalty_points(real, fake, points).flatten(1)
        want = ((x.pow(2).sum(1) + 1e-12).sqrt() - c).pow(2).mean()
        torch.testing.assert_close(pen, want, rtol=1e-12, atol=1e-14)


def test_the_points_are_where_they_say():
    """R1 looks only at the data, R2 only at the fakes, 0-GP on the segments between them (one
    t per sample); a critic steep only near the fakes is penalised by R2 and not by R1; a
    constant critic by none of them (≈0, not NaN)."""
    real, fake = torch.zeros(32, 2), torch.full((32, 2), 10.0)
    assert torch.equal(penalty_points(real, fake, "none"), real)
    assert torch.equal(penalty_points(real, fake, "fake"), fake)
    x = penalty_points(real, fake, "interpolate")  # on the segment from 0 to (10, 10)
    assert torch.equal(x[:, 0], x[:, 1]) and ((x >= 0) & (x <= 10)).all() and x.unique().numel() > 1
    steep_near_fakes = lambda x: 3 * torch.relu(x.sum(1) - 10)  # noqa: E731 (flat near 0)
    r1 = zero_centred_penalty(steep_near_fakes, real, fake, "none")
    r2 = zero_centred_penalty(steep_near_fakes, real, fake + 0.1, "fake")
    assert r1.item() == pytest.approx(0, abs=1e-9) and r2.item() == pytest.approx(18, rel=1e-6)
    const = lambda x: 0 * x.sum(1) + 2  # noqa: E731
    for points in POINTS:
        pen = zero_centred_penalty(const, real, fake, points)
        assert torch.isfinite(pen) and pen.item() == pytest.approx(1e-12, abs=1e-12)


def test_bad_points_and_batches_are_refused():
    real = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="points must be one of"):
        zero_centred_penalty(lambda x: x.sum(1), real, real, "paper")
    with pytest.raises(ValueError, match="needs a fake batch"):
        zero_centred_penalty(lambda x: x.sum(1), real, None, "fake")
    with pytest.raises(ValueError, match="non-empty"):
        zero_centred_penalty(lambda x: x.sum(1), real[:0], real[:0], "none")


def test_the_configurations_are_the_papers():
    """R1 and R2 with γ = 10 (λ = γ/2 = 5) in the GAN loss, 0-GP with λ = 10 in either loss; the
    names are the ones the committed results carry (they ran as dragan.py --center 0 before)."""
    for name, (points, lam, loss) in {"r1-gan": ("none", 5.0, "gan"),
                                      "r2-gan": ("fake", 5.0, "gan"),
                                      "zero-gp-gan": ("interpolate", 10.0, "gan"),
                                      "zero-gp-wgan": ("interpolate", 10.0, "wgan"),
                                      "r1-wgan": ("none", 5.0, "wgan")}.items():
        args, _ = harness.parse_or_resume(zc.build_parser(), zc.CONFIGS[name]["flags"],
                                          "zero_centred", set())
        assert (args.perturb, args.lam, args.loss, args.center) == (points, lam, loss, 0.0)
        assert (args.n_critic, args.iters) == ((1, 15000) if loss == "gan" else (5, 5000))
    names = {"none": "R1", "fake": "R2", "interpolate": "0-GP"}
    for points, short in names.items():
        args, _ = harness.parse_or_resume(zc.build_parser(), ["--perturb", points],
                                          "zero_centred", set())
        assert zc.method_name(args).startswith(short + ",")


@given(seed=seeds)
def test_maxgp_is_the_largest_squared_gradient_norm_at_the_interpolates(seed):
    """--reduce max (MaxGP, Zhou et al. 2019): with f = ½‖x‖² (∇f = x) R is the largest ‖x̂‖²
    over the batch, where the mean would average them; a linear critic gives ‖a‖² either way;
    only the steepest sample's gradient reaches the weights."""
    g = torch.Generator().manual_seed(seed)
    real = torch.randn(8, 3, generator=g, dtype=torch.float64)
    fake = torch.randn(8, 3, generator=g, dtype=torch.float64) + 2
    f = lambda x: 0.5 * x.pow(2).sum(1)  # noqa: E731
    torch.manual_seed(seed)
    x = penalty_points(real, fake, "interpolate")
    torch.manual_seed(seed)
    got = zero_centred_penalty(f, real, fake, "interpolate", reduce="max")
    torch.testing.assert_close(got, (x.pow(2).sum(1) + 1e-12).max())
    a = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64, requires_grad=True)
    pen = zero_centred_penalty(lambda v: v @ a, real, fake, "interpolate", reduce="max")
    assert pen.item() == pytest.approx(a.norm().item() ** 2 + 1e-12, rel=1e-9)
    with pytest.raises(ValueError, match="reduce"):
        zero_centred_penalty(f, real, fake, "interpolate", reduce="sum")


def test_maxgp_is_a_configuration_and_a_name():
    args, _ = harness.parse_or_resume(zc.build_parser(), zc.CONFIGS["maxgp-gan"]["flags"],
                                      "zero_centred", set())
    assert (args.perturb, args.reduce, args.lam, args.loss) == ("interpolate", "max", 0.1, "gan")
    assert zc.method_name(args).startswith("MaxGP,")
    assert zc.reduction(harness.parse_or_resume(zc.build_parser(), [], "zero_centred",
                                                set())[0]) == "mean"
