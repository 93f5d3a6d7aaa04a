"""Orthogonal weights and GroupSort (wgan_groupsort.py) on facts that are known: the weights stay
(semi-)orthogonal however the optimiser moves them, GroupSort is a permutation within each group,
the critic is 1-Lipschitz (‖∇f‖ ≤ 1 everywhere, every finite-difference quotient ≤ 1, the exact
bound K = 1), ‖∇f‖ = 1 almost everywhere where no layer narrows the gradient, and |x| is in
reach of a GroupSort network but not of the same network with ReLU (Anil et al. 2019)."""
import argparse
import os

import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings, strategies as st

import common
import harness
import wgan_groupsort as gs
from test_cuda_branch import capturable_on_cpu, no_host_sync  # noqa: F401 (a fixture)

seeds = st.integers(0, 2**31 - 1)


def critic(widths, group, seed, ortho_map=None):
    """The script's critic network in float64 (built so: the orthogonal parametrization's base
    is orthogonalised in the dtype it is made in)."""
    torch.manual_seed(seed)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return gs.critic_net(widths, argparse.Namespace(group_size=group, ortho_map=ortho_map))
    finally:
        torch.set_default_dtype(default)


def dividing(width):
    """Group sizes that tile a layer of this width: 'full' and its divisors ≥ 2."""
    return st.sampled_from(["full"] + [g for g in range(2, width + 1) if width % g == 0])


@st.composite
def networks(draw, square=False):
    width = draw(st.sampled_from([2, 4, 6, 8, 12]))
    depth = draw(st.integers(1, 3))
    d_in = width if square else draw(st.integers(1, 5))
    return [d_in] + [width] * depth + [1], draw(dividing(width)), draw(seeds)


@given(shape=st.tuples(st.integers(1, 6), st.sampled_from([2, 4, 6, 12])), data=st.data(),
       seed=seeds)
def test_group_sort_sorts_each_group_and_keeps_its_values(shape, data, seed):
    g = data.draw(dividing(shape[1]))
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    y = gs.group_sort(x, None if g == "full" else g)
    k = shape[1] if g == "full" else g
    groups_x, groups_y = x.reshape(shape[0], -1, k), y.reshape(shape[0], -1, k)
    assert (groups_y.diff(dim=-1) >= 0).all()  # sorted within each group
    assert torch.equal(groups_y, groups_x.sort(dim=-1).values)  # the same values, group by group
    torch.testing.assert_close(y.norm(dim=1), x.norm(dim=1), rtol=1e-14, atol=0)  # summed in
    # another order: the same norm to rounding
    # its Jacobian is a permutation: a unit vector pulled back stays a unit vector
    v = torch.randn(shape, dtype=torch.float64)
    (back,) = torch.autograd.grad(gs.group_sort(x.requires_grad_(), None if g == "full" else g),
                                  x, v)
    torch.testing.assert_close(back.norm(dim=1), v.norm(dim=1))


def test_group_sort_refuses_groups_that_do_not_tile():
    with pytest.raises(ValueError, match="multiple of the group size 4"):
        gs.group_sort(torch.zeros(3, 6), 4)


@given(net=networks(), steps=st.integers(20, 60), lr=st.floats(1e-3, 0.3),
       ortho_map=st.sampled_from(gs.ORTHO_MAPS))
@settings(max_examples=12)
def test_the_weights_stay_orthogonal_however_far_they_are_moved(net, steps, lr, ortho_map):
    """Many large steps of Adam on a loss that pulls the weights anywhere: every weight is still
    (semi-)orthogonal, WᵀW = I or WWᵀ = I, to float64 precision, with each of torch's maps."""
    widths, group, seed = net
    D = critic(widths, group, seed, ortho_map)
    opt = torch.optim.Adam(D.parameters(), lr=lr)
    x = torch.randn(64, widths[0], generator=torch.Generator().manual_seed(seed),
                    dtype=torch.float64)
    start = [m.weight.detach().clone() for m in D.modules() if isinstance(m, nn.Linear)]
    for _ in range(steps):
        loss = (D(x) * torch.linspace(-3, 5, 64, dtype=torch.float64)[:, None]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    now = [m.weight.detach() for m in D.modules() if isinstance(m, nn.Linear)]
    assert any(not torch.allclose(a, b) for a, b in zip(start, now))  # they moved
    assert gs.orthogonality_error(D).item() < 1e-10


@given(net=networks(), scale=st.floats(0.01, 100.0), seed=seeds)
def test_the_critic_is_1_lipschitz(net, scale, seed):
    """‖∇f(x)‖ ≤ 1 at every x, every quotient |f(x) − f(y)| / ‖x − y‖ ≤ 1, and the exact bound
    of its layers is K = 1, whatever the widths, depth, groups and the input's scale."""
    widths, group, init = net
    D = critic(widths, group, init)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, widths[0], generator=g, dtype=torch.float64) * scale
    y = torch.randn(256, widths[0], generator=g, dtype=torch.float64) * scale
    near = x + 1e-3 * scale * torch.randn(256, widths[0], generator=g, dtype=torch.float64)
    _, gn = common.critic_and_grad_norm(D, x)
    assert gn.max() <= 1 + 1e-9
    with torch.no_grad():
        for a, b in ((x, y), (x, near)):
            q = (D(a) - D(b)).abs().squeeze(1) / (a - b).norm(dim=1)
            assert q.max() <= 1 + 1e-9
    assert common.lipschitz_bound(D, (widths[0],)).item() == pytest.approx(1, abs=1e-9)


@given(net=networks(square=True), seed=seeds)
def test_with_square_layers_the_gradient_has_norm_1_almost_everywhere(net, seed):
    """No layer narrows the backward gradient when every hidden layer is square and the last
    one is a unit-norm row: ‖∇f‖ = 1 wherever no sort ties (almost everywhere)."""
    widths, group, init = net
    D = critic(widths, group, init)
    x = torch.randn(512, widths[0], generator=torch.Generator().manual_seed(seed),
                    dtype=torch.float64)
    _, gn = common.critic_and_grad_norm(D, x)
    torch.testing.assert_close(gn, torch.ones_like(gn), rtol=0, atol=1e-9)


def test_a_widening_first_layer_loses_gradient_norm():
    """Why the script logs the share of ‖∇f‖ < 0.99: a 2 → 16 first layer (orthonormal columns)
    passes back only the part of the gradient in its range."""
    D = critic([2, 16, 16, 1], 2, 0)
    _, gn = common.critic_and_grad_norm(D, torch.randn(512, 2, dtype=torch.float64))
    assert gn.max() <= 1 + 1e-9 and gn.mean() < 0.9


def fit_abs(activation, seed=0, steps=300):
    """One hidden layer of 8 units, a unit-norm column in and a unit-norm row out (orthogonal
    parametrization), fitted to f(x) = |x| on [−1, 1]; returns the largest error on a grid."""
    torch.manual_seed(seed)
    net = nn.Sequential(gs.orthogonal_linear(1, 8), activation, gs.orthogonal_linear(8, 1))
    x = torch.linspace(-1, 1, 201)[:, None]
    opt = torch.optim.Adam(net.parameters(), lr=0.03)
    for _ in range(steps):
        loss = (net(x) - x.abs()).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return (net(x) - x.abs()).abs().max().item()


def test_group_sort_reaches_abs_and_relu_cannot():
    """With ‖v‖ = ‖w‖ = 1, w·ReLU(vx + b) has slopes that differ by at most Σ|w_i v_i| ≤ 1 over
    the whole line, so f(1) + f(−1) − 2f(0) ≤ 1 where |x| has 2: its error is at least 1/4 (Anil
    et al. 2019, Theorem 1, in one dimension). MaxMin on the same layers reaches |x|."""
    assert fit_abs(gs.GroupSort(2)) < 0.03
    assert fit_abs(nn.ReLU()) >= 0.25 - 1e-6


def test_the_critic_on_the_digits_is_an_orthogonal_mlp_on_the_pixels():
    args, _ = harness.parse_or_resume(gs.build_parser(), ["--data", "digits", "--dim", "16"],
                                     "wgan_groupsort", set())
    _, D = gs.make_models(args)
    assert not [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    x = common.sample("digits", 8)
    assert D(x).shape == (8,)
    assert common.lipschitz_bound(D, (1, 8, 8)).item() == pytest.approx(1, abs=1e-5)


@pytest.mark.parametrize("argv,says", [(["--group-size", "1"], "--group-size"),
                                       (["--group-size", "3"], "does not divide --dim 128"),
                                       (["--group-size", "two"], "--group-size"),
                                       (["--group-size", "full", "--dim", "1"],
                                        "sorts nothing")])
def test_bad_group_sizes_are_one_line(argv, says, capsys):
    with pytest.raises(SystemExit) as e:
        gs.build_parser().parse_args(argv)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "\n" not in err and says in err


@pytest.mark.parametrize("ortho_map", gs.ORTHO_MAPS)
def test_each_map_keeps_float32_weights_orthogonal_and_the_faster_ones_train_eagerly_on_cuda(
        ortho_map):
    """In float32, as the scripts train, after 30 large steps: orthogonal to float32 precision.
    cayley and matrix_exp read a device value on the host on CUDA (ATen's source), which a
    CUDA graph cannot capture and a CPU test cannot see: with them a run skips the graph."""
    args, _ = harness.parse_or_resume(gs.build_parser(), ["--ortho-map", ortho_map, "--dim", "16"],
                                      "wgan_groupsort", set())
    assert args.no_cuda_graph == (ortho_map != "householder")
    torch.manual_seed(0)
    D = gs.critic_net([4, 16, 16, 1], args)
    opt = torch.optim.Adam(D.parameters(), lr=0.1)
    x = torch.randn(64, 4)
    for _ in range(30):
        loss = (D(x).squeeze(-1) * torch.linspace(-3, 5, 64)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert gs.orthogonality_error(D).item() < 1e-5
    assert (ortho_map in gs.method_name(args)) == (ortho_map != "householder")


@pytest.mark.parametrize("flags", [["--group-size", "full"], ["--group-size", "4", "--data",
                                                                 "digits"],
                                   ["--ortho-map", "cayley"], ["--ortho-map", "matrix_exp"]])
def test_the_full_sort_step_is_capture_safe(flags, capturable_on_cpu, monkeypatch):  # noqa: F811
    """The step a CUDA graph captures, with every host sync patched to raise, for the groups
    the shared capture-safety test (MaxMin) does not take, and for the faster maps: no sync
    from Python (their syncs inside ATen, which no CPU test sees, are why they train eagerly)."""
    args, _ = harness.parse_or_resume(gs.build_parser(), flags + ["--dim", "8", "--batch", "8"],
                                     "wgan_groupsort", set())
    torch.manual_seed(0)
    G, D = gs.make_models(args)
    opt_g, opt_d = gs.make_optimizers(G, D, args, capturable=True)
    gs.train_step(G, D, opt_g, opt_d, args, 2)
    before = [p.detach().clone() for p in D.parameters()]
    with no_host_sync(monkeypatch):
        out = gs.train_step(G, D, opt_g, opt_d, args, 2)
    assert torch.isfinite(out).all()
    assert any(not torch.equal(a, b) for a, b in zip(before, D.parameters()))


def test_a_run_logs_the_bound_1_and_the_gradient_norm_it_lost(tmp_path, capsys):
    import csv
    import glob
    import os
    out = str(tmp_path / "runs")
    assert gs.main(["--iters", "2", "--eval-every", "2", "--dim", "8", "--batch", "16",
                    "--out", out]) == 0
    (path,) = glob.glob(os.path.join(out, "*", "metrics.csv"))
    for r in csv.DictReader(open(path)):
        assert float(r["lipschitz_bound"]) == pytest.approx(1, abs=1e-5)
        assert float(r["orthogonality_error"]) < 1e-5 and float(r["certified"]) == 1.0
        assert float(r["grad_norm_max"]) <= 1 + 1e-5  # by construction
        assert 0 <= float(r["grad_share_below_0_99"]) <= 1
        assert float(r["grad_share_above_1"]) == 0
    assert "K 1.0000" in capsys.readouterr().out


@pytest.mark.parametrize("bad", [0, -2, 2.5, True, "2"])
def test_a_group_size_that_is_no_whole_number_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="whole number ≥ 1"):
        gs.GroupSort(bad)
    with pytest.raises(ValueError, match="whole number ≥ 1"):
        gs.group_sort(torch.zeros(3, 4), bad)


@pytest.mark.parametrize("group", [2, 4, None])
def test_an_empty_batch_sorts_to_an_empty_batch(group):
    out = gs.GroupSort(group)(torch.zeros(0, 4))
    assert out.shape == (0, 4)


def test_a_checkpoint_whose_orthogonal_base_is_not_orthogonal_is_refused(tmp_path, capsys):
    """The parametrization keeps W = base·Q: a base scaled by 3 would train a 3-Lipschitz
    critic under "1-Lipschitz by construction". --resume refuses it, before anything is
    written."""
    from test_scripts import run_dirs, run_main
    out = str(tmp_path / "runs")
    code, cap = run_main("wgan_groupsort", ["--iters", "2", "--eval-every", "2", "--dim", "8",
                                            "--batch", "16", "--out", out], capsys)
    assert code == 0, cap.err
    (d,) = run_dirs(out)
    path = os.path.join(d, "checkpoint.pt")
    ck = torch.load(path, map_location="cpu", weights_only=True)
    (name,) = [k for k in ck["D"] if k.endswith("base")][:1]
    ck["D"][name] = ck["D"][name] * 3
    torch.save(ck, path)
    code, cap = run_main("wgan_groupsort", ["--resume", d, "--iters", "4"], capsys)
    err = cap.err.strip()
    assert code == 2 and "\n" not in err and "damaged checkpoint" in err and \
        "from orthogonal" in err, err
    assert not [f for f in os.listdir(d) if f.startswith("config-resume")]
