"""Tests of the digits path of common.py: the loader, its splits and sampler, exact W1 on
images, class coverage, the collapsed baselines and the digit figures."""
import os
import socket

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import common
import harness

pytestmark = pytest.mark.real_figures  # figures are what several of these tests check


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _rows(x):
    """Images as a sorted list of byte strings: a multiset that ignores order."""
    return sorted(r.tobytes() for r in x.reshape(len(x), -1).numpy())


# ------------------------------------------------------------------------------------- loader
def test_loader_shapes_range_and_split(monkeypatch):
    """1797 digits of 8×8 in [0, 1], split into 1285 for training and 512 held out, with every
    image of scikit-learn's set in exactly one split; the same split on every call. Loaded with
    the network cut off: nothing is downloaded."""
    def no_network(*a, **k):
        raise OSError("the digits must not need the network")
    monkeypatch.setattr(socket.socket, "connect", no_network)
    common._digits.cache_clear()
    (xtr, ytr), (xte, yte) = common.digits("train"), common.digits("test")
    assert xtr.shape == (1285, 1, 8, 8) and xte.shape == (common.DIGITS_TEST, 1, 8, 8)
    assert xtr.dtype == torch.float32 and ytr.dtype == torch.long
    for x in (xtr, xte):
        assert x.min() == 0 and x.max() == 1
        assert torch.equal(x * 16, (x * 16).round())  # the 17 grey levels 0..16
    from sklearn.datasets import load_digits
    d = load_digits()
    assert _rows(torch.cat([xtr, xte])) == _rows(torch.tensor(d.images / 16, dtype=torch.float32))
    assert sorted(torch.cat([ytr, yte]).tolist()) == sorted(d.target.tolist())
    assert set(yte.tolist()) == set(range(10))  # every class is held out
    assert common.digits("test")[0] is xte  # cached: one copy per device
    common._digits.cache_clear()
    assert torch.equal(common.digits("test")[0], xte)  # a fixed split, not a fresh shuffle


def test_digits_are_a_dataset_but_no_toy():
    assert "digits" in common.DATASETS and "digits" not in common.TOYS
    assert common.centres("digits") is None
    assert common.mode_stats("digits", np.zeros((3, 64))) is None
    assert common.distance_stats("digits", lambda x: x.sum((1, 2, 3)), "cpu") == {}
    with pytest.raises(ValueError, match="toys"):
        common.distance_to_data("digits", torch.zeros(3, 2))


@given(st.integers(0, 2**31 - 1), st.integers(1, 600))
def test_sampler_draws_from_the_right_split(seed, n):
    """Training batches come from the training split (with replacement: n may exceed it);
    split="test" and replace=False give distinct digits of their split; the same generator
    seed gives the same draw."""
    train, test = _rows(common.digits("train")[0]), _rows(common.digits("test")[0])
    x = common.sample("digits", n, generator=_gen(seed))
    assert x.shape == (n, 1, 8, 8)
    assert torch.equal(x, common.sample("digits", n, generator=_gen(seed)))
    assert set(_rows(x)) <= set(train)
    k = min(n, common.DIGITS_TEST)
    for split, pool in (("test", test), ("train", train)):
        y = common.sample("digits", k, generator=_gen(seed), split=split, replace=False)
        rows = _rows(y)
        assert set(rows) <= set(pool)
        # distinct draws: no image is repeated more often than it occurs in its split
        assert all(rows.count(r) <= pool.count(r) for r in set(rows))
    assert _rows(common.sample("digits", common.DIGITS_TEST, split="test")) == test


def test_sampler_refuses_what_it_cannot_draw():
    with pytest.raises(ValueError, match="512 digits"):
        common.sample("digits", common.DIGITS_TEST + 1, split="test")
    with pytest.raises(ValueError, match="1285 digits"):
        common.sample("digits", 1286, replace=False)
    with pytest.raises(ValueError, match="split"):
        common.sample("digits", 4, split="valid")
    assert common.sample("digits", 0).shape == (0, 1, 8, 8)
    assert common.sample("digits", 3, dtype=torch.float64).dtype == torch.float64


def test_digits_on_cuda(cuda_only):
    x = common.sample("digits", 64, device="cuda")
    assert x.device.type == "cuda" and x.shape == (64, 1, 8, 8)
    assert common.classify_digits(x).device.type == "cuda"


# ---------------------------------------------------------------------------------- evaluation
def test_w1_on_images_is_w1_on_their_pixels():
    a = common.sample("digits", 40, generator=_gen(1))
    b = common.sample("digits", 30, generator=_gen(2), split="test")
    assert common.w1(a, b) == pytest.approx(common.w1(a.flatten(1), b.flatten(1)), rel=1e-12)
    assert common.w1(a, a) == pytest.approx(0, abs=1e-12)


def test_classifier_is_right_on_held_out_digits():
    x, y = common.digits("test")
    assert (common.classify_digits(x) == y).float().mean() > 0.97
    xtr, ytr = common.digits("train")  # each its own nearest neighbour, duplicates aside
    assert (common.classify_digits(xtr) == ytr).float().mean() > 0.995


def test_class_coverage_of_real_digits_is_near_uniform():
    s = common.class_stats(common.digits("test")[0])
    assert s["classes"] == s["n_classes"] == 10
    assert s["class_tv"] < 0.1
    assert sum(s[f"class_{k}"] for k in range(10)) == pytest.approx(1)


@pytest.mark.parametrize("digit", [0, 3, 8])
def test_class_coverage_of_one_repeated_digit_is_one_class(digit):
    x, y = common.digits("train")
    one = x[(y == digit).nonzero()[0]].expand(512, -1, -1, -1)
    s = common.class_stats(one)
    assert s["classes"] == 1 and s[f"class_{digit}"] == 1
    assert s["class_tv"] == pytest.approx(0.9)


def test_class_coverage_counts_a_class_once_it_has_a_quarter_of_its_share():
    """Nine classes at equal shares and the tenth at just over or just under a quarter of 1/10."""
    x, y = common.digits("train")
    for tenth, covered in ((14, 10), (11, 9)):  # 14/500 ≥ 0.025 > 11/497
        parts = [x[y == k][:54] for k in range(9)] + [x[y == 9][:tenth]]
        s = common.class_stats(torch.cat(parts))
        assert s["classes"] == covered


def test_sample_stats_on_digits_are_class_coverage_and_nn_ratio():
    real = common.sample("digits", 512, generator=_gen(0), split="test")
    other = common.sample("digits", 512, generator=_gen(1), replace=False)
    s = common.sample_stats("digits", other, real)
    assert {"classes", "class_tv", "nn_ratio"} <= set(s) and "modes" not in s
    assert 0.8 < s["nn_ratio"] < 1.25
    collapsed = other[torch.randint(0, 16, (512,), generator=_gen(2))]
    assert common.nn_ratio(collapsed, real) < 0.05


def test_collapsed_baselines():
    """n copies of one point are W1-apart from a set by its mean distance to that point (all
    the mass goes there); the OT-means centroids are no further than the mean digit; the toys
    have none."""
    b = common.collapsed_baselines("digits")
    train, test = common.digits("train")[0], common.digits("test")[0]
    mean = train.mean(0).flatten().double()
    assert b["w1_mean_digit"] == pytest.approx(
        (test.flatten(1).double() - mean).norm(dim=1).mean().item(), rel=1e-9)
    floor = common.w1(common.sample("digits", 512, generator=_gen(0), replace=False), test)
    assert b["w1_mean_digit"] > 1.4 * floor
    assert b["w1_ot_means"] < b["w1_mean_digit"]
    assert common.collapsed_baselines("swissroll") == {}


def test_ot_means_lowers_the_cost_of_its_start():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(200, 3))
    c = common.ot_means(data, 20)
    start = data[np.random.default_rng(0).choice(200, 20, replace=False)]
    assert c.shape == (20, 3) and common.w1(c, data) < common.w1(start, data)


def test_coverage_text():
    assert harness.coverage_text({"modes": 7, "n_modes": 8, "high_quality": 0.5}) == \
        " | 7/8 modes 50% hq"
    assert harness.coverage_text({"classes": 9, "n_classes": 10, "class_tv": 0.123}) == \
        " | 9/10 classes, TV 0.12"
    assert harness.coverage_text({}) == ""


# ------------------------------------------------------------------------------------- figures
def test_montage_places_each_image_in_its_tile():
    x = torch.arange(5 * 4, dtype=torch.float64).reshape(5, 1, 2, 2)
    m = common.montage(x, ncols=3)
    assert m.shape == (2 * 3 - 1, 3 * 3 - 1)
    assert np.array_equal(m[0:2, 3:5], x[1, 0].numpy())  # row 0, column 1
    assert np.array_equal(m[3:5, 3:5], x[4, 0].numpy())  # row 1, column 1
    assert np.isnan(m[2]).all() and np.isnan(m[:, 2]).all()  # the gaps
    assert np.isnan(m[3:5, 6:8]).all()  # the empty last tile


def _is_png(path, min_size=20_000):
    with open(path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(path) > min_size


def test_plot_critic_on_digits_draws_the_digit_figure(tmp_path):
    real = common.sample("digits", 256, generator=_gen(0))
    fake = (real + 0.2 * torch.randn(real.shape, generator=_gen(1))).clamp(0, 1)
    critic = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 1))
    _is_png(common.plot_critic(critic, real, fake, str(tmp_path / "d.png"), title="digits"))
    _is_png(common.plot_digits(lambda x: x.sum((1, 2, 3)), real, None, str(tmp_path / "r.png")))
    panels = [("real", real), ("noisy", fake)]
    _is_png(common.plot_digit_grid(panels, str(tmp_path / "g.png"), title="grid"))


def test_plot_curves_with_class_coverage(tmp_path):
    rows = [dict(iter=it, critic_estimate=1.0, w1=2 - it / 1000, w1_floor=1.37, penalty=0.1,
                 grad_norm_mean=1.0, grad_norm_max=1.2, w1_mean_digit=2.15, w1_ot_means=1.37,
                 **common.class_stats(common.sample("digits", 64, generator=_gen(it))))
            for it in range(0, 1000, 250)]
    _is_png(common.plot_curves(rows, str(tmp_path / "curves.png"), title="digits"))
