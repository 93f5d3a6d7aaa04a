"""Tests of common.py: samplers against gan_toy.py's definitions, exact W1, duality bounds, mode stats, plots.

The constants below are copied from gan_toy.py (igul222/improved_wgan_training) on purpose: they are the specification the
samplers must meet, so that changing a centre, a std or a scale in common.py fails a test.
"""
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

import common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.real_figures  # figures are what several of these tests check

S2 = 1 / math.sqrt(2)
SPEC = {
    "8gaussians": dict(
        centres=2 * np.array([(1, 0), (-1, 0), (0, 1), (0, -1), (S2, S2), (S2, -S2), (-S2, S2),
                              (-S2, -S2)]), std=0.02, scale=1.414),
    "25gaussians": dict(
        centres=np.array([(2 * i, 2 * j) for i in range(-2, 3) for j in range(-2, 3)], float),
        std=0.05, scale=2.828),
}


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------- samplers
@pytest.mark.parametrize("name", ["8gaussians", "25gaussians"])
def test_mixture_matches_reference(name):
    spec = SPEC[name]
    c = spec["centres"] / spec["scale"]
    sd = spec["std"] / spec["scale"]
    n = 100_000
    x = common.sample(name, n, generator=_gen(1)).double().numpy()
    lab = cKDTree(c).query(x)[1]
    k = len(c)
    counts = np.bincount(lab, minlength=k)
    # equal weights: each share within 5 binomial SEs of 1/k
    assert np.all(np.abs(counts / n - 1 / k) < 5 * math.sqrt((1 / k) * (1 - 1 / k) / n))
    resid = np.concatenate([x[lab == m] - c[m] for m in range(k)])
    # every component centred at its reference centre (SE of a mean is sd/sqrt(n/k) ~ 1e-4)
    for m in range(k):
        assert np.allclose(x[lab == m].mean(0), c[m], atol=6 * sd / math.sqrt(counts[m]))
    # component std after scaling, per coordinate, to within 1.5 % (a 5 % change fails)
    assert np.allclose(resid.std(0), sd, rtol=0.015)
    # and the helpers that evaluation uses agree with the spec
    got = common.centres(name)
    assert got.shape == c.shape and np.all(cKDTree(got).query(c)[0] < 1e-7)
    assert common.component_std(name) == pytest.approx(sd, rel=1e-12)


def test_swissroll_matches_reference():
    """Unscaled by 7.5, points lie on the spiral (t cos t, t sin t), t ∈ [1.5π, 4.5π], t uniform,
    with normal noise of std 0.25 across the curve."""
    n = 60_000
    x = common.sample("swissroll", n, generator=_gen(2)).double().numpy() * 7.5
    t = np.linspace(1.5 * math.pi, 4.5 * math.pi, 200_001)
    dist, idx = cKDTree(np.stack([t * np.cos(t), t * np.sin(t)], 1)).query(x)
    tt = t[idx] / math.pi
    assert math.sqrt((dist ** 2).mean()) == pytest.approx(0.25, rel=0.015)  # noise std
    assert tt.mean() == pytest.approx(3.0, abs=0.02)  # t uniform on [1.5π, 4.5π]
    assert np.quantile(tt, 0.01) == pytest.approx(1.53, abs=0.01)
    assert np.quantile(tt, 0.99) == pytest.approx(4.47, abs=0.01)
    r = np.linalg.norm(x / 7.5, axis=1)  # spiral radius after scaling: t/7.5
    assert r.min() > 1.5 * math.pi / 7.5 - 0.2 and r.max() < 4.5 * math.pi / 7.5 + 0.2


@pytest.mark.parametrize("name", common.TOYS)
def test_sampler_shape_dtype_seed(name):
    a = common.sample(name, 257, generator=_gen(7))
    b = common.sample(name, 257, generator=_gen(7))
    c = common.sample(name, 257, generator=_gen(8))
    assert a.shape == (257, 2) and a.dtype == torch.float32 and a.device.type == "cpu"
    assert torch.equal(a, b) and not torch.equal(a, c)
    d = common.sample(name, 5, dtype=torch.float64)
    assert d.dtype == torch.float64
    assert common.sample(name, 0).shape == (0, 2)


@pytest.mark.parametrize("name", common.TOYS)
def test_sampler_on_cuda(name, cuda_only):
    x = common.sample(name, 64, device="cuda")
    assert x.device.type == "cuda" and x.shape == (64, 2)


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ValueError, match="8gaussians.*25gaussians.*swissroll"):
        common.sample("moons", 10)
    with pytest.raises(ValueError):
        common.mode_stats("moons", np.zeros((3, 2)))


# ------------------------------------------------------------------------------------ exact W1
clouds = st.tuples(st.integers(2, 40), st.integers(1, 3), st.integers(0, 2**31 - 1))


def _cloud(n, d, seed, scale=1.0):
    return np.random.default_rng(seed).normal(size=(n, d)) * scale


@given(clouds)
def test_w1_zero_and_symmetric(c):
    n, d, seed = c
    x, y = _cloud(n, d, seed), _cloud(n, d, seed + 1, 2.0)
    assert common.w1(x, x) == pytest.approx(0.0, abs=1e-12)
    assert common.w1(x, y) == pytest.approx(common.w1(y, x), rel=1e-9)


@given(clouds, st.lists(st.floats(-5, 5), min_size=3, max_size=3))
def test_w1_translation(c, shift):
    n, d, seed = c
    x = _cloud(n, d, seed)
    s = np.array(shift[:d])
    assert common.w1(x, x + s) == pytest.approx(np.linalg.norm(s), rel=1e-7, abs=1e-9)


@given(clouds)
def test_w1_matches_assignment(c):
    n, d, seed = c
    x, y = _cloud(n, d, seed), _cloud(n, d, seed + 1) + 1.0
    cost = np.linalg.norm(x[:, None] - y[None], axis=2)
    r, col = linear_sum_assignment(cost)
    assert common.w1(x, y) == pytest.approx(cost[r, col].mean(), rel=1e-8)


@given(clouds)
def test_w1_triangle(c):
    n, d, seed = c
    x, y, z = (_cloud(n, d, seed + k, 1 + k) for k in range(3))
    assert common.w1(x, z) <= common.w1(x, y) + common.w1(y, z) + 1e-9


def test_w1_accepts_torch_and_rejects_bad_input():
    x = torch.randn(30, 2, generator=_gen(0))
    assert common.w1(x, x.numpy() + np.array([3.0, 4.0])) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="NaN"):
        common.w1(x, x * float("nan"))
    with pytest.raises(ValueError, match="dimension"):
        common.w1(x, torch.zeros(30, 3))
    with pytest.raises(ValueError):
        common.w1(torch.zeros(0, 2), x)


def test_w1_solver_cap_is_an_error_not_a_wrong_number():
    x, y = _cloud(300, 2, 0), _cloud(300, 2, 1)
    with pytest.raises((RuntimeError, UserWarning)):
        common.w1(x, y, num_iter_max=20)


def test_w1_floor_is_small_and_shrinks():
    g = _gen(3)
    small, large = common.w1_floor("swissroll", 128, g), common.w1_floor("swissroll", 1024, g)
    assert 0 < large < small < 0.5


# ------------------------------------------------------------------- duality bounds (KR duality)
def _critic_strategy():
    """Analytic 1-Lipschitz critics on R^d, as (description, numpy function)."""
    vec = st.lists(st.floats(-3, 3), min_size=3, max_size=3)

    def linear(a, r):
        a = np.array(a)
        a = a / max(np.linalg.norm(a), 1e-9) * r
        return ("linear", lambda x: x @ a[: x.shape[1]] / max(1.0, np.linalg.norm(a[: x.shape[1]])))

    def radial(c):
        c = np.array(c)
        return ("radial", lambda x: np.linalg.norm(x - c[: x.shape[1]], axis=1))

    base = st.one_of(st.builds(linear, vec, st.floats(0, 1)), st.builds(radial, vec))

    def combine(parts, use_max):
        fs = [f for _, f in parts]
        red = np.max if use_max else np.min
        return ("max" if use_max else "min", lambda x: red(np.stack([f(x) for f in fs]), axis=0))

    def dist_to_set(points):
        p = np.array(points)
        return ("set", lambda x: np.linalg.norm(x[:, None, :] - p[None, :, : x.shape[1]],
                                                axis=2).min(1))

    combos = st.builds(combine, st.lists(base, min_size=2, max_size=4), st.booleans())
    return st.one_of(base, combos, st.builds(dist_to_set, st.lists(vec, min_size=1, max_size=6)))


@given(clouds, _critic_strategy(), st.floats(0.5, 3.0))
def test_duality_bound_for_1_lipschitz_critics(c, critic, spread):
    n, d, seed = c
    _, f = critic
    p, q = _cloud(n, d, seed), _cloud(n, d, seed + 1, spread) + 0.5
    assert f(p).mean() - f(q).mean() <= common.w1(p, q) + 1e-9


@given(clouds, _critic_strategy(), st.floats(1.0, 20.0))
def test_duality_bound_scales_with_lipschitz_constant(c, critic, k):
    n, d, seed = c
    _, f = critic
    p, q = _cloud(n, d, seed), _cloud(n, d, seed + 1, 2.0)
    assert k * f(p).mean() - k * f(q).mean() <= k * common.w1(p, q) + 1e-8


@given(clouds, st.lists(st.floats(-4, 4), min_size=3, max_size=3).filter(
    lambda v: np.linalg.norm(v) > 1e-3))
def test_duality_equality_for_translation(c, shift):
    """Q = P + s: the linear critic f(x) = -s·x/‖s‖ is optimal, E_P f - E_Q f = ‖s‖ = W1."""
    n, d, seed = c
    s = np.array(shift[:d])
    if np.linalg.norm(s) < 1e-3:
        s = np.ones(d)
    p = _cloud(n, d, seed)
    a = -s / np.linalg.norm(s)
    assert (p @ a).mean() - ((p + s) @ a).mean() == pytest.approx(common.w1(p, p + s), rel=1e-7)


# ------------------------------------------------------------------------------- mode stats
@pytest.mark.parametrize("name", ["8gaussians", "25gaussians"])
def test_mode_stats_exact_samples(name):
    st_ = common.mode_stats(name, common.sample(name, 20_000, generator=_gen(4)))
    k = len(SPEC[name]["centres"])
    assert st_["modes"] == st_["n_modes"] == k
    # In 2-D, P(‖N(0, σ²I)‖ ≤ 3σ) = 1 - exp(-9/2) ≈ 98.9 % (99.7 % is the 1-D figure).
    assert st_["high_quality"] == pytest.approx(1 - math.exp(-4.5), abs=0.004)


@pytest.mark.parametrize("name,keep", [("8gaussians", 4), ("25gaussians", 12)])
def test_mode_stats_half_the_modes(name, keep):
    x = common.sample(name, 20_000, generator=_gen(5)).numpy()
    lab = cKDTree(common.centres(name)).query(x)[1]
    chosen = np.random.default_rng(0).choice(len(common.centres(name)), keep, replace=False)
    st_ = common.mode_stats(name, x[np.isin(lab, chosen)])
    assert st_["modes"] == keep


def test_mode_stats_far_samples_and_swissroll():
    st_ = common.mode_stats("8gaussians", np.full((50, 2), 10.0))
    assert st_["modes"] == 0 and st_["high_quality"] == 0.0
    assert common.mode_stats("swissroll", np.zeros((5, 2))) is None


# ------------------------------------------------------------------------------------ figures
def test_grid_orientation_with_asymmetric_critic():
    def f(x):
        return x[:, 0] + 0.3 * x[:, 1] ** 2  # increases with x₁, symmetric in x₂

    X, Y, F, G = common.critic_grid(f, size=16)
    assert X[0, 0] == -3 and X[0, -1] == 3 and Y[0, 0] == -3 and Y[-1, 0] == 3
    assert np.allclose(F, X + 0.3 * Y ** 2, atol=1e-5)
    assert np.allclose(G, np.sqrt(1 + (0.6 * Y) ** 2), atol=1e-5)


def test_grid_gradient_of_linear_critic():
    a = torch.tensor([0.6, -1.7])
    _, _, _, G = common.critic_grid(lambda x: x @ a, size=8)
    assert np.allclose(G, float(a.norm()), atol=1e-6)


@pytest.mark.parametrize("name", common.TOYS)
def test_plot_critic_writes_png(name, tmp_path):
    real = common.sample(name, 256, generator=_gen(0))
    fake = real + 0.2 * torch.randn(real.shape, generator=_gen(1))
    path = common.plot_critic(lambda x: (x - 0.5).norm(dim=1) - x[:, 0], real, fake,
                              str(tmp_path / "critic.png"), title=f"test {name}")
    with open(path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "critic.png").stat().st_size > 20_000


@pytest.mark.parametrize("name", common.TOYS)
def test_plot_curves_writes_png(name, tmp_path):
    rows = []
    for i, it in enumerate(range(0, 1000, 100)):
        r = dict(iter=it, critic_estimate=1 / (i + 1), w1=1 / (i + 1) + 0.05, w1_floor=0.05,
                 penalty=0.1 / (i + 1), grad_norm_mean=0.9, grad_norm_max=1.3)
        ms = common.mode_stats(name, common.sample(name, 200, generator=_gen(i)))
        if ms:
            r.update(ms)
        rows.append(r)
    path = common.plot_curves(rows, str(tmp_path / "curves.png"), title=name)
    assert (tmp_path / "curves.png").stat().st_size > 20_000 and path.endswith("curves.png")


@pytest.mark.parametrize("name", common.TOYS)
def test_nn_ratio_tells_a_sampler_from_a_collapsed_generator(name):
    """Real against real: about 1. A generator collapsed onto 64 points (drawn with repeats):
    near 0, although such a set can have a minibatch W1 below the noise floor."""
    g = _gen(7)
    real, other = common.sample(name, 1024, generator=g), common.sample(name, 1024, generator=g)
    assert 0.8 < common.nn_ratio(other, real) < 1.25
    atoms = common.sample(name, 64, generator=g)
    collapsed = atoms[torch.randint(0, 64, (1024,), generator=g)]
    assert common.nn_ratio(collapsed, real) < 0.05
    stats = common.sample_stats(name, other, real)
    assert "nn_ratio" in stats and (("modes" in stats) == (name != "swissroll"))


@pytest.mark.full_evaluation
@pytest.mark.parametrize("name", common.TOYS)
def test_distance_stats_recognise_the_distance_itself(name):
    """f = −d (the distance to the noiseless data, an Eikonal solution): correlation 1 with −d
    and ‖∇f‖ = 1 in and out of the band; a linear critic is not distance-like."""
    t = torch.linspace(1.5 * math.pi, 4.5 * math.pi, 20_000, dtype=torch.float64)
    ref = (torch.stack([t * torch.cos(t), t * torch.sin(t)], 1) / 7.5 if name == "swissroll"
           else torch.as_tensor(common.centres(name)))

    def minus_d(x):
        return -torch.cdist(x.double(), ref).min(dim=1).values

    st_ = common.distance_stats(name, minus_d, "cpu")
    assert st_["dist_corr"] > 0.999
    assert st_["grad_norm_in_band"] == pytest.approx(1, abs=1e-6)
    assert st_["grad_norm_out_band"] == pytest.approx(1, abs=1e-6)
    lin = common.distance_stats(name, lambda x: x[:, 0] * 3, "cpu")
    assert abs(lin["dist_corr"]) < 0.5 and lin["grad_norm_in_band"] == pytest.approx(3)
    x = common.sample(name, 500, generator=_gen(3))
    assert common.distance_to_data(name, x).max() < 4 * 0.25 / 7.5 + 0.01  # within noise


def test_a_script_in_a_subprocess_evaluates_at_the_test_sizes_and_at_its_own_without_them():
    """tests/subprocess_site shrinks the evaluation of the project's common.py in the processes
    the tests start, as small_evaluation does in the test process; without its variable the
    scripts' own sizes are back."""
    from conftest import SMALL_DISTANCE, SMALL_EVAL
    code = ("import common; print(common.N_EVAL, common.N_EVAL_DRAWS, "
            "getattr(common.distance_stats, 'keywords', {}).get('n', 'default'))")
    said = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout.split()
    assert said == [str(SMALL_EVAL), "1", str(SMALL_DISTANCE)]
    env = {k: v for k, v in os.environ.items() if k != "WGAN_TESTS_SMALL_EVALUATION"}
    said = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=True, env=env).stdout.split()
    source = open(os.path.join(ROOT, "common.py")).read()  # this process's common is shrunk
    declared = [re.search(rf"^{name} = (\d+)", source, re.M).group(1)
                for name in ("N_EVAL", "N_EVAL_DRAWS")]
    assert said == [*declared, "default"] and int(declared[0]) > SMALL_EVAL
