"""MNIST (--data mnist): the 5000 digits this project ships and how they are split, the models of
the WGAN-GP paper's gan_mnist.py, the classifier and the numbers the evaluation reads from
data/, and every penalty on (N, 1, 28, 28) batches against a hand computation."""
import json
import os
import math

import pytest
import torch

import common
from dragan import dragan_penalty
from zero_centred import zero_centred_penalty
from slogan import lipschitz_penalty
from wgan_alp import alp_penalty
from wgan_div import divergence_penalty
from wgan_gp import gradient_penalty


def test_the_data_is_what_the_project_ships_split_the_same_way_every_call():
    x, y = common.images("mnist", "train")
    xt, yt = common.images("mnist", "test")
    assert x.shape == (4000, 1, 28, 28) and xt.shape == (1000, 1, 28, 28)
    assert x.min() == 0 and x.max() == 1 and x.dtype == torch.float32
    assert torch.bincount(y).tolist() == [400] * 10 and torch.bincount(yt).tolist() == [100] * 10
    pixels, _ = common.mnist_arrays()
    assert len(torch.unique(torch.as_tensor(pixels), dim=0)) == 5000  # no image twice
    both = torch.cat([x, xt]).flatten(1)
    assert len(torch.unique(both, dim=0)) == 5000  # so the splits share none: disjoint
    common._mnist.cache_clear()  # made again from the file: the same split
    assert torch.equal(common.images("mnist", "test")[0], xt)


def test_a_file_that_is_not_ours_is_refused_before_a_run_writes_anything(monkeypatch, tmp_path,
                                                                          capsys):
    bad = tmp_path / "mnist.csv.gz"
    bad.write_bytes(b"not the file")
    monkeypatch.setattr(common, "MNIST_FILE", str(bad))
    common.mnist_arrays.cache_clear()
    try:
        with pytest.raises(ValueError, match="sha256"):
            common.mnist_arrays()
        import wgan_div
        out = tmp_path / "runs"
        with pytest.raises(SystemExit) as e:
            wgan_div.main(["--data", "mnist", "--iters", "1", "--out", str(out)])
        err = capsys.readouterr().err.strip()
        assert e.value.code == 2 and "\n" not in err and "--data mnist" in err and "sha256" in err
        assert not out.exists()
    finally:
        common.mnist_arrays.cache_clear()


def test_the_papers_models_have_the_papers_shapes():
    """gan_mnist.py at DIM 64: 28 → 14 → 7 → 4 with 64, 128, 256 channels, a linear score; the
    generator from 128 numbers through 4×4, 8×8 cropped to 7×7, 14×14, to 28×28 in [0, 1]."""
    import wgan_gp  # the models are the same in every script (tests/test_layout.py)
    D, G = wgan_gp.MnistCritic(64), wgan_gp.MnistGenerator(64)
    convs = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (1, 64, (5, 5), (2, 2)), (64, 128, (5, 5), (2, 2)), (128, 256, (5, 5), (2, 2))]
    assert not [m for m in D.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    z = torch.randn(3, wgan_gp.Z_MNIST)
    x = G(z)
    assert x.shape == (3, 1, 28, 28) and 0 <= x.min() and x.max() <= 1
    assert D(x).shape == (3,)


def test_the_classifier_is_right_on_95_percent_of_the_held_out_digits():
    x, y = common.images("mnist", "test")
    acc = (common.classify_mnist(x) == y).double().mean().item()
    saved = json.load(open(common.MNIST_ASSETS))
    assert acc >= 0.95 and acc == pytest.approx(saved["classifier_accuracy"], abs=1e-12)
    stats = common.class_stats(x, "mnist")
    assert stats["classes"] == 10 and stats["class_tv"] < 0.05


def test_the_committed_baselines_are_the_datas():
    """The mean digit's W1 to the held-out digits, computed again, is the committed number;
    the committed quantisation is closer than the mean and farther than real digits."""
    saved = json.load(open(common.MNIST_ASSETS))["baselines"]
    train, test = common.images("mnist", "train")[0], common.images("mnist", "test")[0]
    mean = train.mean(dim=0, keepdim=True).expand(len(test), -1, -1, -1)
    assert common.w1(mean, test) == pytest.approx(saved["w1_mean_digit"], rel=1e-9)
    floor = common.w1(train[torch.randperm(4000)[:1000]], test)
    # in 784 pixels the 1000 W1-optimal centroids are as close to the held-out digits as 1000
    # real digits (5.86 against 5.83–5.88): pixel W1 cannot tell them apart; the mean cannot
    assert abs(saved["w1_ot_means"] - floor) < 0.05 * floor < saved["w1_mean_digit"] - floor
    assert common.collapsed_baselines("mnist") == saved


def test_the_feature_distance_separates_a_collapse_from_real_digits():
    """1000 training digits against the 1000 held out: FD 6 (the floor); 1000 digits of three
    classes: 478; 1200 copies of the 400 training ones, a generator that draws one class: 1462.
    Where pixel W1 cannot tell centroids from digits, the features tell a collapse at once."""
    train, labels = common.images("mnist", "train")
    real, f = common.images("mnist", "test")[0], common.mnist_features
    g = torch.Generator().manual_seed(0)
    floor = common.frechet_distance(f(train[torch.randperm(4000, generator=g)[:1000]]), f(real))
    one_class = common.frechet_distance(f(train[labels == 1].repeat(3, 1, 1, 1)), f(real))
    some = train[labels <= 2]  # three classes of ten: ~500
    three = common.frechet_distance(f(some[torch.randperm(len(some), generator=g)[:1000]]),
                                    f(real))
    assert 0 < floor < 20 and 50 * floor < three < one_class
    assert common.frechet_distance(f(real), f(real)) == pytest.approx(0, abs=1e-6)


def linear(a):
    return lambda x: x.flatten(1) @ a


@pytest.mark.parametrize("name,penalty,want", [
    ("WGAN-GP", lambda f, r, x: gradient_penalty(f, r, x), lambda n: (n - 1) ** 2),
    ("WGAN-LP", lambda f, r, x: gradient_penalty(f, r, x, one_sided=True),
     lambda n: max(n - 1, 0) ** 2),
    ("DRAGAN", lambda f, r, x: dragan_penalty(f, r), lambda n: (n - 1) ** 2),
    ("R1", lambda f, r, x: zero_centred_penalty(f, r, x, "none"), lambda n: n ** 2),
    ("WGAN-div", lambda f, r, x: divergence_penalty(f, r, x), lambda n: 2 * n ** 6),
    ("ALP", lambda f, r, x: alp_penalty(f, r, x, 0.1, 1.0, 1.0), lambda n: max(n - 1, 0) ** 2),
])
def test_every_gradient_penalty_on_28_by_28_images_is_the_hand_computed_one(name, penalty, want):
    """A linear critic f = a·x on 784 pixels has ‖∇f‖ = ‖a‖ everywhere."""
    g = torch.Generator().manual_seed(1)
    a = torch.randn(784, dtype=torch.float64, generator=g) / 20
    real, fake = (torch.rand(16, 1, 28, 28, dtype=torch.float64, generator=g) for _ in "rf")
    n = math.sqrt(a.norm().item() ** 2 + 1e-12)
    assert penalty(linear(a), real, fake).item() == pytest.approx(want(n), rel=1e-6)


def test_the_quotient_penalty_on_28_by_28_images_is_the_hand_computed_one():
    """SLOGAN on real–fake pairs of images: L = |a·(x − y)| / ‖x − y‖ for each pair."""
    g = torch.Generator().manual_seed(2)
    a = torch.randn(784, dtype=torch.float64, generator=g)
    real, fake = (torch.rand(16, 1, 28, 28, dtype=torch.float64, generator=g) for _ in "rf")
    d = (real - fake).flatten(1)
    L = (d @ a).abs() / (d.norm(dim=1) + 1e-8)
    want = (L - 1).clamp(min=0).pow(2).mean()
    got = lipschitz_penalty(linear(a), real, fake, pairs="real-fake")
    assert got.item() == pytest.approx(want.item(), rel=1e-9)


def test_the_curves_show_the_feature_distance_where_a_run_measured_it(tmp_path, monkeypatch):
    """An MNIST run's curves get a panel of FD against its floor (pixel W1 barely moves there);
    a run without the column keeps the panels it had."""
    from matplotlib.figure import Figure

    titles, save = [], Figure.savefig  # conftest's: writes a placeholder

    def savefig(fig, fname, **kw):
        titles.append([ax.get_title() for ax in fig.axes if ax.get_title()])
        save(fig, fname, **kw)
    monkeypatch.setattr(Figure, "savefig", savefig)
    rows = [dict(iter=it, critic_estimate=1.0, w1=7 - it / 1000, w1_floor=5.86, penalty=0.1,
                 grad_norm_mean=1.0, grad_norm_max=1.2, classes=10, class_tv=0.1,
                 fd=500 / (1 + it / 100), fd_floor=6.0) for it in range(0, 1000, 250)]
    common.plot_curves(rows, str(tmp_path / "fd.png"))
    common.plot_curves([{k: v for k, v in r.items() if not k.startswith("fd")} for r in rows],
                       str(tmp_path / "no.png"))
    with_fd, without = titles
    assert [t for t in with_fd if t not in without] == [
        "Fréchet distance of the classifier's features"]
    assert len(with_fd) == len(without) + 1 == 5


def test_the_classifier_is_trained_once_where_its_weights_are_missing(tmp_path, monkeypatch):
    """A fresh clone has no weights (they are made, not committed): the first use trains them
    and writes them whole; a later process loads them and trains nothing."""
    path = str(tmp_path / "mnist_classifier.pt")
    monkeypatch.setattr(common, "MNIST_CLASSIFIER", path)
    monkeypatch.setattr(common, "MNIST_EPOCHS", 1)  # the same training, shorter
    monkeypatch.setattr(common, "MNIST_ACCURACY", 0.75)  # which gets ~81 % right, not 97
    common._mnist_classifier.cache_clear()
    try:
        x, y = common.images("mnist", "test")
        acc = (common.classify_mnist(x) == y).double().mean().item()
        assert acc > 0.8 and os.path.exists(path)
        assert sorted(os.listdir(tmp_path)) == ["mnist_classifier.pt", "mnist_classifier.pt.lock"]
        common._mnist_classifier.cache_clear()  # as a new process would

        def train(*a, **k):
            raise AssertionError("trained again")
        monkeypatch.setattr(common, "train_mnist_classifier", train)
        assert (common.classify_mnist(x) == y).double().mean().item() == acc
    finally:
        common._mnist_classifier.cache_clear()  # the other tests load the real weights again
