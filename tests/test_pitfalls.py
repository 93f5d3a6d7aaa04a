"""What goes wrong when a gradient penalty is copied into another model (the public trackers
of WGAN code are full of these), answered for every penalty and constraint a user can copy:
image-shaped batches, conditional critics f(x, y), batch norm in the critic, a flat critic,
float64, a batch of one, and the double backward some of them need."""
import functools
import inspect
import warnings

import pytest
import torch

from dragan import dragan_penalty
from slogan import lipschitz_penalty
from wgan_alp import alp_penalty
from wgan_ct import c_transform
from wgan_div import divergence_penalty
from wgan_gn import GradNorm, grad_normalized
from wgan_gp import gradient_penalty
from zero_centred import zero_centred_penalty

# Each penalty as f(critic, real, fake) -> R; the c-transform's critic value is the objective.
PENALTIES = {
    "gradient_penalty": lambda f, r, x: gradient_penalty(f, r, x),
    "lipschitz_penalty": lambda f, r, x: lipschitz_penalty(f, r, x),
    "dragan_penalty": lambda f, r, x: dragan_penalty(f, r),
    "dragan_penalty interpolate": lambda f, r, x: dragan_penalty(f, r, "interpolate", fake=x),
    "zero_centred_penalty": lambda f, r, x: zero_centred_penalty(f, r, x, "interpolate"),
    "divergence_penalty": lambda f, r, x: divergence_penalty(f, r, x),
    "alp_penalty": lambda f, r, x: alp_penalty(f, r, x, 0.1, 1.0, 0.5),
    "c_transform": lambda f, r, x: -(f(r).mean() + c_transform(f(r), r, x).mean()),
    "GradNorm": lambda f, r, x: GradNorm(f)(x).mean() - GradNorm(f)(r).mean(),
}
# Those that take their points on real–fake segments, one t per sample.
SEGMENTS = ["gradient_penalty", "lipschitz_penalty", "dragan_penalty interpolate",
            "zero_centred_penalty", "divergence_penalty"]


def batch(n=6, shape=(1, 3, 3), seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, *shape, generator=g, dtype=dtype),
            torch.randn(n, *shape, generator=g, dtype=dtype) + 2)


@pytest.mark.parametrize("name", SEGMENTS)
def test_image_batches_take_one_t_per_sample_and_norms_over_every_pixel(name):
    """The two most common bugs in public WGAN-GP code: t drawn per pixel instead of per
    sample, and the norm over one image axis instead of all. With f = ½‖x‖² (∇f = x) on
    (N, 1, 3, 3) images every point the penalty looks at lies on its sample's segment at one t,
    and the penalty is the one computed from ‖x̂‖ over all 9 pixels."""
    real, fake = batch()
    seen = []

    def f(x):
        seen.append(x.detach().clone())
        return 0.5 * x.flatten(1).pow(2).sum(1)
    torch.manual_seed(0)
    PENALTIES[name](f, real, fake)
    on_segments = [x for x in seen if x.shape == real.shape and not torch.equal(x, real)
                   and not torch.equal(x, fake)]
    assert on_segments, "the penalty looked at no interpolate"
    for x in on_segments:
        t = (x - real) / (fake - real)
        assert torch.allclose(t, t.flatten(1)[:, :1, None, None].expand_as(t), atol=1e-4)
    if name == "gradient_penalty":
        x = on_segments[0]
        want = ((x.flatten(1).pow(2).sum(1) + 1e-12).sqrt() - 1).pow(2).mean()
        torch.manual_seed(0)
        torch.testing.assert_close(gradient_penalty(f, real, fake), want)


class Conditional(torch.nn.Module):
    """f(x, y): the image and a one-hot label, concatenated."""

    def __init__(self, batch_norm=False):
        super().__init__()
        torch.manual_seed(1)
        self.net = torch.nn.Sequential(torch.nn.Linear(9 + 3, 16),
                                       *([torch.nn.BatchNorm1d(16)] if batch_norm else []),
                                       torch.nn.Tanh(), torch.nn.Linear(16, 1))

    def forward(self, x, y):  # steep, so that the one-sided penalties are active
        return 30 * self.net(torch.cat([x.flatten(1), y], 1)).squeeze(-1)


@pytest.mark.parametrize("name", sorted(PENALTIES))
def test_a_conditional_critic_works_as_lambda_x_d_x_y(name):
    """The usual pattern, `lambda x: D(x, y)` with y one label per sample, works with every
    penalty (ALP's critic sees the real and the fake batch apart, N samples each), and the
    result reaches the critic's weights."""
    real, fake = batch()
    y = torch.nn.functional.one_hot(torch.arange(6) % 3, 3).float()
    D = Conditional()
    out = PENALTIES[name](lambda x: D(x, y), real, fake)
    assert torch.isfinite(out)
    grads = torch.autograd.grad(out, list(D.parameters()), allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_gradnorm_of_a_conditional_critic_normalises_by_the_gradient_in_x():
    real, _ = batch()
    y = torch.nn.functional.one_hot(torch.arange(6) % 3, 3).float()
    D = Conditional()
    torch.testing.assert_close(GradNorm(D)(real, y), grad_normalized(lambda x: D(x, y), real))


BN_PENALTIES = [n for n in PENALTIES if n not in ("c_transform", "GradNorm")]


@pytest.mark.parametrize("name", BN_PENALTIES)
def test_batch_norm_in_training_mode_is_warned_about_once(name):
    """Batch norm couples a batch's samples, so a per-sample gradient penalty is no longer per
    sample: a critic that is a module holding one in training mode (or a partial or a bound
    method of such a module) gets a warning naming the way out; in eval mode, none."""
    real, fake = batch()
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(9, 8), torch.nn.BatchNorm1d(8),
                              torch.nn.Tanh(), torch.nn.Linear(8, 1))
    for critic in (net, functools.partial(net.__call__), net.forward):
        with pytest.warns(UserWarning, match="LayerNorm"):
            PENALTIES[name](critic, real, fake)
    net.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PENALTIES[name](net, real, fake)


@pytest.mark.parametrize("name", sorted(PENALTIES))
def test_a_flat_critic_float64_and_a_batch_of_one(name):
    """‖∇f‖ = 0 everywhere, through a weight (f = w·(0·x)): a finite value and a finite
    gradient for w, not the NaN of d‖g‖/dg at g = 0; float64 in, float64 out; one sample."""
    w = torch.ones((), dtype=torch.float64, requires_grad=True)
    for n in (1, 5):
        real, fake = batch(n, dtype=torch.float64)
        flat = lambda x: w * (0 * x).flatten(1).sum(1)  # noqa: E731
        out = PENALTIES[name](flat, real, fake)
        assert out.dtype == torch.float64 and torch.isfinite(out)
        if out.requires_grad:
            (g,) = torch.autograd.grad(out, w, allow_unused=True)
            assert g is None or torch.isfinite(g)


def double_backward(fn) -> bool:
    return "create_graph" in inspect.getsource(fn)


@pytest.mark.parametrize("fn", [gradient_penalty, dragan_penalty, zero_centred_penalty,
                                divergence_penalty, grad_normalized, lipschitz_penalty,
                                alp_penalty, c_transform])
def test_the_docstring_says_where_a_double_backward_is_needed(fn):
    """Every penalty whose value is a gradient needs a second derivative for the critic's update:
    its docstring says so and what that excludes (torch.compile, cuDNN's RNNs); the first-order
    ones do not claim it."""
    doc = " ".join(inspect.getdoc(fn).split())
    if double_backward(fn):
        assert "double backward" in doc and "torch.compile" in doc and "cuDNN" in doc, fn
    else:
        assert "double backward" not in doc or "no double backward" in doc, fn
