"""Property tests of wgan_gp.gradient_penalty on critics whose gradient is known in closed form."""
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from wgan_gp import gradient_penalty

seeds = st.integers(0, 2**31 - 1)
norms = st.floats(0.0, 3.0)
shapes = st.sampled_from([(2,), (3,), (1, 4, 4), (3, 2, 5)])


def batch(seed, n, shape, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn((n,) + shape, generator=g, dtype=torch.float64) * scale


def direction(seed, shape, norm):
    a = batch(seed + 99, 1, shape)[0]
    return a / a.norm() * norm


@given(seeds, shapes, norms, st.booleans())
def test_linear_critic(seed, shape, r, one_sided):
    """f(x) = <a, x>: ∇f = a everywhere, so R = (‖a‖ − 1)² or max(‖a‖ − 1, 0)² for any data."""
    real, fake = batch(seed, 16, shape), batch(seed + 1, 16, shape, 3.0) + 2
    a = direction(seed, shape, r)
    R = gradient_penalty(lambda x: (x * a).flatten(1).sum(1), real, fake, one_sided=one_sided)
    want = max(r - 1, 0) ** 2 if one_sided else (r - 1) ** 2
    assert R.item() == pytest.approx(want, abs=3e-6)  # sqrt(eps) = 1e-6 shows at ‖a‖ = 0


@given(seeds, st.booleans())
def test_radial_critic_has_zero_penalty(seed, one_sided):
    """f(x) = ‖x − c‖ with c away from the data has ‖∇f‖ = 1 on the whole segment hull."""
    real, fake = batch(seed, 32, (2,)), batch(seed + 1, 32, (2,)) + 1
    c = torch.tensor([50.0, -40.0], dtype=torch.float64)
    R = gradient_penalty(lambda x: (x - c).norm(dim=1), real, fake, one_sided=one_sided)
    assert R.item() == pytest.approx(0.0, abs=1e-10)


@given(seeds, norms.filter(lambda r: abs(r - 1) > 1e-3), st.booleans())
def test_gradient_wrt_weights_matches_analytic(seed, r, one_sided):
    """dR/da for f = <a, x>: 2(‖a‖ − 1)·a/‖a‖ (two-sided), 2·max(‖a‖ − 1, 0)·a/‖a‖ (one-sided)."""
    real, fake = batch(seed, 8, (3,)), batch(seed + 1, 8, (3,))
    a = direction(seed, (3,), max(r, 1e-3)).requires_grad_(True)
    R = gradient_penalty(lambda x: x @ a, real, fake, one_sided=one_sided)
    (g,) = torch.autograd.grad(R, a)
    n = a.detach().norm()
    gap = (n - 1).clamp(min=0) if one_sided else n - 1
    torch.testing.assert_close(g, 2 * gap * a.detach() / n, rtol=1e-6, atol=1e-9)


@given(seeds, st.sampled_from([(1, 4, 4), (3, 2, 5), (2, 8)]), st.booleans())
def test_image_batch_equals_flattened_twin(seed, shape, one_sided):
    """The norm runs over all non-batch dimensions: an (N, C, H, W) batch gives the penalty of the
    same data flattened to (N, C·H·W), for a non-linear critic too."""
    real, fake = batch(seed, 12, shape), batch(seed + 1, 12, shape)
    w = batch(seed + 2, 1, shape)[0].flatten()

    def flat_critic(x):
        return torch.tanh(x @ w) + 0.3 * (x ** 2).sum(1)

    torch.manual_seed(seed)
    R_img = gradient_penalty(lambda x: flat_critic(x.flatten(1)), real, fake, one_sided=one_sided)
    torch.manual_seed(seed)
    R_flat = gradient_penalty(flat_critic, real.flatten(1), fake.flatten(1), one_sided=one_sided)
    torch.testing.assert_close(R_img, R_flat)


@given(seeds, shapes)
def test_penalty_points_on_segments_one_t_per_sample(seed, shape):
    real, fake = batch(seed, 64, shape), batch(seed + 1, 64, shape) + 5
    seen = []

    def spy(x):
        seen.append(x.detach().clone())
        return x.flatten(1).sum(1)

    gradient_penalty(spy, real, fake)
    (x_hat,) = seen
    t = (x_hat - fake) / (real - fake)  # elementwise; equal within a sample if t is per sample
    t = t.flatten(1)
    assert torch.allclose(t, t[:, :1].expand_as(t), atol=1e-9)
    assert ((t >= 0) & (t <= 1)).all()
    assert t[:, 0].unique().numel() > 32  # a different t for (almost) every sample


def test_constant_critic_is_finite():
    """At ∇f = 0 the norm's derivative is undefined; the eps keeps the penalty and its gradient
    finite (pytorch/pytorch #2534): R = 1 two-sided, 0 one-sided."""
    c = torch.nn.Parameter(torch.tensor(0.7))
    w = torch.nn.Parameter(torch.zeros(2))
    real, fake = torch.randn(16, 2), torch.randn(16, 2)
    for one_sided, want in ((False, 1.0), (True, 0.0)):
        R = gradient_penalty(lambda x: x @ w + c, real, fake, one_sided=one_sided)
        gw, gc = torch.autograd.grad(R, [w, c], allow_unused=True)
        assert R.item() == pytest.approx(want, abs=1e-5)
        assert torch.isfinite(gw).all() and (gc is None or torch.isfinite(gc))


def test_nn_module_critic_weights_receive_the_gradient():
    """With an nn.Module critic and (N, 1) output, backward reaches every weight matrix (the
    output bias does not change ∇f, so it gets no gradient)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    R = gradient_penalty(net, torch.randn(32, 2), torch.randn(32, 2))
    R.backward()
    assert all(p.grad.abs().sum() > 0 for p in net.parameters() if p.dim() == 2)
    assert math.isfinite(R.item())


def test_penalty_does_not_train_the_generator():
    """real and fake are detached: the penalty's gradient never reaches what produced them."""
    z = torch.randn(16, 2, requires_grad=True)
    w = torch.tensor(3.0, requires_grad=True)
    R = gradient_penalty(lambda x: w * (x ** 2).sum(1), torch.randn(16, 2), 2 * z)
    R.backward()
    assert z.grad is None and w.grad is not None and w.grad != 0


@given(st.floats(0.01, 1.0), st.floats(1.0, 100.0), st.floats(0.0, 1.0))
def test_lambda_ramp_is_geometric_from_start_to_end(lam0, lam1, progress):
    import argparse
    from wgan_gp import lambda_at
    args = argparse.Namespace(lam=lam1, lambda_from=lam0)
    got = lambda_at(args, torch.tensor(progress, dtype=torch.float64)).item()
    assert got == pytest.approx(lam0 * (lam1 / lam0) ** progress, rel=1e-9)
    assert lambda_at(args, torch.tensor(2.0)).item() == pytest.approx(lam1, rel=1e-6)  # clamped
    assert lambda_at(argparse.Namespace(lam=lam1, lambda_from=None), progress) == lam1


def test_lambda_ramp_runs_and_rises(tmp_path, capsys):
    """The logged λ (mean over each evaluation interval) rises from --lambda-from to --lambda."""
    import csv
    import glob
    import os
    import wgan_gp
    out = str(tmp_path / "runs")
    assert wgan_gp.main(["--lambda-from", "0.1", "--lambda", "10", "--iters", "9",
                         "--eval-every", "3", "--dim", "8", "--batch", "16", "--n-critic", "2",
                         "--out", out]) == 0
    (d,) = glob.glob(os.path.join(out, "*"))
    rows = list(csv.DictReader(open(os.path.join(d, "metrics.csv"))))
    assert rows[0]["lambda"] == ""  # no step before the first evaluation: no value
    lams = [float(r["lambda"]) for r in rows[1:]]
    assert 0.1 <= lams[0] < lams[1] < lams[2] <= 10
    assert wgan_gp.main(["--iters", "2", "--eval-every", "2", "--dim", "8", "--batch", "16",
                         "--out", str(tmp_path / "fixed")]) == 0
    (d,) = glob.glob(os.path.join(str(tmp_path / "fixed"), "*"))
    assert float(list(csv.DictReader(open(os.path.join(d, "metrics.csv"))))[-1]["lambda"]) == 10


@given(a=st.lists(st.floats(-3, 3, allow_nan=False), min_size=2, max_size=4),
       seed=st.integers(0, 2**31 - 1))
def test_the_unsquared_one_sided_penalty_is_the_excess_slope(a, seed):
    """Q6's penalty on f = a·x: max(‖a‖ − 1, 0), not its square; its gradient for a does not
    fade as ‖a‖ comes down to 1 (a/‖a‖ for every violation), where the squared one's does."""
    a = torch.tensor(a, dtype=torch.float64, requires_grad=True)
    g = torch.Generator().manual_seed(seed)
    real, fake = (torch.randn(8, len(a), generator=g, dtype=torch.float64) for _ in range(2))
    pen = gradient_penalty(lambda x: x @ a, real, fake, one_sided=True, power=1.0)
    norm = math.sqrt(a.norm().item() ** 2 + 1e-12)
    assert pen.item() == pytest.approx(max(norm - 1, 0), rel=1e-9, abs=1e-12)
    if norm > 1.01:
        (grad,) = torch.autograd.grad(pen, a)
        torch.testing.assert_close(grad, a.detach() / norm, rtol=1e-9, atol=1e-12)
