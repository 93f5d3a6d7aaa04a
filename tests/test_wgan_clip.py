"""Tests of wgan_clip.py: weight clipping, the Lipschitz bound K and the certified duality bound."""
import csv
import glob
import os

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import common
import wgan_clip
from common import lipschitz_bound
from wgan_clip import Critic, clip_weights_, critic_steps, mlp

seeds = st.integers(0, 2**31 - 1)


def random_critic(seed, dim, scale):
    torch.manual_seed(seed)
    net = Critic(mlp([2, dim, dim, dim, 1])).double()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(scale)
    return net


@given(seeds, st.integers(1, 12), st.floats(1e-3, 1.0), st.floats(0.1, 20.0))
def test_clip_weights(seed, dim, c, scale):
    net = random_critic(seed, dim, scale)
    before = [p.detach().clone() for p in net.parameters()]
    clip_weights_(net, c)
    for b, p in zip(before, net.parameters()):
        assert (p.abs() <= c).all()
        inside = b.abs() <= c
        assert torch.equal(p[inside], b[inside])  # already inside: unchanged
        assert torch.equal(p[~inside], c * b[~inside].sign())  # outside: moved to the boundary


@given(seeds, st.integers(1, 16), st.floats(0.2, 5.0))
def test_gradient_and_quotients_never_exceed_bound(seed, dim, scale):
    net = random_critic(seed, dim, scale)
    K = lipschitz_bound(net).item()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 2, generator=g, dtype=torch.float64) * 3
    y = torch.randn(256, 2, generator=g, dtype=torch.float64) * 3
    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(net(xr).sum(), xr)
    assert (grad.norm(dim=1) <= K * (1 + 1e-9)).all()
    with torch.no_grad():
        assert ((net(x) - net(y)).abs() <= K * (x - y).norm(dim=1) * (1 + 1e-9) + 1e-12).all()


def test_bound_is_exact_for_a_single_linear_layer():
    lin = torch.nn.Linear(2, 1, bias=True)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[3.0, 4.0]]))
    assert lipschitz_bound(lin).item() == pytest.approx(5.0)


@given(seeds, st.integers(8, 40), st.floats(0.2, 5.0))
def test_conv_critic_bound_holds_on_digits(seed, dim, scale):
    """The digits' convolutional critic: ‖∇f‖ and every quotient stay below K."""
    torch.manual_seed(seed)
    net = wgan_clip.ConvCritic(dim).double()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(scale)
    K = lipschitz_bound(net, (1, 8, 8)).item()
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(64, 1, 8, 8, generator=g, dtype=torch.float64)
    y = torch.rand(64, 1, 8, 8, generator=g, dtype=torch.float64) * 2 - 0.5
    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(net(xr).sum(), xr)
    assert (grad.flatten(1).norm(dim=1) <= K * (1 + 1e-9)).all()
    with torch.no_grad():
        assert ((net(x) - net(y)).abs()
                <= K * (x - y).flatten(1).norm(dim=1) * (1 + 1e-9) + 1e-12).all()


@pytest.mark.parametrize("stride,padding", [(1, 1), (2, 1), (2, 0)])
def test_bound_of_one_convolution_is_its_operator_norm(stride, padding):
    """A lone convolution: K is the largest singular value of its Jacobian (a linear map),
    which depends on the input size through padding and stride."""
    torch.manual_seed(stride + padding)
    conv = torch.nn.Conv2d(2, 3, 4 if stride == 2 else 3, stride, padding).double()
    x = torch.zeros(1, 2, 8, 8, dtype=torch.float64)
    J = torch.autograd.functional.jacobian(conv, x).reshape(-1, x.numel())
    assert lipschitz_bound(conv, (2, 8, 8)).item() == pytest.approx(
        torch.linalg.matrix_norm(J, ord=2).item(), rel=1e-10)
    assert lipschitz_bound(conv, (2, 8, 8)).item() != pytest.approx(
        lipschitz_bound(conv, (2, 4, 4)).item(), rel=1e-6)  # another input, another map


@given(seeds, st.floats(1e-3, 0.5), st.integers(2, 40), st.floats(0.5, 3.0))
def test_duality_bound_for_clipped_critics(seed, c, n, spread):
    """E f(real) − E f(fake) ≤ K·W1(real, fake) for any clipped critic and any clouds."""
    net = random_critic(seed, 8, 10.0)
    clip_weights_(net, c)
    K = lipschitz_bound(net).item()
    rng = np.random.default_rng(seed)
    p = torch.tensor(rng.normal(size=(n, 2)))
    q = torch.tensor(rng.normal(size=(n, 2)) * spread + 1.0)
    with torch.no_grad():
        est = (net(p).mean() - net(q).mean()).item()
    assert est <= K * common.w1(p, q) + 1e-12


def test_warmup_schedule():
    args = wgan_clip.build_parser().parse_args([])
    steps = [critic_steps(args, it) for it in range(1200)]
    assert steps[:25] == [100] * 25 and steps[25:500] == [5] * 475
    assert steps[500] == steps[1000] == 100 and steps[501] == 5
    assert sum(s == 100 for s in steps) == 27
    args = wgan_clip.build_parser().parse_args(["--no-warmup-schedule", "--n-critic", "3"])
    assert {critic_steps(args, it) for it in range(1200)} == {3}


def test_script_with_schedule_keeps_weights_clipped(tmp_path, capsys):
    out = str(tmp_path / "runs")
    assert wgan_clip.main(["--iters", "2", "--eval-every", "2", "--dim", "8", "--batch", "16",
                           "--clip", "0.02", "--out", out]) == 0
    (d,) = glob.glob(os.path.join(out, "*"))
    ck = torch.load(os.path.join(d, "checkpoint.pt"), map_location="cpu", weights_only=True)
    assert all((v.abs() <= 0.02).all() for v in ck["D"].values())
    rows = list(csv.DictReader(open(os.path.join(d, "metrics.csv"))))
    for r in rows:
        assert float(r["certified"]) == 1.0
        assert float(r["critic_estimate"]) <= float(r["lipschitz_bound"]) * float(r["w1"]) * 1.5
    assert 0 < float(rows[-1]["clipped_share"]) <= 1
    assert "K " in capsys.readouterr().out


def test_clipping_the_weights_only_leaves_the_biases_free():
    """The W1 benchmark's WGAN (--weights-only) clips the weight matrices, not the biases."""
    net = random_critic(0, 8, 5.0)
    biases = {n: p.detach().clone() for n, p in net.named_parameters() if n.endswith("bias")}
    assert any((b.abs() > 0.01).any() for b in biases.values())
    clip_weights_(net, 0.01, biases=False)
    for n, p in net.named_parameters():
        if n.endswith("bias"):
            assert torch.equal(p, biases[n])
        else:
            assert (p.abs() <= 0.01).all()
