"""Tests of dragan.py: the perturbations, the penalty on analytic critics, the GAN losses."""
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import dragan
from dragan import PERTURBATIONS, critic_loss, dragan_penalty, generator_loss, perturb

seeds = st.integers(0, 2**31 - 1)
kinds = st.sampled_from(PERTURBATIONS)


def batch(seed, n, shape=(2,), scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn((n,) + shape, generator=g, dtype=torch.float64) * scale + 0.3


@given(seeds, st.sampled_from([(2,), (3, 4)]), st.floats(0.1, 2.0))
def test_paper_offsets(seed, shape, c):
    """x̂ − x = α·C·std(x)·u with u ∈ [0, 1)ⁿ and one α ∈ [0, 1] per sample: every offset lies
    in [0, C·std(x)) coordinate-wise, and offset/(C·std) ≤ α within a sample."""
    x = batch(seed, 64, shape, 2.0)
    torch.manual_seed(seed)
    off = (perturb(x, "paper", c) - x).flatten(1)
    bound = c * x.std(correction=0)
    assert (off >= 0).all() and (off < bound).all()
    # reproduce α and u from the same random stream: α is shared by all coordinates of a sample
    torch.manual_seed(seed)
    u = torch.rand_like(x)
    alpha = torch.rand((64,) + (1,) * len(shape), dtype=x.dtype)
    torch.testing.assert_close(off, (alpha * bound * u).flatten(1))


def test_normal_offsets_have_quarter_std_per_feature():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200_000, 3, generator=g, dtype=torch.float64) * torch.tensor([0.1, 1.0, 5.0])
    torch.manual_seed(1)
    off = perturb(x, "normal") - x
    torch.testing.assert_close(off.std(0), 0.25 * x.std(0), rtol=0.01, atol=0)
    assert off.mean(0).abs().max() < 0.01 * x.std(0).max()  # both signs, centred
    # a constant feature is not perturbed at all
    x[:, 1] = 4.0
    assert ((perturb(x, "normal") - x)[:, 1] == 0).all()


@given(seeds)
def test_none_is_the_data(seed):
    x = batch(seed, 16)
    assert torch.equal(perturb(x, "none"), x)


@given(seeds, kinds, st.floats(0.0, 3.0), st.booleans())
def test_linear_critic(seed, kind, r, one_sided):
    """f = a·x: ∇f = a wherever the penalty looks, so R = (‖a‖ − 1)² or max(‖a‖ − 1, 0)²."""
    x = batch(seed, 32)
    a = batch(seed + 1, 1)[0]
    a = a / a.norm() * r
    fake = batch(seed + 2, 32) + 1  # used by the kinds that look toward the fakes
    R = dragan_penalty(lambda p: p @ a, x, kind=kind, one_sided=one_sided, fake=fake)
    want = max(r - 1, 0) ** 2 if one_sided else (r - 1) ** 2
    assert R.item() == pytest.approx(want, abs=3e-6)


@given(seeds, st.booleans())
def test_prodgan_penalty_ignores_fakes_and_sits_on_the_data(seed, one_sided):
    """PRODGAN's points are the real samples themselves: the penalty equals the gradient penalty
    computed by hand at x, whatever the fakes are (the function never sees them)."""
    x = batch(seed, 32)
    f = lambda p: torch.sin(p @ torch.tensor([2.0, -1.0], dtype=p.dtype)) + (p ** 2).sum(1)  # noqa
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(f(xr).sum(), xr)
    gap = g.norm(dim=1) - 1
    want = (gap.clamp(min=0) if one_sided else gap).pow(2).mean()
    got = dragan_penalty(f, x, kind="none", one_sided=one_sided)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


@given(seeds, kinds, st.sampled_from([(1, 4, 4), (3, 2, 2)]), st.booleans())
def test_image_batch_equals_flattened_twin(seed, kind, shape, one_sided):
    """Image batches equal their flattened twins for "none" and "normal" (which act per
    element, so flattening commutes with them), for "paper" (one std, one α per sample) and
    for the kinds that move toward the fakes (one δ or t per sample)."""
    x = batch(seed, 8, shape)
    w = batch(seed + 1, 1, shape)[0].flatten()
    f = lambda p: torch.tanh(p @ w) + 0.2 * (p ** 2).sum(1)  # noqa: E731
    torch.manual_seed(seed)
    fake = x.flip(0) + 0.5
    r_img = dragan_penalty(lambda p: f(p.flatten(1)), x, kind=kind, one_sided=one_sided,
                           fake=fake)
    torch.manual_seed(seed)
    r_flat = dragan_penalty(f, x.flatten(1), kind=kind, one_sided=one_sided,
                            fake=fake.flatten(1))
    torch.testing.assert_close(r_img, r_flat)


def test_constant_critic_is_finite():
    w = torch.zeros(2, requires_grad=True)
    x = torch.randn(16, 2)
    for kind in PERTURBATIONS:
        R = dragan_penalty(lambda p: p @ w + 1.0, x, kind=kind, fake=x + 1)
        (g,) = torch.autograd.grad(R, w)
        assert R.item() == pytest.approx(1.0, abs=1e-5) and torch.isfinite(g).all()


def test_unknown_perturbation():
    with pytest.raises(ValueError, match="kind must be one of"):
        perturb(torch.zeros(3, 2), "uniform")


# ---------------------------------------------------------------------------------- GAN losses
def test_gan_losses_finite_for_extreme_logits():
    big = torch.tensor([100.0, -100.0, 1e4, -1e4], requires_grad=True)
    for loss in (critic_loss(big, big, "gan"), generator_loss(big, "gan")):
        (g,) = torch.autograd.grad(loss, big)
        assert torch.isfinite(loss) and torch.isfinite(g).all()
    # a confident, correct critic has a loss near 0, a confidently wrong one a loss near 100
    assert critic_loss(torch.tensor([100.0]), torch.tensor([-100.0]), "gan").item() < 1e-30
    assert critic_loss(torch.tensor([-100.0]), torch.tensor([100.0]), "gan").item() == \
        pytest.approx(200.0)


@given(st.lists(st.floats(-8, 8), min_size=1, max_size=6),
       st.lists(st.floats(-8, 8), min_size=1, max_size=6))
def test_gan_losses_match_closed_form(real, fake):
    r, f = torch.tensor(real, dtype=torch.float64), torch.tensor(fake, dtype=torch.float64)

    def sig(v):
        return 1 / (1 + math.exp(-v))

    want_d = -sum(math.log(sig(v)) for v in real) / len(real) \
        - sum(math.log(1 - sig(v)) for v in fake) / len(fake)
    want_g = -sum(math.log(sig(v)) for v in fake) / len(fake)
    assert critic_loss(r, f, "gan").item() == pytest.approx(want_d, rel=1e-9)
    assert generator_loss(f, "gan").item() == pytest.approx(want_g, rel=1e-9)
    # compare Python floats: pytest.approx on a 0-d tensor depends on pytest's version
    assert critic_loss(r, f, "wgan").item() == pytest.approx(
        sum(fake) / len(fake) - sum(real) / len(real), abs=1e-12)
    assert generator_loss(f, "wgan").item() == pytest.approx(-sum(fake) / len(fake), abs=1e-12)


@pytest.mark.parametrize("argv,n_critic,iters", [([], 1, 15000), (["--loss", "wgan"], 5, 5000),
                                                 (["--loss", "wgan", "--n-critic", "3"], 3, 5000),
                                                 (["--iters", "7"], 1, 7)])
def test_loss_dependent_defaults(argv, n_critic, iters):
    import dragan
    args, _ = dragan.harness.parse_or_resume(dragan.build_parser(), argv, "dragan", set())
    assert (args.n_critic, args.iters) == (n_critic, iters)


@given(seeds, st.floats(0.0, 1.0))
def test_toward_fake_and_interpolate_points(seed, delta):
    """toward-fake: x̂ = x + δ(x_f − x) exactly; interpolate: on the segment [x, x_f]."""
    g = torch.Generator().manual_seed(seed)
    real, fake = torch.randn(16, 3, generator=g), torch.randn(16, 3, generator=g) + 2
    torch.testing.assert_close(perturb(real, "toward-fake", delta, fake),
                               real + delta * (fake - real))
    x = perturb(real, "interpolate", fake=fake)
    t = ((x - real) * (fake - real)).sum(1) / ((fake - real) ** 2).sum(1)
    assert ((t >= 0) & (t <= 1)).all()
    torch.testing.assert_close(x, real + t[:, None] * (fake - real))
    with pytest.raises(ValueError, match="fake"):
        perturb(real, "toward-fake")


@given(seeds, st.floats(0.0, 3.0))
def test_penalty_toward_fake_on_a_linear_critic(seed, r):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(3, generator=g, dtype=torch.float64)
    a = a / a.norm() * r
    real = torch.randn(8, 3, generator=g, dtype=torch.float64)
    R = dragan_penalty(lambda p: p @ a, real, "toward-fake", fake=real + 1, one_sided=True)
    assert R.item() == pytest.approx(max(r - 1, 0) ** 2, abs=3e-6)
