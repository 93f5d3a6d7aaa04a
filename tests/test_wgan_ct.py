"""Property tests of wgan_ct.c_transform, where the right answer is known from optimal transport:
the critic's value is a lower bound on the batches' exact W1 for every critic, reached by the
optimal dual potential; f^c is 1-Lipschitz; the entropic version is a bounded soft minimum."""
import math

import numpy as np
import ot
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

import common
from wgan_ct import c_transform, minimiser_top_share

seeds = st.integers(0, 2**31 - 1)
sizes = st.integers(1, 24)
dims = st.integers(1, 5)


def cloud(seed, n, d, shift=0.0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64) * scale + shift


def critic_of(kind, seed, d):
    """Analytic critics of every kind: linear, radial, a random MLP (any Lipschitz constant),
    and a constant. The bound must hold for all of them: no constraint is assumed."""
    g = torch.Generator().manual_seed(seed + 7)
    if kind == "linear":
        a = torch.randn(d, generator=g, dtype=torch.float64) * 3
        return lambda x: x @ a
    if kind == "radial":
        c = torch.randn(d, generator=g, dtype=torch.float64)
        return lambda x: -2.5 * (x - c).norm(dim=1)
    if kind == "mlp":
        w1 = torch.randn(d, 16, generator=g, dtype=torch.float64) * 2
        w2 = torch.randn(16, generator=g, dtype=torch.float64) * 2
        return lambda x: torch.tanh(x @ w1) @ w2
    return lambda x: torch.full((len(x),), 4.2, dtype=torch.float64)


@given(seeds, sizes, dims, st.sampled_from(["linear", "radial", "mlp", "constant"]),
       st.floats(0.0, 3.0))
def test_value_is_a_lower_bound_on_the_batch_w1(seed, n, d, kind, shift):
    x, y = cloud(seed, n, d), cloud(seed + 1, n, d, shift, 1.5)
    f = critic_of(kind, seed, d)
    value = (f(x).mean() + c_transform(f(x), x, y).mean()).item()
    assert value <= common.w1(y, x) + 1e-9


@given(seeds, st.integers(1, 12), dims)
def test_optimal_potential_reaches_the_batch_w1(seed, n, d):
    """With f(x_i) = u_i, the assignment problem's dual potential, the value equals W1."""
    x, y = cloud(seed, n, d), cloud(seed + 1, n, d, 1.0)
    cost = cdist(x.numpy(), y.numpy())
    w = np.full(n, 1.0 / n)
    w1, log = ot.emd2(w, w, cost, log=True)
    u = torch.tensor(log["u"], dtype=torch.float64)
    value = (u.mean() + c_transform(u, x, y).mean()).item()
    assert value == pytest.approx(w1, rel=1e-9, abs=1e-9)


def test_one_dimensional_closed_form():
    """In 1-D, W1 between equal-size samples is the mean gap of the sorted points, and
    f(x) = −x is optimal when every fake lies to the right of every real point."""
    x = torch.tensor([[0.0], [1.0], [2.5]], dtype=torch.float64)
    y = x + 4.0
    value = ((-x[:, 0]).mean() + c_transform(-x[:, 0], x, y).mean()).item()
    assert value == pytest.approx(4.0, abs=1e-12)


@given(seeds, sizes, dims, st.sampled_from(["linear", "radial", "mlp"]), st.floats(0.0, 0.5))
def test_c_transform_is_1_lipschitz_in_y(seed, n, d, kind, eps):
    x = cloud(seed, n, d)
    y, y2 = cloud(seed + 1, 16, d, 0.5), cloud(seed + 2, 16, d, 0.5)
    f = critic_of(kind, seed, d)
    a, b = c_transform(f(x), x, y, eps), c_transform(f(x), x, y2, eps)
    assert ((a - b).abs() <= (y - y2).norm(dim=1) + 1e-9).all()


@given(seeds, sizes, dims, st.floats(1e-3, 2.0))
def test_entropic_transform_is_a_bounded_soft_minimum(seed, n, d, eps):
    """f^c ≤ f^{c,ε} ≤ f^c + ε log B, so the entropic value exceeds the batch W1 by at most
    ε log B; the other sign (−max) would break the lower bound."""
    x, y = cloud(seed, n, d), cloud(seed + 1, n, d, 1.0)
    f = critic_of("mlp", seed, d)
    hard, soft = c_transform(f(x), x, y), c_transform(f(x), x, y, eps)
    assert (soft >= hard - 1e-9).all() and (soft <= hard + eps * math.log(n) + 1e-9).all()
    value = (f(x).mean() + soft.mean()).item()
    assert value <= common.w1(y, x) + eps * math.log(n) + 1e-9


@given(seeds, sizes, dims)
def test_entropic_tends_to_the_minimum(seed, n, d):
    x, y = cloud(seed, n, d), cloud(seed + 1, n, d, 1.0)
    f = critic_of("radial", seed, d)
    hard = c_transform(f(x), x, y)
    gaps = [(c_transform(f(x), x, y, eps) - hard).abs().max().item() for eps in (1e-1, 1e-3, 1e-5)]
    assert gaps[2] <= gaps[1] <= gaps[0] and gaps[2] <= 1e-5 * math.log(n) + 1e-12


@given(seeds, st.sampled_from([(1, 4, 4), (3, 2, 5), (2, 8)]), st.floats(0.0, 0.3))
def test_image_batch_equals_flattened_twin(seed, shape, eps):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((6,) + shape, generator=g, dtype=torch.float64)
    y = torch.randn((6,) + shape, generator=g, dtype=torch.float64) + 0.5
    f_x = torch.randn(6, generator=g, dtype=torch.float64)
    torch.testing.assert_close(c_transform(f_x, x, y, eps),
                               c_transform(f_x, x.flatten(1), y.flatten(1), eps))


@given(seeds, st.integers(2, 10), dims)
def test_generator_gradient_for_one_fake(seed, n, d):
    """One fake y: ∂f^c/∂y = (y − x_j*)/‖y − x_j*‖ at the minimising real point j*, and the
    critic values get −1 at j* and 0 elsewhere."""
    x = cloud(seed, n, d)
    f_x = cloud(seed + 3, n, 1)[:, 0].requires_grad_(True)
    y = cloud(seed + 1, 1, d, 2.0).requires_grad_(True)
    fc = c_transform(f_x, x, y)
    gy, gf = torch.autograd.grad(fc.sum(), (y, f_x))
    j = ((x - y.detach()).norm(dim=1) - f_x.detach()).argmin()
    want = (y.detach()[0] - x[j]) / (y.detach()[0] - x[j]).norm()
    torch.testing.assert_close(gy[0], want)
    assert gf[j].item() == -1.0 and gf.abs().sum().item() == 1.0


def test_minimiser_share_extremes():
    x = torch.arange(5.0)[:, None]
    assert minimiser_top_share(torch.zeros(5), x, x).item() == pytest.approx(0.2)  # own point
    big = torch.tensor([100.0, 0, 0, 0, 0])  # f so high at x_0 that it wins for every fake
    assert minimiser_top_share(big, x, x).item() == 1.0


def test_bad_input_is_an_error():
    x = torch.zeros(3, 2)
    for args in ((torch.zeros(3), x[:0], x), (torch.zeros(2), x, x), (torch.zeros(3), x,
                                                                      torch.zeros(3, 4))):
        with pytest.raises(ValueError):
            c_transform(*args)
    with pytest.raises(ValueError, match="epsilon"):
        c_transform(torch.zeros(3), x, x, epsilon=-1.0)


def test_a_run_logs_the_value_below_the_batch_w1(tmp_path):
    import csv
    import glob
    import os
    import wgan_ct
    out = str(tmp_path / "runs")
    assert wgan_ct.main(["--iters", "2", "--eval-every", "2", "--dim", "8", "--batch", "16",
                         "--out", out]) == 0
    (path,) = glob.glob(os.path.join(out, "*", "metrics.csv"))
    rows = list(csv.DictReader(open(path)))
    for r in rows:
        assert float(r["value_batch"]) <= float(r["w1_batch"]) + 1e-6  # a lower bound
        assert float(r["estimate_over_w1"]) <= 1 + 1e-6
        assert 1 / 16 <= float(r["minimiser_top_share"]) <= 1
    assert 0 < float(rows[-1]["minimiser_top_share"]) <= 1  # the step's mean too


# --------------------------------------------------------- the published CoWGAN's update rule
def by_hand(f, x, y):
    """L1, L2, L3 of train_CoWGAN computed from their definitions, with exact minima."""
    fx, fy, d = f(x), f(y), torch.cdist(x, y, compute_mode="donot_use_mm_for_euclid_dist")
    l1 = fx.mean() - fy.mean()
    l2 = fx.mean() + (d - fx[:, None]).min(dim=0).values.mean()  # min over the reals j
    l3 = -fy.mean() + (d + fy[None, :]).min(dim=1).values.mean()  # min over the fakes i
    return l1, l2, l3


@given(seeds, st.integers(2, 24), dims, st.sampled_from(["linear", "radial", "mlp", "constant"]))
def test_cowgan_objective_is_the_published_rule(seed, n, d, kind):
    """The objective is L2 where L2 < L1, else L3 where L3 < L1, else L1; and a 1-Lipschitz
    critic (its transforms are never below the plain terms) always gets L1, the plain WGAN
    objective: the rule only constrains a critic that breaks the bound on the batches."""
    from wgan_ct import cowgan_objective
    x, y = cloud(seed, n, d), cloud(seed + 1, n + 1, d, shift=1.0)
    f = critic_of(kind, seed, d)
    l1, l2, l3 = by_hand(f, x, y)
    want = l2 if l2 < l1 else (l3 if l3 < l1 else l1)
    got = cowgan_objective(f(x), f(y), x, y)
    assert torch.allclose(got, want, atol=1e-9)
    if kind == "constant":  # 0-Lipschitz
        assert torch.allclose(got, l1, atol=1e-12)
    lip1 = lambda z: 0.99 * z[:, 0]  # noqa: E731 - 1-Lipschitz, so L2, L3 >= L1
    assert torch.equal(cowgan_objective(lip1(x), lip1(y), x, y), lip1(x).mean() - lip1(y).mean())


def test_cowgan_objective_gradient_is_that_of_the_chosen_term():
    """Its gradient in the critic's values is the chosen term's (the minimisers chosen without
    gradient, as in their code, do not change it): a steep critic gets L2's, in which f at the
    fakes has no weight; a flat one gets L1's, −1/M at each fake."""
    from wgan_ct import cowgan_objective
    x, y = cloud(0, 6, 2), cloud(1, 5, 2, shift=0.5)
    for slope, fake_grad in ((10.0, 0.0), (0.5, -1 / 5)):
        fx = (slope * x[:, 0]).requires_grad_(True)
        fy = (slope * y[:, 0]).requires_grad_(True)
        gx, gy = torch.autograd.grad(cowgan_objective(fx, fy, x, y), (fx, fy))
        assert torch.allclose(gy, torch.full_like(gy, fake_grad))
        if slope == 0.5:
            assert torch.allclose(gx, torch.full_like(gx, 1 / 6))


def test_cowgan_objective_is_refused_with_an_entropic_epsilon(capsys):
    import wgan_ct
    with pytest.raises(SystemExit) as e:
        wgan_ct.parse(["--objective", "cowgan", "--epsilon", "0.1"])
    assert e.value.code == 2 and "--objective cowgan takes the exact" in capsys.readouterr().err
