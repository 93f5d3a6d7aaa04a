"""What a user copying a penalty can rely on, the same for every penalty: it works under
torch.no_grad() (evaluation code often runs there), gives the same value there as outside, keeps
its gradient for the critic's weights, and refuses an empty batch instead of returning NaN."""
import pytest
import torch

from dragan import dragan_penalty
from slogan import lipschitz_penalty
from wgan_div import divergence_penalty
from wgan_alp import alp_penalty
from wgan_gp import gradient_penalty
from zero_centred import zero_centred_penalty

PENALTIES = {
    "gradient_penalty": lambda f, r, x: gradient_penalty(f, r, x),
    "gradient_penalty one-sided": lambda f, r, x: gradient_penalty(f, r, x, one_sided=True),
    "lipschitz_penalty": lambda f, r, x: lipschitz_penalty(f, r, x),
    "lipschitz_penalty all pairs": lambda f, r, x: lipschitz_penalty(f, r, x, pairs="all"),
    "dragan_penalty": lambda f, r, x: dragan_penalty(f, r),
    "dragan_penalty normal": lambda f, r, x: dragan_penalty(f, r, kind="normal"),
    "divergence_penalty": lambda f, r, x: divergence_penalty(f, r, x),
    "divergence_penalty real-fake": lambda f, r, x: divergence_penalty(f, r, x,
                                                                       points="real-fake"),
    "alp_penalty": lambda f, r, x: alp_penalty(f, r, x, 0.05, 0.5, 0.5),
    "R1 (zero_centred_penalty)": lambda f, r, x: zero_centred_penalty(f, r, x, "none"),
    "R2 (zero_centred_penalty)": lambda f, r, x: zero_centred_penalty(f, r, x, "fake"),
    "0-GP (zero_centred_penalty)": lambda f, r, x: zero_centred_penalty(f, r, x, "interpolate"),
    "gradient_penalty unsquared": lambda f, r, x: gradient_penalty(f, r, x, one_sided=True,
                                                                   power=1.0),
}


def critic():
    """A critic steeper than 1 almost everywhere, so that the one-sided penalties are active."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    with torch.no_grad():
        net[2].weight.mul_(20)
    return net


@pytest.mark.parametrize("name", PENALTIES)
def test_same_value_under_no_grad_and_gradient_kept(name):
    pen, f = PENALTIES[name], critic()
    real, fake = torch.randn(32, 2) * 3, torch.randn(32, 2) * 3 + 1
    torch.manual_seed(1)
    want = pen(f, real, fake)
    with torch.no_grad():
        torch.manual_seed(1)
        got = pen(f, real, fake)
    assert torch.isfinite(got) and got.item() == pytest.approx(want.item(), rel=1e-6)
    (g,) = torch.autograd.grad(want, f[0].weight)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


@pytest.mark.parametrize("name", PENALTIES)
def test_empty_batch_is_an_error(name):
    empty = torch.zeros(0, 2)
    with pytest.raises(ValueError, match="non-empty"):
        PENALTIES[name](critic(), empty, empty)


def test_mismatched_batches_are_an_error():
    with pytest.raises(ValueError, match="one shape"):
        gradient_penalty(critic(), torch.zeros(4, 2), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="one shape"):
        lipschitz_penalty(critic(), torch.zeros(4, 2), torch.zeros(5, 2))
    assert torch.isfinite(lipschitz_penalty(critic(), torch.zeros(4, 2), torch.ones(5, 2),
                                            pairs="all"))  # any two sizes for all pairs


@pytest.mark.parametrize("name", PENALTIES)
@pytest.mark.parametrize("shape", ["two scores", "a scalar", "one number for the batch"])
def test_a_critic_that_is_not_one_score_per_sample_is_an_error(name, shape):
    """A critic returning (N, 2) or a mean over the batch would give a number that looks fine
    (the gradient of f₁ + f₂; ∇ of a mean, 1/N of a sample's): refused, saying what it got."""
    net = critic()
    wrong = {"two scores": lambda x: torch.cat([net(x), net(x)], dim=1),
             "a scalar": lambda x: net(x).mean(),
             "one number for the batch": lambda x: net(x).mean().reshape(1, 1)}[shape]
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    with pytest.raises(ValueError, match=r"\(N,\) or \(N, 1\) scores"):
        PENALTIES[name](wrong, real, fake)
    for fine in (net, lambda x: net(x).squeeze(-1)):  # (N, 1) and (N,) both are scores
        assert torch.isfinite(PENALTIES[name](fine, real, fake))
