"""Spectral normalisation (wgan_sn.py) on critics where the answer is known: after enough power
iterations every normalised layer has largest singular value 1, so an MLP critic's exact bound
K = Π‖W_l‖₂ is ≤ 1 and no finite-difference quotient exceeds it; a convolution's reshaped σ is
not its operator norm; measuring never moves u; a captured step still updates it."""
import pytest
import torch
from hypothesis import given, strategies as st

import common
import harness
from test_cuda_branch import capturable_on_cpu, no_host_sync  # noqa: F401, F811
from wgan_sn import ConvCritic, layer_sigmas, spectral_normalize_


def converged(critic, shape, steps=100):
    for _ in range(steps):  # each training-mode forward takes n power-iteration steps
        critic(torch.zeros((2, *shape)))
    return critic


def buffers(critic, name):
    return [b.clone() for n, b in critic.named_buffers() if n.endswith(name)]


@given(seed=st.integers(0, 2**31 - 1), width=st.integers(2, 24), depth=st.integers(1, 3),
       scale=st.floats(0.1, 30))
def test_every_layer_ends_with_sigma_1_and_the_mlp_is_1_lipschitz(seed, width, depth, scale):
    torch.manual_seed(seed)
    layers = [torch.nn.Linear(2, width), torch.nn.ReLU()]
    for _ in range(depth - 1):
        layers += [torch.nn.Linear(width, width), torch.nn.LeakyReLU(0.2)]
    net = torch.nn.Sequential(*layers, torch.nn.Linear(width, 1))
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(scale)  # far from 1-Lipschitz before normalising
    converged(spectral_normalize_(net, n_power_iterations=5), (2,))
    for m in net.modules():
        if isinstance(m, torch.nn.Linear):
            net.eval()
            assert torch.linalg.matrix_norm(m.weight.double(), 2).item() == pytest.approx(
                1, abs=2e-3)
    assert layer_sigmas(net).sub(1).abs().max() < 2e-3
    net.eval()
    k = common.lipschitz_bound(net).item()
    assert k <= 1 + 5e-3
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(256, 2, generator=g) * 3, torch.randn(256, 2, generator=g) * 3
    with torch.no_grad():
        q = (net(x) - net(y)).abs().squeeze(-1) / (x - y).norm(dim=1)
    assert q.max().item() <= k * (1 + 1e-4)


def test_a_convolutions_sigma_is_not_its_operator_norm():
    """The paper's (and torch's) σ of a convolution is that of its kernel reshaped to
    (out, in·kh·kw): every layer at σ = 1 and still K = 2.6 on the digits' critic."""
    torch.manual_seed(0)
    critic = converged(spectral_normalize_(ConvCritic(32)), (1, 8, 8), steps=200)
    assert layer_sigmas(critic).sub(1).abs().max() < 1e-3
    critic.eval()
    assert common.lipschitz_bound(critic, (1, 8, 8)).item() > 1.5


def test_measuring_never_moves_u_and_training_does():
    torch.manual_seed(0)
    critic = spectral_normalize_(ConvCritic(16))
    u0 = buffers(critic, "_u")
    layer_sigmas(critic)  # reads the weights in eval mode
    critic.eval()
    critic(torch.rand(4, 1, 8, 8))
    critic.train()
    assert all(torch.equal(a, b) for a, b in zip(u0, buffers(critic, "_u")))
    critic(torch.rand(4, 1, 8, 8))
    assert not all(torch.equal(a, b) for a, b in zip(u0, buffers(critic, "_u")))
    assert critic.training  # layer_sigmas leaves the mode as it found it


def test_normalising_twice_changes_nothing_and_bad_counts_are_refused():
    torch.manual_seed(0)
    net = spectral_normalize_(torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Linear(4, 1)))
    keys = set(net.state_dict())
    assert set(spectral_normalize_(net, 3).state_dict()) == keys
    with pytest.raises(ValueError, match="n_power_iterations"):
        spectral_normalize_(torch.nn.Linear(2, 2), 0)


def test_a_captured_step_still_updates_u_and_v(monkeypatch, capturable_on_cpu):  # noqa: F811
    """The power iteration writes u and v in place inside the step: what a CUDA graph
    captures, and replays, so the replayed steps keep the estimate moving."""
    import wgan_sn
    args, _ = harness.parse_or_resume(wgan_sn.build_parser(), ["--dim", "8", "--batch", "8"],
                                     "wgan_sn", set())
    torch.manual_seed(0)
    G, D = wgan_sn.make_models(args)
    opt_g, opt_d = wgan_sn.make_optimizers(G, D, args, capturable=True)
    wgan_sn.train_step(G, D, opt_g, opt_d, args, 2)  # the warm-up
    u0, v0 = buffers(D, "_u"), buffers(D, "_v")
    with no_host_sync(monkeypatch):
        wgan_sn.train_step(G, D, opt_g, opt_d, args, 2)
    # (the last layer's u has one entry, ±1 always: its v moves instead)
    assert all(not torch.equal(a, b) for a, b in zip(u0, buffers(D, "_u")) if a.numel() > 1)
    assert all(not torch.equal(a, b) for a, b in zip(v0, buffers(D, "_v")))


def test_a_run_logs_sigma_and_the_certified_bound(tmp_path):
    import csv
    import glob
    import os
    import wgan_sn
    out = str(tmp_path / "runs")
    assert wgan_sn.main(["--iters", "2", "--eval-every", "2", "--dim", "8", "--batch", "16",
                         "--out", out]) == 0
    (path,) = glob.glob(os.path.join(out, "*", "metrics.csv"))
    for r in csv.DictReader(open(path)):
        assert 0.9 < float(r["sigma_max"]) < 1.1 and float(r["lipschitz_bound"]) <= 1.5
        assert float(r["certified"]) == 1.0  # the estimate is below K·W1 of the same samples
        assert float(r["estimate_over_w1"]) <= float(r["lipschitz_bound"]) + 1e-6


# --------------------------------------------- σ as a constant (the W1 benchmark's SN-GAN)
def test_constant_sigma_normalises_alike_with_the_gradient_over_sigma():
    """ConstantSigma reaches the same W/σ(W) as torch's spectral norm (σ the exact largest
    singular value once the power iteration has converged), but its gradient treats σ as a
    number: for L = Σ C ⊙ W/σ, dL/dW = C/σ exactly, where torch's has the extra term
    −(Σ C ⊙ W/σ)·uvᵀ/σ."""
    from wgan_sn import ConstantSigma
    torch.manual_seed(0)
    ours = spectral_normalize_(torch.nn.Linear(6, 4), 50, constant_sigma=True)
    theirs = spectral_normalize_(torch.nn.Linear(6, 4), 50)
    theirs.parametrizations.weight.original.data.copy_(ours.parametrizations.weight.original)
    assert isinstance(ours.parametrizations.weight[0], ConstantSigma)
    for _ in range(3):  # the power iterations converge
        ours.weight, theirs.weight
    w = ours.parametrizations.weight.original.detach()
    sigma = torch.linalg.matrix_norm(w.double(), 2).float()
    assert torch.allclose(ours.weight, w / sigma, atol=1e-6)
    assert torch.allclose(ours.weight, theirs.weight, atol=1e-6)
    c = torch.randn(4, 6)
    (g_ours,) = torch.autograd.grad((c * ours.weight).sum(), ours.parametrizations.weight.original)
    (g_theirs,) = torch.autograd.grad((c * theirs.weight).sum(),
                                      theirs.parametrizations.weight.original)
    assert torch.allclose(g_ours, c / sigma, atol=1e-6)
    assert not torch.allclose(g_theirs, c / sigma, atol=1e-3)
    u0 = ours.parametrizations.weight[0].u.clone()
    ours.eval()
    ours(torch.randn(2, 6))
    assert torch.equal(u0, ours.parametrizations.weight[0].u)  # measuring never moves u
    assert {"parametrizations.weight.0.u", "parametrizations.weight.0.v"} <= set(
        ours.state_dict())  # a checkpoint resumes them
