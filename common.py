"""What every method script shares: toy data, the digits, exact-W1 evaluation and figures.

Nothing here knows about a particular Lipschitz constraint. Each method script (SCRIPTS, found
by method_scripts: every top-level script that declares CONFIGS) holds its own models, penalty or
constraint and training loop, and imports only this module, so that reading one script shows one
whole method; what every script does around its loop the same way (Run) is here.

Data (as igul222/improved_wgan_training, gan_toy.py, the WGAN-GP paper's toy code, defines it):
    8gaussians   2·{(±1, 0), (0, ±1), (±1/√2, ±1/√2)} + 0.02·N(0, I), then divided by 1.414
    25gaussians  (2i, 2j), i, j ∈ {-2..2}     + 0.05·N(0, I), then divided by 2.828
    swissroll    t = 1.5π(1 + 2u), (t cos t, t sin t) + 0.25·N(0, I), then divided by 7.5
                 (sklearn.make_swiss_roll(noise=0.25), columns 0 and 2)
And one small real image set:
    digits       the 1797 handwritten 8×8 digits that scikit-learn ships (no download), grey
                 levels scaled to [0, 1], as (N, 1, 8, 8) tensors; 512 of them held out

Evaluation: exact W1 between point clouds or images (an assignment problem, solved by POT),
its noise floor W1(real, real'), mode statistics for the two mixtures, class coverage and two
collapsed baselines for the digits.

Figures: the critic's level sets with real (orange) and generated (green) samples beside a map of
‖∇f‖ (digits: samples ordered by the critic, and histograms of f and ‖∇f‖), and the training
curves from a run's metrics table.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import errno
import io
import functools
import inspect
import json
import math
import os
import platform
import re
import shutil
import signal
import sys
import time
import warnings
from typing import NamedTuple

import numpy as np
import torch
# Figures are drawn with matplotlib's object API (Figure, not pyplot): no backend is chosen, so
# importing a script in a notebook leaves its inline plots alone, and nothing pops up on a desktop.
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

ROOT = os.path.dirname(os.path.abspath(__file__))


def method_scripts(folder: str = ROOT) -> tuple:
    """The method scripts: the .py files of the folder (the repository's top level) that declare
    CONFIGS, the configurations of their method that the sweeps run, by name. The sweeps, the
    W1 benchmark, the report and the shared tests find the methods here: a new method is a new
    such file, and nothing else lists it."""
    found = []
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py"):
            with open(os.path.join(folder, name), encoding="utf-8") as fh:
                if re.search(r"^CONFIGS\s*=", fh.read(), re.M):
                    found.append(name[:-3])
    return tuple(found)


SCRIPTS = method_scripts()  # one per constraint (the benchmarks and the tests run them all)
TOYS = ("8gaussians", "25gaussians", "swissroll")  # 2-D point clouds
IMAGES = ("digits", "mnist")  # tensors of shape (N, 1, 8, 8) and (N, 1, 28, 28)
DATASETS = TOYS + IMAGES

# Post-scaling geometry of the mixtures: (centres before scaling, component std, divisor).
_SCALE = {"8gaussians": 1.414, "25gaussians": 2.828, "swissroll": 7.5}
_NOISE = {"8gaussians": 0.02, "25gaussians": 0.05, "swissroll": 0.25}


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
def _mixture_centres(name: str, idx: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Centres (before scaling) of the components numbered idx, computed on idx's device.

    Computed from the index with arithmetic rather than looked up in a constant table, so that
    no host-to-device copy happens and sampling can run inside a captured CUDA graph.
    """
    if name == "8gaussians":
        # gan_toy.py's 8 centres are exactly the points of the circle of radius 2 at multiples of
        # 45°; rounding makes cos(90°) ≈ -4e-8 instead of 0, far below the component std 0.014.
        angle = idx.to(dtype) * (math.pi / 4)
        return 2.0 * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    i = torch.div(idx, 5, rounding_mode="floor") - 2
    j = idx - 5 * torch.div(idx, 5, rounding_mode="floor") - 2
    return 2.0 * torch.stack([i, j], dim=1).to(dtype)


def sample(name: str, n: int, device="cpu", generator: torch.Generator | None = None,
           dtype: torch.dtype = torch.float32, split: str = "train",
           replace: bool = True) -> torch.Tensor:
    """Draw n points of a toy distribution as an (n, 2) tensor, or n images (n, 1, H, W).

    Pure torch ops on the target device: no numpy, no host sync, so a script can draw batches
    inside a captured CUDA graph (leave `generator` None there: the default generator is the one
    CUDA graphs know how to advance on every replay).

    digits, mnist: drawn with replacement from the training split (1285 digits; 4000 MNIST
    digits), or without (replace=False); split="test" draws n distinct images of the held-out
    split (512; 1000), which no script trains on. On the toys every draw is fresh, so split and
    replace change nothing.
    """
    _check_name(name)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    kw = dict(device=device, generator=generator)
    if name in IMAGES:
        data = images(name, split, device, dtype)[0]
        if split == "test" or not replace:
            if n > len(data):
                raise ValueError(f"the {split} split has {len(data)} digits, not {n}")
            return data[torch.randperm(len(data), **kw)[:n]]
        return data[torch.randint(0, len(data), (n,), **kw)]
    if name == "swissroll":
        t = 1.5 * math.pi * (1 + 2 * torch.rand(n, 1, dtype=dtype, **kw))
        x = torch.cat([t * torch.cos(t), t * torch.sin(t)], dim=1)
        x = x + _NOISE[name] * torch.randn(n, 2, dtype=dtype, **kw)
        return x / _SCALE[name]
    k = 8 if name == "8gaussians" else 25
    idx = torch.randint(0, k, (n,), **kw)
    x = _mixture_centres(name, idx, dtype) + _NOISE[name] * torch.randn(n, 2, dtype=dtype, **kw)
    return x / _SCALE[name]


DIGITS_TEST = 512  # digits held out for evaluation: exact W1 at n = 512 takes ~0.3 s


@functools.lru_cache(maxsize=None)
def _digits(device: str, dtype: torch.dtype):
    """scikit-learn's copy of the UCI handwritten digits (1797 images of 8×8 grey levels 0–16,
    shipped inside the package: nothing is downloaded), scaled to [0, 1], split once by a fixed
    permutation into 1285 training and 512 held-out digits. Cached per device, so that the
    copy to the GPU happens once, before any CUDA graph is captured."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # pragma: no cover - requirements.txt pins scikit-learn
        raise ImportError("--data digits needs scikit-learn (pip install -r requirements.txt)") \
            from e
    d = load_digits()
    x = torch.tensor(d.images, dtype=dtype).div_(16).unsqueeze(1)
    y = torch.tensor(d.target, dtype=torch.long)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    test, train = perm[:DIGITS_TEST], perm[DIGITS_TEST:]
    return {s: (x[i].to(device), y[i].to(device)) for s, i in (("train", train), ("test", test))}


def digits(split: str = "train", device="cpu", dtype: torch.dtype = torch.float32):
    """(images (N, 1, 8, 8) in [0, 1], labels (N,)) of the digits' training (1285) or held-out
    (512) split, on `device`. The same tensors on every call: do not modify them."""
    return _digits(str(indexed(device)), dtype)[split]


DATA = os.path.join(ROOT, "data")
MNIST_FILE = os.path.join(DATA, "mnist_5k.csv.gz")  # its source and licence: data/*.SOURCE.md
MNIST_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
MNIST_TEST = 1000  # MNIST digits held out: 100 of each class


@functools.lru_cache(maxsize=None)
def _mnist_arrays():
    """The 5000 MNIST digits as uint8 (5000, 784) and their labels, read once per process."""
    import gzip
    import hashlib
    with open(MNIST_FILE, "rb") as fh:
        raw = fh.read()
    if hashlib.sha256(raw).hexdigest() != MNIST_SHA256:
        raise ValueError(f"{MNIST_FILE} is not the file this project ships (its sha256 differs)")
    table = np.loadtxt(io.BytesIO(gzip.decompress(raw)), delimiter=",", dtype=np.uint8)
    return table[:, :784], table[:, 784].astype(np.int64)


@functools.lru_cache(maxsize=None)
def _mnist(device: str, dtype: torch.dtype):
    """The 5000 MNIST digits (500 a class, 28×28, grey levels 0–255 scaled to [0, 1]), split once
    by a fixed permutation within each class into 4000 training and 1000 held-out digits (400
    and 100 of each class). Cached per device, as the digits are."""
    pixels, labels = _mnist_arrays()
    x = torch.tensor(pixels, dtype=dtype).div_(255).reshape(-1, 1, 28, 28)
    y = torch.tensor(labels)
    g = torch.Generator().manual_seed(0)
    test = torch.cat([torch.nonzero(y == k).flatten()[torch.randperm(500, generator=g)]
                      [: MNIST_TEST // 10] for k in range(10)])
    train = torch.tensor(sorted(set(range(len(y))) - set(test.tolist())))
    return {s: (x[i].to(device), y[i].to(device)) for s, i in (("train", train), ("test", test))}


def images(name: str, split: str = "train", device="cpu", dtype: torch.dtype = torch.float32):
    """(images (N, 1, H, W) in [0, 1], labels (N,)) of an image dataset's split (digits: 8×8,
    1285 / 512; mnist: 28×28, 4000 / 1000), on `device`. Do not modify them."""
    if name == "digits":
        return digits(split, device, dtype)
    return _mnist(str(indexed(device)), dtype)[split]


# The WGAN-GP paper's MNIST models (igul222/improved_wgan_training, gan_mnist.py, MODE wgan-gp:
# no batch norm), at DIM = --dim. One definition for every script: they are the experiment's,
# not a method's; a method that is an architecture wraps or replaces the critic in its script.
Z_MNIST = 128  # gan_mnist.py's noise size


class MnistCritic(torch.nn.Module):
    """gan_mnist.py's critic: 5×5 convolutions with stride 2, 1 → dim → 2·dim → 4·dim channels
    (28×28 → 14×14 → 7×7 → 4×4, TensorFlow's 'SAME' padding), LeakyReLU(0.2), no batch norm,
    then a linear score. (N, 1, 28, 28) → (N,)."""

    def __init__(self, dim: int = 64):
        super().__init__()
        nn = torch.nn
        self.net = nn.Sequential(
            nn.Conv2d(1, dim, 5, stride=2, padding=2), nn.LeakyReLU(0.2),
            nn.Conv2d(dim, 2 * dim, 5, stride=2, padding=2), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * dim, 4 * dim, 5, stride=2, padding=2), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(4 * 4 * 4 * dim, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)


class MnistGenerator(torch.nn.Module):
    """gan_mnist.py's generator: z (N, 128) → linear to 4·4·4dim, ReLU → 5×5 transposed
    convolutions with stride 2 to 8×8 (cropped to 7×7), 14×14 and 28×28, ReLU between, and a
    sigmoid for grey levels in [0, 1]. No batch norm (its MODE wgan-gp has none)."""

    def __init__(self, dim: int = 64):
        super().__init__()
        nn = torch.nn
        up = dict(kernel_size=5, stride=2, padding=2, output_padding=1)  # 'SAME': twice as big
        self.dim = dim
        self.fc = nn.Sequential(nn.Linear(Z_MNIST, 4 * 4 * 4 * dim), nn.ReLU())
        self.up1 = nn.Sequential(nn.ConvTranspose2d(4 * dim, 2 * dim, **up), nn.ReLU())
        self.up2 = nn.Sequential(nn.ConvTranspose2d(2 * dim, dim, **up), nn.ReLU(),
                                 nn.ConvTranspose2d(dim, 1, **up), nn.Sigmoid())

    def forward(self, z):
        x = self.up1(self.fc(z).reshape(len(z), 4 * self.dim, 4, 4))
        return self.up2(x[:, :, :7, :7])  # gan_mnist.py crops 8×8 to 7×7


# Memory of a training step, relative to the toys' MLP of the same --dim (the scripts'
# step_bytes): weights and activations per unit of width, measured from the models' sizes.
WEIGHTS = {"mnist": 40}  # gan_mnist.py's convolutions at dim 64: ~2.6 M weights = 640·dim²
ACTIVATIONS = {"digits": 5, "mnist": 20}


def centres(name: str) -> np.ndarray | None:
    """The mixture's component centres after scaling, shape (k, 2); None for the swiss roll and
    the digits."""
    _check_name(name)
    if name in ("swissroll", *IMAGES):
        return None
    k = 8 if name == "8gaussians" else 25
    c = _mixture_centres(name, torch.arange(k), torch.float64)
    return (c / _SCALE[name]).numpy()


def component_std(name: str) -> float | None:
    """Std of one mixture component after scaling (the 3-std rule of mode_stats uses it)."""
    _check_name(name)
    return None if name in ("swissroll", *IMAGES) else _NOISE[name] / _SCALE[name]


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------
def _as_numpy(x, what: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim > 2 and x.shape[0] > 0:  # images: a point per image, its pixels the coordinates
        x = x.reshape(x.shape[0], -1)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{what} must be a non-empty (n, d) point cloud, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{what} contains NaN or inf")
    return x


def w1(x, y, num_iter_max: int = 10_000_000) -> float:
    """Exact Wasserstein-1 distance (Euclidean ground cost) between two point clouds.

    Each cloud gets uniform weights; x and y are torch tensors (any device) or numpy arrays of
    shape (n, d) and (m, d), or images (n, C, H, W), compared pixel by pixel. Solved as a
    linear program by POT's network simplex (ot.emd2) in float64. The default iteration cap of
    POT (1e5) stops early on large clouds and then returns a wrong number with only a warning;
    here that becomes a RuntimeError.
    """
    import ot  # imported here so that data and plots work without POT installed
    from scipy.spatial.distance import cdist

    a, b = _as_numpy(x, "x"), _as_numpy(y, "y")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x and y live in different dimensions: {a.shape[1]} vs {b.shape[1]}")
    # Direct differences, not ot.dist's ‖x‖² + ‖y‖² − 2x·y, which loses ~8 digits near 0.
    cost = cdist(a, b, metric="euclidean")
    wa = np.full(len(a), 1.0 / len(a))
    wb = np.full(len(b), 1.0 / len(b))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "numItermax reached" must not pass silently
        value, log = ot.emd2(wa, wb, cost, numItermax=num_iter_max, log=True)
    if log.get("result_code") != 1:
        raise RuntimeError(f"exact W1 solver did not reach optimality: {log.get('warning')}")
    return float(value)


def w1_floor(name: str, n: int, generator: torch.Generator | None = None) -> float:
    """W1 between two independent real samples of size n: what a perfect generator would score.

    Two samples of the same distribution are about c/√n apart, not 0, so a generator's W1 means
    something only beside this number.
    """
    return w1(sample(name, n, generator=generator), sample(name, n, generator=generator))


def nn_ratio(fake, real) -> float:
    """Median distance from each generated point to its nearest other generated point, over the
    same for the real points (equal sizes). About 1 for a generator that samples the data; near 0
    for one that collapsed onto a few points (or copies), whatever its minibatch W1 says: a set of
    n collapsed points can be as close to n real points as other real points are
    (benchmarks/batch_w1.py)."""
    def median_nn(x):
        x = torch.as_tensor(_as_numpy(x, "samples"))
        d = torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist")
        d.fill_diagonal_(float("inf"))
        return d.min(dim=1).values.median().item()
    return median_nn(fake) / max(median_nn(real), 1e-300)


def sample_stats(name: str, fake, real) -> dict:
    """What the exact W1 cannot see on its own: mode statistics on the mixtures (mode_stats),
    class coverage on the digits (class_stats) and the collapse check nn_ratio on every
    dataset."""
    cover = class_stats(fake, name) if name in IMAGES else mode_stats(name, fake)
    return {**(cover or {}), "nn_ratio": nn_ratio(fake, real)}


def classify_digits(x: torch.Tensor) -> torch.Tensor:
    """The digit class of each image of x (N, 1, 8, 8) by its nearest training digit in pixel
    space (1-nearest-neighbour: no training, no randomness; 98.2 % right on the held-out split)."""
    images, labels = digits("train", x.device, x.dtype)
    d = torch.cdist(x.detach().flatten(1), images.flatten(1))
    return labels[d.argmin(dim=1)]


COVERED = 0.25  # a class is covered if it gets at least this share of the uniform 1/10


def class_stats(fake, name: str = "digits") -> dict:
    """Class coverage of generated digits: the share of each class (classify_digits; on MNIST
    the classifier, mnist_classifier), the
    number of classes covered (share ≥ COVERED / 10) and the total-variation distance of the
    10-class histogram from uniform, ½ Σ_k |share_k − 1/10| (0 for a uniform histogram, 0.9 for
    a generator that draws one class only; the 512 held-out digits score 0.04)."""
    x = torch.as_tensor(fake)
    labels = classify_mnist(x) if name == "mnist" else classify_digits(x)
    share = torch.bincount(labels, minlength=10).double() / len(x)
    return {"classes": int((share >= COVERED / 10).sum()), "n_classes": 10,
            "class_tv": 0.5 * (share - 0.1).abs().sum().item(),
            **{f"class_{k}": share[k].item() for k in range(10)}}


@functools.lru_cache(maxsize=None)
def collapsed_baselines(name: str) -> dict:
    """W1 from the held-out digits to two collapsed generators (benchmarks/batch_w1.py):
    DIGITS_TEST copies of the mean training digit, and the DIGITS_TEST-point W1-optimal
    quantisation of the training split (ot_means). A generator must beat the first to be
    more than a blur; the second shows how close centroids, not digits, can come. Digits and
    MNIST ({} on the toys); MNIST's, with its 1000 held-out digits, are read from
    data/mnist_5k.assets.json (benchmarks/mnist_assets.py computes them: a minute)."""
    if name == "mnist":
        with open(MNIST_ASSETS, encoding="utf-8") as fh:
            saved = json.load(fh)["baselines"]
        return {k: saved[k] for k in ("w1_mean_digit", "w1_ot_means")}
    if name != "digits":
        return {}
    train, test = digits("train")[0], digits("test")[0]
    mean = train.mean(dim=0, keepdim=True).expand(DIGITS_TEST, -1, -1, -1)
    centroids = ot_means(_as_numpy(train, "train"), DIGITS_TEST)
    return {"w1_mean_digit": w1(mean, test), "w1_ot_means": w1(centroids, test)}


MNIST_ASSETS = os.path.join(DATA, "mnist_5k.assets.json")  # the baselines' numbers
MNIST_CLASSIFIER = os.path.join(DATA, "mnist_classifier.pt")  # its weights (made, not committed)


class MnistClassifier(torch.nn.Module):
    """A small convolutional classifier of MNIST digits, trained on the 4000 training digits
    (train_mnist_classifier, on first use): two 5×5 convolutions of 16 and 32
    channels with max-pooling, a 64-unit layer (the features the Fréchet distance compares),
    then the 10 classes."""

    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU())
        self.classes = nn.Linear(64, 10)

    def forward(self, x):
        return self.classes(self.features(x))


MNIST_EPOCHS, MNIST_BATCH, MNIST_LR = 10, 100, 1e-3  # the classifier's training


def train_mnist_classifier(epochs: int | None = None, seed: int = 0) -> MnistClassifier:
    """MnistClassifier trained on the 4000 training digits: Adam, batch 100, 10 epochs, seed 0,
    on one CPU thread (the same weights on one machine; another BLAS may differ in the last
    bits, so the accuracy benchmarks/mnist_assets.py records is checked, not the bytes)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:  # first use may come from inside torch.no_grad (classify_mnist)
        torch.manual_seed(seed)
        x, y = images("mnist", "train")
        net = MnistClassifier()
        opt = torch.optim.Adam(net.parameters(), lr=MNIST_LR)
        g = torch.Generator().manual_seed(seed)
        for _ in range(MNIST_EPOCHS if epochs is None else epochs):
            for idx in torch.randperm(len(x), generator=g).split(MNIST_BATCH):
                with torch.enable_grad():
                    loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
    return net.eval()


@functools.lru_cache(maxsize=None)
def _mnist_classifier(device: str):
    """The classifier's weights from MNIST_CLASSIFIER; where there are none yet (a fresh clone:
    they are made, not committed), trained once and written there, under a lock so that
    processes started together train it once."""
    if not os.path.exists(MNIST_CLASSIFIER):
        with open(MNIST_CLASSIFIER + ".lock", "a") as lock:
            try:
                import fcntl
                fcntl.flock(lock, fcntl.LOCK_EX)  # blocks while another process trains it
            except ImportError:  # Windows: no lock; at worst two processes train it
                pass
            if not os.path.exists(MNIST_CLASSIFIER):
                print(f"[mnist] training the evaluation's classifier once into "
                      f"{MNIST_CLASSIFIER} (~20 s on one thread)", file=sys.stderr, flush=True)
                tmp = f"{MNIST_CLASSIFIER}.{os.getpid()}.tmp"
                torch.save(train_mnist_classifier().state_dict(), tmp)
                os.replace(tmp, MNIST_CLASSIFIER)  # whole or absent, never torn
    net = MnistClassifier()
    net.load_state_dict(torch.load(MNIST_CLASSIFIER, map_location="cpu", weights_only=True))
    return net.eval().to(device)


def mnist_classifier(device="cpu") -> torch.nn.Module:
    """The MNIST classifier (MnistClassifier) on `device`, in eval mode: do not train it.
    Trained on first use (train_mnist_classifier); 97 % right on the held-out split
    (data/mnist_5k.assets.json has the exact number)."""
    return _mnist_classifier(str(indexed(device)))


@torch.no_grad()
def classify_mnist(x: torch.Tensor) -> torch.Tensor:
    """The digit class of each image of x (N, 1, 28, 28) by the classifier."""
    net = mnist_classifier(x.device)
    return torch.cat([net(b.float()).argmax(1) for b in x.detach().split(1024)])


@torch.no_grad()
def mnist_features(x: torch.Tensor) -> torch.Tensor:
    """The classifier's 64 penultimate features of each image of x (N, 1, 28, 28), float64."""
    net = mnist_classifier(x.device)
    return torch.cat([net.features(b.float()) for b in x.detach().split(1024)]).double().cpu()


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """The Fréchet distance between Gaussians fitted to two sets of features (N, d):
    ‖μ_a − μ_b‖² + Tr(Σ_a + Σ_b − 2(Σ_a Σ_b)^½), as FID computes it on Inception features
    (Heusel et al. 2017, arXiv:1706.08500); here on the MNIST classifier's."""
    from scipy import linalg
    a, b = _as_numpy(a, "a"), _as_numpy(b, "b")
    mu = a.mean(0) - b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():  # a collapsed generator's covariance is singular: fine here
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(sa @ sb)
    return float(mu @ mu + np.trace(sa + sb - 2 * np.real(root)))


def ot_means(data: np.ndarray, n: int, iters: int = 30, seed: int = 0) -> np.ndarray:
    """n equal-mass centroids minimising W1 to the empirical measure of `data` (N ≥ n points):
    exact plan (ot.emd), then one Weiszfeld step per centroid, until the cost stops falling.
    (Elnekave & Weiss 2025, "Do WGANs succeed because they minimize the Wasserstein distance?")"""
    import ot
    from scipy.spatial.distance import cdist
    rng = np.random.default_rng(seed)
    c = data[rng.choice(len(data), n, replace=False)].copy()
    a, b = np.full(len(data), 1 / len(data)), np.full(n, 1 / n)
    best = np.inf
    for _ in range(iters):
        d = cdist(data, c)
        plan = ot.emd(a, b, d, numItermax=10_000_000)
        cost = float((plan * d).sum())
        if cost > best - 1e-9:
            break
        best = cost
        w = plan / np.maximum(d, 1e-12)  # Weiszfeld weights π_ij / d_ij
        c = (w.T @ data) / w.sum(axis=0)[:, None]
    return c


def distance_to_data(name: str, x: torch.Tensor) -> torch.Tensor:
    """Distance from each point of x (N, 2) to the noiseless data: the swiss roll's curve
    (t cos t, t sin t)/7.5, t ∈ [1.5π, 4.5π], resolved to 1e-3, or the nearest mixture centre.
    Toys only."""
    if name not in TOYS:
        raise ValueError(f"distance_to_data knows the toys only ({', '.join(TOYS)}), not {name!r}")
    if name == "swissroll":
        t = torch.linspace(1.5 * math.pi, 4.5 * math.pi, 20_000, dtype=torch.float64)
        ref = torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=1) / _SCALE[name]
    else:
        ref = torch.as_tensor(centres(name))
    x = x.detach().to("cpu", torch.float64)
    return torch.cdist(x, ref, compute_mode="donot_use_mm_for_euclid_dist").min(dim=1).values


BAND = 0.25  # the band around the data where distance_stats compares f with −d


def distance_stats(name: str, critic, device, n: int = 4096) -> dict:
    """Is the critic a distance to the data? On the toys ({} on the digits, whose "noiseless
    data" is not known), on n fixed points spread over [-2.5, 2.5]²:
    the Pearson correlation of f with −d (d = distance_to_data) among the points within BAND of
    the data, and the mean ‖∇f‖ inside and outside that band. A critic that learned the
    distance (an Eikonal solution, ‖∇f‖ = 1) has correlation near 1 and ‖∇f‖ ≈ 1 everywhere."""
    if name in IMAGES:
        return {}
    g = torch.Generator().manual_seed(1234)
    x = (torch.rand(n, 2, generator=g) * 5 - 2.5).to(device)
    d = distance_to_data(name, x)
    f, gn = critic_and_grad_norm(critic, x)
    inside = d <= BAND
    fi, di = f[inside] - f[inside].mean(), -d[inside] + d[inside].mean()
    corr = (fi * di).sum() / (fi.norm() * di.norm()).clamp(min=1e-300)
    return {"dist_corr": corr.item(), "grad_norm_in_band": gn[inside].mean().item(),
            "grad_norm_out_band": gn[~inside].mean().item()}


def mode_stats(name: str, samples) -> dict | None:
    """Modes captured and share of high-quality samples for the mixtures; None for swissroll.

    A sample is high quality if it lies within 3 component stds (after scaling) of its nearest
    centre; a mode is captured if at least one high-quality sample is nearest to it
    (the convention of VEEGAN, arXiv:1705.07761, and PacGAN, arXiv:1712.04086).
    """
    c = centres(name)
    if c is None:
        return None
    x = _as_numpy(samples, "samples")
    d = np.linalg.norm(x[:, None, :] - c[None, :, :], axis=2)
    nearest = d.argmin(axis=1)
    good = d[np.arange(len(x)), nearest] <= 3 * component_std(name)
    return {
        "modes": int(len(np.unique(nearest[good]))),
        "n_modes": int(len(c)),
        "high_quality": float(good.mean()),
    }


N_EVAL = 1024  # points per evaluation (digits: the DIGITS_TEST held out): exact W1 takes ~0.2 s
N_EVAL_DRAWS = 3  # W1 and its floor are means over 3 draws: one draw of 1024 points varies ~20 %


@contextlib.contextmanager
def evaluation_rng(seed: int, it: int, device):
    """Evaluation at iteration it draws from a random stream of its own (seeded by the run's
    seed and it) and leaves the training's stream where it was: a run stopped and resumed draws
    the same numbers as one that was not, and measuring more or less changes no training."""
    with torch.random.fork_rng(devices=[device] if torch.device(device).type == "cuda" else []):
        torch.manual_seed((seed * 1_000_003 + it + 1) % 2**63)
        yield


class Measured(NamedTuple):
    """What measure returns: the metrics row, and the last draw (held-out real points, generated
    points and their exact W1) for the method's own diagnostics."""
    row: dict
    real: torch.Tensor
    fake: torch.Tensor
    w1: float


def measure(name: str, generate, critic, device, estimate=None) -> Measured:
    """The measurement every method's evaluation starts with, the same for every constraint:

        w1, w1_floor      exact W1(generated, held-out real) and W1(real, held-out real), each
                          a mean over N_EVAL_DRAWS draws of N_EVAL points (digits: DIGITS_TEST;
                          mnist: its 1000 held out, the floor's from the training split)
        fd, fd_floor      mnist: the Fréchet distance of the classifier's features, the same
                          two ways (one draw)
        critic_estimate   the method's estimate of W1 on the last draw; by default
                          E f(real) − E f(fake), or estimate(real, fake) where a method
                          estimates otherwise (wgan_ct.py: E f + E f^c)
        coverage          modes on the mixtures, classes on the digits, nn_ratio (sample_stats)
        collapse          on the digits, the W1 of two collapsed generators (collapsed_baselines)
        distance          on the toys, whether f is a distance to the data (distance_stats)

    generate(real_batch) returns the generated points for a batch of training points (the
    script's fake_batch: a fixed generator's fakes are noisy copies of them). Draws from the
    current random stream: call it inside evaluation_rng. A generated sample that is NaN or
    infinite raises Diverged.
    """
    n = DIGITS_TEST if name == "digits" else min(N_EVAL, MNIST_TEST) if name == "mnist" \
        else N_EVAL
    w1s, floors = [], []
    for _ in range(N_EVAL_DRAWS):
        real = sample(name, n, device, split="test")  # digits: held out
        with torch.no_grad():
            fake = generate(sample(name, n, device))
        if not torch.isfinite(fake).all():
            raise Diverged("a generated sample")
        w1s.append(w1(fake, real))
        floors.append(w1(sample(name, n, device, replace=False), real))
    with torch.no_grad():
        est = estimate(real, fake) if estimate else critic(real).mean() - critic(fake).mean()
    row = {"critic_estimate": float(est), "w1": sum(w1s) / len(w1s),
           "w1_floor": sum(floors) / len(floors), **sample_stats(name, fake, real),
           **collapsed_baselines(name),  # digits: what a collapse scores
           **distance_stats(name, critic, device)}  # toys: is f a distance to the data?
    if name == "mnist":  # in 784 pixels W1 separates little: also a distance of features
        held_out = mnist_features(real)
        row.update(fd=frechet_distance(mnist_features(fake), held_out),
                   fd_floor=frechet_distance(mnist_features(sample(name, n, device,
                                                                   replace=False)), held_out))
    return Measured(row, real, fake, w1s[-1])


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------
REAL_COLOUR, FAKE_COLOUR = "#f28e2b", "#2ca02c"  # orange real, green generated, as the blog
GRID_EXTENT, GRID_SIZE = 3.0, 128


def critic_and_grad_norm(critic, x: torch.Tensor):
    """f(x) and ‖∇f(x)‖ (over all non-batch dimensions) at the points x, as float64 CPU
    tensors of shape (N,); ‖∇f‖ = 0 for a critic that ignores its input."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        f = critic(x).reshape(-1)
        (g,) = torch.autograd.grad(f.sum(), x, allow_unused=True)
    g = torch.zeros_like(x) if g is None else g
    return f.detach().cpu().double(), g.flatten(1).norm(dim=1).cpu().double()


def critic_grid(critic, device="cpu", extent: float = GRID_EXTENT, size: int = GRID_SIZE):
    """Evaluate the critic and ‖∇f‖ on a size×size grid over [-extent, extent]².

    Returns (X, Y, F, G) as numpy arrays of shape (size, size) in matplotlib's "xy" layout:
    row i is y = ys[i], column j is x = xs[j], so F[i, j] = f(X[i, j], Y[i, j]) and the arrays
    can be handed to contourf(X, Y, F) without transposing (one public port mirrored its map
    across the diagonal by getting this wrong).
    """
    xs = np.linspace(-extent, extent, size)
    X, Y = np.meshgrid(xs, xs, indexing="xy")
    pts = torch.tensor(np.stack([X.ravel(), Y.ravel()], axis=1), dtype=torch.float32,
                       device=device)
    F, G = critic_and_grad_norm(critic, pts)
    return X, Y, F.numpy().reshape(size, size), G.numpy().reshape(size, size)


def _scatter(ax, pts, colour, label):
    if pts is None:
        return
    p = _as_numpy(pts, label)
    ax.scatter(p[:, 0], p[:, 1], marker="+", s=14, linewidths=0.8, c=colour, label=label,
               alpha=0.8, zorder=3)


def _draw_levels(ax, X, Y, F, real, fake):
    """Filled level sets of F with thin contour lines, and the samples on top."""
    levels = np.linspace(F.min(), F.max(), 25) if np.ptp(F) > 0 else 25
    cf = ax.contourf(X, Y, F, levels=levels, cmap="PuBu", alpha=0.75)
    ax.contour(X, Y, F, levels=levels, colors="k", linewidths=0.35, alpha=0.5)
    _scatter(ax, real, REAL_COLOUR, "real")
    _scatter(ax, fake, FAKE_COLOUR, "generated")
    return cf


def _panel_grid(n: int, ncols: int, width: float, height: float):
    """A figure of n panels, ncols to a row (fewer if n is smaller), the unused ones blanked;
    returns (figure, the n axes, ncols)."""
    if n == 0:
        raise ValueError("no panels to draw")
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.axis("off")
    return fig, axes[:n], ncols


def square_panel(ax, extent: float, title: str, fontsize: int = 9) -> None:
    """A grid panel over [-extent, extent]², equal axes, no ticks, titled."""
    ax.set_xlim(-extent, extent)
    ax.set_ylim(-extent, extent)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=fontsize)


def plot_critic_grid(panels, path: str, title: str = "", ncols: int = 4,
                     extent: float = GRID_EXTENT) -> str:
    """Several critics side by side, as the figures of the 2017-05-29 Lernapparat post: panels
    is a list of (panel title, critic, real, fake); each panel shows level sets and samples."""
    fig, axes, ncols = _panel_grid(len(panels), ncols, 3.6, 3.7)
    for ax, (name, critic, real, fake) in zip(axes, panels):
        params = list(critic.parameters()) if hasattr(critic, "parameters") else []
        X, Y, F, _ = critic_grid(critic, device=params[0].device if params else "cpu",
                                 extent=extent)
        _draw_levels(ax, X, Y, F, real, fake)
        square_panel(ax, extent, name)
    if title:
        fig.suptitle(title, fontsize=12 if ncols >= 3 else 8, wrap=True)
    return _save(fig, path)


def plot_critic(critic, real, fake, path: str, title: str = "", device=None,
                extent: float = GRID_EXTENT) -> str:
    """Draw the critic's level sets with the samples, and beside them the map of ‖∇f‖; for
    images (real of shape (N, C, H, W)), plot_digits instead.

    Left: filled level sets of f on a 128×128 grid over [-extent, extent]², real samples in
    orange, generated in green. Right: ‖∇f‖ on the same grid on a diverging scale centred at 1
    (blue: the critic is flatter than 1-Lipschitz there, red: steeper), with the level
    ‖∇f‖ = 1 drawn in black. `critic` maps an (N, 2) tensor to (N,) or (N, 1); `fake` may be
    None. Writes a PNG to `path` and returns the path.
    """
    if isinstance(real, torch.Tensor) and real.dim() == 4:
        return plot_digits(critic, real, fake, path, title)
    if device is None:
        params = list(critic.parameters()) if hasattr(critic, "parameters") else []
        device = params[0].device if params else (
            real.device if isinstance(real, torch.Tensor) else "cpu")
    X, Y, F, G = critic_grid(critic, device=device, extent=extent)
    fig = Figure(figsize=(12.5, 5.6), layout="constrained")
    ax_f, ax_g = fig.subplots(1, 2)

    cf = _draw_levels(ax_f, X, Y, F, real, fake)
    fig.colorbar(cf, ax=ax_f, shrink=0.9, label="critic f(x)")
    ax_f.legend(loc="upper right", fontsize=8, framealpha=0.85, markerscale=1.5)
    ax_f.set_title("critic level sets and samples", fontsize=10)

    gmax = max(2.0, float(np.nanmax(G)) if np.isfinite(G).any() else 2.0)
    im = ax_g.imshow(G, origin="lower", extent=(-extent, extent, -extent, extent),
                     cmap="RdBu_r", norm=TwoSlopeNorm(vmin=0.0, vcenter=1.0, vmax=gmax),
                     interpolation="nearest", aspect="equal")
    if G.min() < 1.0 < G.max():
        ax_g.contour(X, Y, G, levels=[1.0], colors="k", linewidths=1.2)
    cb = fig.colorbar(im, ax=ax_g, shrink=0.9, label="‖∇f(x)‖")
    cb.ax.axhline(1.0, color="k", linewidth=1.2)
    share = float((G > 1.0).mean())
    ax_g.set_title(f"‖∇f‖ (black: ‖∇f‖ = 1); max {G.max():.3g}, above 1 on {100 * share:.0f}%",
                   fontsize=10)

    for ax in (ax_f, ax_g):
        ax.set_xlim(-extent, extent)
        ax.set_ylim(-extent, extent)
        ax.set_aspect("equal")
        ax.set_xlabel("x₁")
        ax.set_ylabel("x₂")
    if title:
        fig.suptitle(title, fontsize=12)
    return _save(fig, path)


def montage(images, ncols: int = 8) -> np.ndarray:
    """Images (N, 1, H, W) tiled into one 2-D array, ncols per row, one NaN pixel between
    tiles (drawn as the background)."""
    x = _as_numpy(images, "images").reshape(len(images), *images.shape[-2:])
    n, h, w = x.shape
    rows = -(-n // ncols)
    out = np.full((rows * (h + 1) - 1, ncols * (w + 1) - 1), np.nan)
    for i, im in enumerate(x):
        r, c = divmod(i, ncols)
        out[r * (h + 1): r * (h + 1) + h, c * (w + 1): c * (w + 1) + w] = im
    return out


def _show_digits(ax, images, title: str, ncols: int = 8) -> None:
    import matplotlib
    cmap = matplotlib.colormaps["gray_r"].with_extremes(bad="#f3efe6")
    ax.imshow(montage(images, ncols), cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)


def plot_digits(critic, real, fake, path: str, title: str = "", n_show: int = 64) -> str:
    """What the critic makes of digits: n_show real and n_show generated digits, each ordered
    by the critic's score (highest first, read row by row), then the histograms of f and of
    ‖∇f‖ on all the real and generated samples and on the points between them that a gradient
    penalty looks at. `fake` may be None. Writes a PNG to `path` and returns the path."""
    t = torch.rand((len(real),) + (1,) * (real.dim() - 1), generator=torch.Generator()
                   .manual_seed(0)).to(real.device, real.dtype)
    sets = [("real", real, REAL_COLOUR)]
    if fake is not None:
        sets += [("generated", fake, FAKE_COLOUR),
                 ("between (x̂)", t * real + (1 - t) * fake[: len(real)], "#7f7f7f")]
    scores = {name: [v.numpy() for v in critic_and_grad_norm(critic, x)] for name, x, _ in sets}
    fig = Figure(figsize=(15, 4.3), layout="constrained")
    axes = fig.subplots(1, 4, width_ratios=[1, 1, 1.15, 1.15])
    for ax, (name, x, _) in zip(axes[:2], sets[:2]):
        order = np.argsort(-scores[name][0][:n_show], kind="stable")
        _show_digits(ax, x[:n_show].detach().cpu()[torch.as_tensor(order)],
                     f"{name}, by critic score (highest first)")
    if fake is None:
        axes[1].axis("off")
    for ax, k, label in ((axes[2], 0, "critic f(x)"), (axes[3], 1, "‖∇f(x)‖")):
        allv = np.concatenate([scores[n][k] for n, _, _ in sets])
        allv = allv[np.isfinite(allv)]
        bins = np.linspace(allv.min(), allv.max() + 1e-12, 40) if len(allv) else 40
        for name, _, colour in sets:
            ax.hist(scores[name][k], bins=bins, color=colour, alpha=0.55, label=name)
        if k == 1:
            ax.axvline(1.0, color="k", lw=1.0)
        ax.set_xlabel(label)
        ax.set_title(f"{label} on {len(real)} samples each", fontsize=9)
        ax.legend(fontsize=7, loc="upper right")  # "best" is slow on big data
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=12)
    return _save(fig, path)


def plot_digit_grid(panels, path: str, title: str = "", ncols: int = 4) -> str:
    """Several sets of digits side by side (panels: a list of (panel title, images
    (N, 1, H, W))), each shown as a tile of up to 64: e.g. one panel per method."""
    fig, axes, ncols = _panel_grid(len(panels), ncols, 3.3, 3.6)
    for ax, (name, images) in zip(axes, panels):
        _show_digits(ax, images[:64], name)
    if title:
        fig.suptitle(title, fontsize=12 if ncols >= 3 else 9, wrap=True)
    return _save(fig, path)


def _save(fig, path: str) -> str:
    """Write a figure atomically, so that a crash never leaves a half-written PNG."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    tmp = os.path.join(d, f".{os.path.basename(path)}.tmp.png")
    with writing(path, tmp):
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)
    return path


def plot_against_lambda(series, path: str, title: str, ylabel: str, threshold=None,
                        log_y: bool = False, panels=None, each_panel: bool = False,
                        reference=None) -> str:
    """A metric against the penalty weight λ (log axis), a line per constraint (median, band:
    range over the seeds). series: {constraint: [(λ, median, min, max), ...]}, or with panels
    {panel title: such a dict}, a panel each; threshold: a dashed line (e.g. converged).
    each_panel (without panels): small multiples instead, a panel per constraint on one y-axis,
    the line of reference (a constraint of series, if there) in grey in each: one axes cannot
    tell a dozen lines apart (ten colours, and crossing lines)."""
    import matplotlib
    small = panels is None and each_panel
    groups = {c: {c: pts} for c, pts in series.items()} if small else \
        panels if panels is not None else {"": series}
    fig, axes, _ = _panel_grid(len(groups), 4 if small else 2, *((3.3, 2.6) if small else
                                                                 (5.6, 4.2)))
    palette = matplotlib.colormaps["tab10"].colors
    names = sorted({n for s in groups.values() for n in s})

    def draw(ax, pts, label, **style):
        pts = sorted(p for p in pts if p[1] is not None)
        if pts:
            lam = [p[0] for p in pts]
            ax.plot(lam, [p[1] for p in pts], marker="o", ms=3.5, label=label, **style)
            ax.fill_between(lam, [p[2] for p in pts], [p[3] for p in pts],
                            color=style["color"], alpha=0.15, lw=0)

    for ax, (name, s) in zip(axes, groups.items()):
        if small and name != reference and reference in series:
            draw(ax, series[reference], f"{reference}, for reference", color="0.6", lw=1)
        for i, c in enumerate(names):
            if c in s:  # past ten lines the colours repeat: a dashed line then tells them apart
                draw(ax, s[c], "the panel's constraint, median over the seeds" if small else c,
                     color=palette[0 if small else i % 10], ls="-" if small else
                     ("-", "--", ":")[i // 10 % 3])
        if threshold is not None:
            ax.axhline(threshold, color="k", ls="--", lw=0.8)
        ax.set_xscale("log")
        if log_y:
            ax.set_yscale("log")
        ax.set_xlabel("penalty weight λ")
        ax.set_ylabel(ylabel)
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3, which="both")
    if small:  # one scale, so that panels compare at a glance
        lo = min(ax.get_ylim()[0] for ax in axes)
        hi = max(ax.get_ylim()[1] for ax in axes)
        lams = [p[0] for pts in series.values() for p in pts]
        for ax in axes:
            ax.set_ylim(lo, hi)
            ax.set_xlim(min(lams) / 2, max(lams) * 2)
    legend = {}
    for ax in axes:  # every label once, from whichever panel has it
        for h, lab in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(lab, h)
    fig.legend(legend.values(), legend.keys(), loc="outside lower center" if small else
               "outside right upper", fontsize=8, ncols=3 if small else 1)
    fig.suptitle(title + (" (band: the range over the seeds)" if small else ""), fontsize=10)
    return _save(fig, path)


def read_metrics(path: str) -> list[dict]:
    """Read a run's metrics.csv into a list of dicts of floats (empty cells, and a cell that is
    no number, become NaN), without a torn last row (metrics_table)."""
    def number(v):
        try:
            return float(v) if v != "" else math.nan
        except ValueError:
            return math.nan
    header, rows = metrics_table(path)
    return [{k: number(v) for k, v in zip(header, r)} for r in rows]


def plot_curves(metrics, path: str, title: str = "",
                estimate_label: str = "critic: E f(real) − E f(fake)") -> str:
    """Training curves from a run's metrics (a list of dicts, or the path of metrics.csv).

    Panels: the critic's estimate E f(real) − E f(fake) against the exact W1 and its noise floor;
    the penalty (log scale), or for weight clipping the share of weights pinned at ±c; ‖∇f‖ at
    the penalty points; the cosine between the critic-weight gradients of the discrimination term
    and of λR (does the penalty fight the discrimination term?); mode statistics where the run has
    them, or class coverage on the digits. Columns used: iter, critic_estimate, w1, w1_floor,
    w1_mean_digit, w1_ot_means, penalty, grad_norm_mean, grad_norm_max, cos_disc_pen, fd,
    fd_floor, modes, n_modes, high_quality, classes, class_tv; missing ones are skipped.
    `estimate_label` names the critic_estimate curve (with a GAN loss it is a gap between logits,
    not a W1 estimate).
    """
    rows = read_metrics(metrics) if isinstance(metrics, (str, os.PathLike)) else list(metrics)

    def col(name):
        return np.array([float(r.get(name, float("nan"))) for r in rows], dtype=float)

    it = col("iter")
    has_modes = np.isfinite(col("modes")).any() or np.isfinite(col("classes")).any()
    has_cos = np.isfinite(col("cos_disc_pen")).any()
    has_fd = np.isfinite(col("fd")).any()  # mnist: pixel W1 barely moves, the feature distance does
    ncols = 3 + has_modes + has_cos + has_fd
    fig = Figure(figsize=(4.4 * ncols, 3.8), layout="constrained")
    axes = fig.subplots(1, ncols)

    ax = axes[0]
    ax.plot(it, col("w1"), "-o", ms=3, color="k", label="exact W1(generated, real)")
    ax.plot(it, col("w1_floor"), "--", color="0.5", label="floor W1(real, real′)")
    ax.plot(it, col("critic_estimate"), "-", color="#1f77b4", label=estimate_label)
    for key, style, label in (("w1_mean_digit", "C3:", "the mean digit, repeated"),
                              ("w1_ot_means", "C0:", "OT-means centroids")):
        if np.isfinite(col(key)).any():  # collapsed generators, for scale (digits)
            ax.plot(it, col(key), style, label=label)
    ax.set_xlabel("generator iteration")
    ax.set_title("W1: exact vs the critic's estimate", fontsize=10)
    ax.legend(fontsize=7, loc="upper right")
    ax.grid(alpha=0.3)

    ax = axes[1]
    pen = col("penalty")
    if rows and "penalty" not in rows[0] and "clipped_share" in rows[0]:  # weight clipping
        ax.plot(it, 100 * col("clipped_share"), "-", color="#d62728")
        ax.set_ylim(0, 101)
        ax.set_title("critic weights pinned at ±c (%)", fontsize=10)
    elif rows and "penalty" not in rows[0] and "minimiser_top_share" in rows[0]:  # c-transform
        ax.plot(it, 100 * col("minimiser_top_share"), "-", color="#d62728")
        ax.set_ylim(0, 101)
        ax.set_title("fakes sharing the most common minimiser of f^c (%)", fontsize=10)
    elif np.isfinite(pen).any() and (pen[np.isfinite(pen)] > 0).any():
        ax.semilogy(it, np.where(pen > 0, pen, np.nan), "-", color="#d62728")
        ax.set_title("penalty R (before λ)", fontsize=10)
    else:
        ax.plot(it, pen, "-", color="#d62728")
        ax.set_title("penalty R (before λ)", fontsize=10)
    ax.set_xlabel("generator iteration")
    ax.grid(alpha=0.3, which="both")

    ax = axes[2]
    ax.plot(it, col("grad_norm_mean"), "-", color="#9467bd", label="mean ‖∇f‖")
    ax.plot(it, col("grad_norm_max"), ":", color="#9467bd", label="max ‖∇f‖")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xlabel("generator iteration")
    ax.set_title("‖∇f‖ at the penalty points", fontsize=10)
    ax.legend(fontsize=7, loc="upper right")
    ax.grid(alpha=0.3)

    if has_cos:
        ax = axes[3]
        ax.plot(it, col("cos_disc_pen"), "-o", ms=3, color="#17becf")
        ax.axhline(0.0, color="k", lw=0.8)
        ax.set_ylim(-1.05, 1.05)
        ax.set_xlabel("generator iteration")
        ax.set_title("cos(∇w discrimination, ∇w λR)\n< 0: the penalty pulls against it",
                     fontsize=10)
        ax.grid(alpha=0.3)

    if has_fd:
        ax = axes[3 + has_cos]
        ax.semilogy(it, col("fd"), "-o", ms=3, color="k", label="FD(generated, held-out)")
        ax.semilogy(it, col("fd_floor"), "--", color="0.5", label="floor FD(train, held-out)")
        ax.set_xlabel("generator iteration")
        ax.set_title("Fréchet distance of the classifier's features", fontsize=10)
        ax.legend(fontsize=7, loc="upper right")
        ax.grid(alpha=0.3, which="both")

    if has_modes and np.isfinite(col("classes")).any():  # digits: class coverage
        ax = axes[-1]
        ax.plot(it, col("classes"), "-o", ms=3, color="#8c564b")
        ax.set_ylim(0, 10.5)
        ax.set_xlabel("generator iteration")
        ax.set_ylabel("classes covered")
        ax2 = ax.twinx()
        ax2.plot(it, col("class_tv"), "-", color="#e377c2")
        ax2.set_ylim(0, 0.95)
        ax2.set_ylabel("class histogram: TV from uniform")
        ax.set_title("class coverage (brown: classes, pink: TV)", fontsize=10)
        ax.grid(alpha=0.3)
    elif has_modes:
        ax = axes[-1]
        ax.plot(it, col("modes"), "-o", ms=3, color="#8c564b", label="modes captured")
        ax.set_ylim(0, np.nanmax(col("n_modes")) + 1)
        ax.set_xlabel("generator iteration")
        ax.set_ylabel("modes")
        ax2 = ax.twinx()
        ax2.plot(it, 100 * col("high_quality"), "-", color="#e377c2", label="high quality %")
        ax2.set_ylim(0, 101)
        ax2.set_ylabel("high-quality samples (%)")
        ax.set_title("mode coverage", fontsize=10)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=12)
    return _save(fig, path)


# --------------------------------------------------------------------------------------------
# Evaluation helpers for the critic, and the run's records (metrics.csv, config and summary)
# --------------------------------------------------------------------------------------------
class Diverged(Exception):
    """A loss, a weight or a generated sample became NaN or infinite."""


def grad_norm_stats(critic, x) -> dict:
    """Mean and max of ‖∇f‖ over the points x, and the share of points where it exceeds 1."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(critic(x).sum(), x)
    gn = g.flatten(1).norm(dim=1)
    return {"grad_norm_mean": gn.mean().item(), "grad_norm_max": gn.max().item(),
            "grad_share_above_1": (gn > 1).float().mean().item()}


@torch.no_grad()
def lipschitz_bound(critic, input_shape=(2,)) -> torch.Tensor:
    """An upper bound on the Lipschitz constant (Euclidean norms) of a critic made of nn.Linear
    and nn.Conv2d layers: K = Π_l ‖A_l‖₂, the product of the spectral norms of their linear
    maps (the weights as the critic uses them: a parametrized weight, e.g. spectral_norm's, as
    computed now; call it in eval mode, or spectral_norm takes a power-iteration step).

    A convolution's map depends on the size of its input (padding, stride), so each layer's
    input shape is read off one pass of a zero input of shape (1, *input_shape), and the
    (zero-padded) convolution's matrix is built exactly by applying it to every unit image.
    Valid for layers applied one after the other with 1-Lipschitz activations between them
    (ReLU, LeakyReLU with slope ≤ 1, tanh, GroupSort) and flattening; any other layer needs its
    own factor.
    """
    nn = torch.nn
    layers = [m for m in critic.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    shapes = {}
    hooks = [m.register_forward_pre_hook(lambda m, x: shapes.__setitem__(m, x[0].shape[1:]))
             for m in layers]  # a pre-hook that returns None leaves the input as it is
    try:
        p = next(critic.parameters())
        critic(torch.zeros((1, *input_shape), device=p.device, dtype=p.dtype))
    finally:
        for h in hooks:
            h.remove()
    k = torch.ones((), dtype=torch.float64)
    for m in layers:
        w = m.weight.detach().double().cpu()
        if isinstance(m, nn.Conv2d) and math.prod(shapes[m]) > CONV_MATRIX_MAX:
            k = k * _conv_bound(m, w, shapes[m])  # too big to write down: a Fourier bound
            continue
        if isinstance(m, nn.Conv2d):  # the matrix of x ↦ w ⋆ x over all pixels of its input
            n = math.prod(shapes[m])
            unit = torch.eye(n, dtype=torch.float64).reshape(n, *shapes[m])
            w = nn.functional.conv2d(unit, w, None, m.stride, m.padding, m.dilation,
                                     m.groups).reshape(n, -1)
        if min(w.shape) > 512:  # ‖W‖₂² is the top eigenvalue of the smaller Gram matrix
            gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
            k = k * torch.linalg.eigvalsh(gram)[-1].clamp(min=0).sqrt()
        else:
            k = k * torch.linalg.matrix_norm(w, ord=2)
    return k


CONV_MATRIX_MAX = 4096  # inputs larger than this (MNIST's 64·14·14): _conv_bound


def _conv_bound(m, w, shape) -> torch.Tensor:
    """An upper bound on ‖A‖₂ of the zero-padded convolution x ↦ w ⋆ x on inputs of `shape`,
    whose matrix is too big to write down: A is a restriction (rows kept by the stride and the
    padding) of the circular convolution on an N × N grid with N ≥ H + k − 1, whose singular
    values are those of the c_out × c_in matrices of w's 2-D Fourier transform at each frequency
    (Sedghi, Gupta, Long 2019, "The Singular Values of Convolutional Layers", arXiv:1805.10408).
    So ‖A‖₂ ≤ max over frequencies of their largest singular value: exact for a circular
    stride-1 convolution, at most the stride's factor above ‖A‖₂ for a strided one."""
    if m.groups != 1 or tuple(m.dilation) != (1, 1):
        raise ValueError("the Fourier bound here takes ungrouped, undilated convolutions")
    grid = (shape[-2] + w.shape[-2] - 1, shape[-1] + w.shape[-1] - 1)
    spectrum = torch.fft.fft2(w, s=grid).permute(2, 3, 0, 1)  # (N, N, c_out, c_in)
    return torch.linalg.matrix_norm(spectrum, ord=2).max()


def flat_grad(loss, params) -> torch.Tensor:
    """d loss / d params as one flat vector (zeros for parameters the loss does not reach)."""
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                      for g, p in zip(grads, params)])


def step_stats(columns, total: torch.Tensor, n: int, since: float) -> dict:
    """Means of the training step's outputs summed over n iterations, and the milliseconds per
    iteration since the time `since`. The clock is read after the means reach the host: that
    copy is the one sync per evaluation, so the time counts the queued GPU work, not only how
    fast the host launched it."""
    means = (total / n).tolist() if n else [math.nan] * len(columns)  # no step yet: no value
    seconds = time.time() - since
    return {**dict(zip(columns, means)), "ms_per_iter": 1000 * seconds / n if n else math.nan}


def steps_diverged(row: dict, columns) -> bool:
    """Whether a training step's mean in row is NaN or infinite (an evaluation before the first
    step has no step values, all NaN, and is not a divergence)."""
    values = [row[k] for k in columns]
    if all(math.isnan(v) for v in values) and math.isnan(row["ms_per_iter"]):
        return False
    return not all(math.isfinite(v) for v in values)


def append_metrics(path: str, row: dict) -> None:
    """Append one row to a metrics.csv, writing the header first if the file is new. The row is
    written whole, in one write; a row that a full disk tore before is cut off first."""
    header, rows = metrics_table(path)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header or list(row), extrasaction="ignore", restval="")
    if not header:
        w.writeheader()
    w.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else  # no value: empty
                    f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    whole = _metrics_text(header, rows) if header else ""
    if os.path.exists(path) and whole != _read_text(path):
        _rewrite(path, whole)  # a torn row (or header) left at the end goes first
    with writing(path), open(path, "a", newline="") as fh:
        fh.write(buf.getvalue())


def _read_text(path: str) -> str:
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        return fh.read()


def _metrics_text(header, rows) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerows([header, *rows])  # csv's "\r\n", as DictWriter writes rows
    return buf.getvalue()


def _rewrite(path: str, text: str) -> None:
    with writing(path, path + ".tmp"):
        with open(path + ".tmp", "w", newline="", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(path + ".tmp", path)


def metrics_table(path: str):
    """(header, rows) of a metrics.csv as lists of strings, without what a crash or a full disk
    can leave at its end: a last line without its newline, or rows whose cells do not fit the
    header. ([], []) for a file that does not exist or holds no whole header."""
    if not os.path.exists(path):
        return [], []
    text = _read_text(path)
    if not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]  # torn: the last row was cut before its end
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows or not rows[0] or rows[0][0] != "iter":
        return [], []

    def whole(r):
        try:
            return len(r) == len(rows[0]) and int(float(r[0])) >= 0
        except ValueError:
            return False
    return rows[0], [r for r in rows[1:] if whole(r)]


def trim_metrics(path: str, upto: int) -> set:
    """Drop the rows of metrics.csv past iteration `upto` (on resume: a crash between the row and
    the checkpoint leaves them) and a torn last row (metrics_table), and return the iterations
    logged."""
    if not os.path.exists(path):
        return set()
    header, rows = metrics_table(path)
    keep = [r for r in rows if int(float(r[0])) <= upto]
    if header and _metrics_text(header, keep) != _read_text(path):
        _rewrite(path, _metrics_text(header, keep))
    return {int(float(r[0])) for r in keep}


class WriteFailed(Exception):
    """A file of a run could not be written (a full disk, most often). Says which file and why;
    no_space tells a full disk (or quota) from other causes."""

    def __init__(self, path: str, cause: BaseException):
        self.path = path
        self.no_space = getattr(cause, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or \
            isinstance(cause, RuntimeError)  # torch.save's writer says only "unexpected pos"
        why = "no space left on the device" if getattr(cause, "errno", None) == errno.ENOSPC \
            else getattr(cause, "strerror", None) or (str(cause).strip().splitlines() or [
                type(cause).__name__])[0]
        super().__init__(f"cannot write {path} ({why})")


def _unfinished_save(e: RuntimeError) -> bool:
    """torch.save's error for a file it could not finish writing (the disk filled up)."""
    return any(s in str(e) for s in ("inline_container", "file write failed", "unexpected pos"))


@contextlib.contextmanager
def writing(path: str, tmp: str | None = None):
    """Around writing the file at path (through tmp, replaced into path at the end): an OSError,
    or torch.save's error for a file it could not finish, becomes WriteFailed naming the file,
    and the unfinished tmp is removed, so that no empty or half file looks like output."""
    try:
        yield
    except (OSError, RuntimeError) as e:
        if isinstance(e, RuntimeError) and not _unfinished_save(e):
            raise
        if tmp is not None:
            try:
                os.remove(tmp)
            except OSError:
                pass
        raise WriteFailed(path, e) from None


def _json_safe(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None  # NaN and infinity are not JSON: other tools reject them
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    return [_json_safe(x) for x in v] if isinstance(v, (list, tuple)) else v


def write_json(path: str, obj) -> None:
    """Write obj as strict JSON (non-finite numbers become null), atomically."""
    with writing(path, path + ".tmp"):
        with open(path + ".tmp", "w") as fh:
            json.dump(_json_safe(obj), fh, indent=2, default=str, allow_nan=False)
        os.replace(path + ".tmp", path)


def read_json(path: str):
    """A JSON object from path, or None for a file that is missing, damaged or not a dict."""
    try:
        with open(path) as fh:
            obj = json.load(fh)
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def versions(device) -> dict:
    import matplotlib
    return {"python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "matplotlib": matplotlib.__version__,
            "device": str(device), "device_name": device_name(device),
            "cpu_threads": torch.get_num_threads(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}


class _NoValue(float):
    """A NaN that prints as "–" whatever the format: a value not measured (iteration 0's step
    columns) shows as missing in the progress line, not as "+nan", which reads as a failure."""

    def __format__(self, spec):
        return "–"


def shown(row: dict) -> dict:
    """The row for the progress line, with its speed in it_per_s: NaN values print as "–"."""
    ms = row.get("ms_per_iter", math.nan)
    row = {**row, "it_per_s": 1000 / ms if ms and math.isfinite(ms) else math.nan}
    return {k: _NoValue("nan") if isinstance(v, float) and math.isnan(v) else v
            for k, v in row.items()}


def coverage_text(row: dict) -> str:
    """The progress line's coverage part: modes on the mixtures, classes on the digits."""
    if "modes" in row:
        return f" | {row['modes']}/{row['n_modes']} modes {100 * row['high_quality']:.0f}% hq"
    if "fd" in row:  # mnist: the feature distance too
        return (f" | {row['classes']}/{row['n_classes']} classes, TV {row['class_tv']:.2f}, "
                f"FD {row['fd']:.1f} (floor {row['fd_floor']:.1f})")
    if "classes" in row:
        return f" | {row['classes']}/{row['n_classes']} classes, TV {row['class_tv']:.2f}"
    return ""


def progress_line(script: str, row: dict, iters: int, method: str, estimate: str = "est") -> str:
    """The line a script prints at each evaluation, the same in every script but for `method`:
    what it shows of its own columns, as a format string of row keys (e.g. "R {penalty:.4f}"),
    and the name of its estimate. A value not measured yet prints as –."""
    r = shown(row)
    return (f"[{script}] it {r['iter']:>6}/{iters} | D {r['loss_d']:+.4f} G {r['loss_g']:+.4f} "
            + method.format(**r) + f" | W1 {r['w1']:.3f} (floor {r['w1_floor']:.3f})"
            f" {estimate} {r['critic_estimate']:.3f}{coverage_text(row)}"
            f" | {r['it_per_s']:.1f} it/s"
            f" | ETA {fmt_time(row['ms_per_iter'] / 1000 * (iters - row['iter']))}")


def fmt_time(s: float) -> str:
    s = int(s) if math.isfinite(s) and s > 0 else 0
    return f"{s // 3600}h{s // 60 % 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


# --------------------------------------------------------------------------------------------
# Running a script: device, run folder, console, signals, CUDA graphs. None of it is a method;
# every script runs the same way, so it lives here once.
# --------------------------------------------------------------------------------------------
def indexed(device) -> torch.device:
    """The device with its index: 'cuda' becomes cuda:<current device>, so that every
    torch.cuda call, cache key and log line names one GPU ('cuda' and 'cuda:0' are the same
    card but not the same key; torch.cuda.set_device refuses an index-less device, and
    torch 2.3–2.4's mem_get_info too). CPU stays 'cpu'."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu") if device.type == "cpu" else device


def pick_device(name: str) -> torch.device:
    """Set up the device a run asks for: 'auto' (CUDA if there is one), 'cpu', 'cuda' or
    'cuda:N'. A CUDA device comes back indexed (see `indexed`), made the current device (streams
    and CUDA graphs are made on it) and checked by asking it for its memory, the first call that
    reaches the driver; ValueError with a one-line reason otherwise. Every script and benchmark
    sets its device up here and nowhere else."""
    try:
        if name == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
        device = torch.device(name)
        if device.type == "cpu":
            return torch.device("cpu")
        if device.type != "cuda":
            raise ValueError(f"the scripts run on cpu or cuda, not {device.type}")
        if not torch.cuda.is_available():
            raise ValueError(f"CUDA is not available here (torch {torch.__version__}"
                             f"{'' if torch.backends.cuda.is_built() else ', a CPU-only build'})")
        n = torch.cuda.device_count()
        device = indexed(device)
        if device.index >= n:
            which = "cuda:0" + (f" to cuda:{n - 1}" if n > 1 else "")
            raise ValueError(f"there is no {device}: this machine has {n} CUDA device"
                             f"{'s' if n != 1 else ''} ({which})")
        torch.cuda.set_device(device)
        torch.cuda.mem_get_info(device)  # a device that cannot be used fails here, not mid-run
    except (RuntimeError, ValueError, AssertionError) as e:
        raise ValueError((str(e) or type(e).__name__).strip().splitlines()[0]) from None
    return device


def device_name(device: torch.device) -> str:
    """What a table says the run ran on: the GPU's name, or the CPU's."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(indexed(device))
    return platform.processor() or platform.machine() or "CPU"


def graph_wanted(device: torch.device, no_cuda_graph: bool, optimizer: type) -> bool:
    """Whether the training step is captured into a CUDA graph: on CUDA unless --no-cuda-graph,
    and only where the installed torch's `optimizer` can step inside one (capturable: RMSprop
    has it from torch 2.4). Otherwise one line says why, and the run goes eagerly."""
    if device.type != "cuda" or no_cuda_graph:
        return False
    if "capturable" not in inspect.signature(optimizer).parameters:
        say(f"note: torch {torch.__version__}'s {optimizer.__name__} cannot step inside a CUDA "
            f"graph (no capturable before torch 2.4): running eagerly, as --no-cuda-graph",
            err=True)
        return False
    return True


def memory_of(device: torch.device) -> int:
    """Bytes of memory the device has in all (the machine's RAM for the CPU)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(indexed(device))[1]
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def writable_folder(path: str) -> str:
    """Make the folder and check that a file can be written in it, or raise ValueError with a
    one-line reason (before anything is computed for it)."""
    if not path:
        raise ValueError("--out is empty: name a folder (. for the current one)")
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".write-test-{os.getpid()}")
        with open(probe, "w") as fh:
            fh.write("ok")
        os.remove(probe)
    except OSError as e:
        raise ValueError(f"--out {path!r}: cannot write there "
                         f"({e.strerror or type(e).__name__})") from None
    return path


# The longest name a run writes in its folder ("config-resume<iteration>.json", with room), and
# the longest path the system takes: a run folder with no room for its files is refused at once.
RUN_FILE_ROOM = 40
PATH_MAX = os.pathconf("/", "PC_PATH_MAX") if hasattr(os, "pathconf") else 260


def open_run_dir(out: str, prefix: str, resume_dir: str | None = None):
    """Make a new run folder out/<prefix>-<time> (or take resume_dir) and lock it against a second
    process; returns (folder, lock file) or raises ValueError. Nothing is written before this."""
    run_dir = resume_dir
    if run_dir is None:
        if not out:
            raise ValueError("--out is empty: name a folder (. for the current one)")
        base = os.path.join(out, f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}")
        longest = len(os.path.abspath(base)) + len("-999/") + RUN_FILE_ROOM
        if longest >= PATH_MAX:
            raise ValueError(f"--out {out!r}: too long: a run folder there leaves no room for "
                             f"its files ({longest} of the {PATH_MAX} characters a path may have)")
        for k in range(1000):
            try:
                os.makedirs(f"{base}-{k}" if k else base)  # never reuse a run folder
                run_dir = f"{base}-{k}" if k else base
                break
            except FileExistsError:
                continue
            except OSError as e:
                raise ValueError(f"--out {out!r}: cannot make a run folder there "
                                 f"({e.strerror or type(e).__name__})") from None
    try:
        return run_dir, hold_lock(os.path.join(run_dir, "lock"),
                                  f"another process is running {run_dir} right now")
    except ValueError:
        if resume_dir is None:  # the folder made here holds nothing yet
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def hold_lock(path: str, busy: str):
    """Hold an exclusive lock on the file at path for as long as the returned file is open, or
    raise ValueError(busy) if another process holds it, or with the reason when the file cannot
    be opened (a read-only mount). (Not on Windows: no lock there.)"""
    try:
        fh = open(path, "a")
    except OSError as e:
        raise ValueError(f"cannot lock {path} ({e.strerror or type(e).__name__}): "
                         f"it must be writable") from None
    try:
        import fcntl
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:
        pass
    except OSError:
        fh.close()
        raise ValueError(busy) from None
    return fh


def say(msg: str, err: bool = False) -> None:
    """Print a line; a closed pipe (| head) or a console that cannot show λ never stops a run."""
    stream = sys.stderr if err else sys.stdout
    try:
        print(msg, file=stream, flush=True)
    except UnicodeEncodeError:
        print(msg.encode("ascii", "backslashreplace").decode(), file=stream, flush=True)
    except (BrokenPipeError, ValueError):  # the reader is gone: silence this stream from now on
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
        except (OSError, ValueError):
            pass


class _PipeSafe:
    """A console stream whose reader may leave (| head, a pager closed): from then on what is
    written goes to /dev/null, so that a sweep finishes its runs and writes its tables instead
    of dying of BrokenPipeError in a print."""

    def __init__(self, stream):
        self._stream = stream

    def _gone(self):
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())
        except (OSError, ValueError):
            pass

    def write(self, text):
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._gone()
            return len(text)

    def flush(self):
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._gone()
            try:
                self._stream.flush()  # what was held goes to /dev/null now
            except (BrokenPipeError, OSError, ValueError):
                pass

    def __getattr__(self, name):
        return getattr(self._stream, name)


def robust_console() -> None:
    """Let a console that cannot encode λ or ‖∇f‖ (cp1252, ascii) print them escaped instead of
    raising, --help included; and let a reader that leaves (| head) silence the output instead
    of stopping the program (_PipeSafe)."""
    for name in ("stdout", "stderr"):
        s = getattr(sys, name)
        if hasattr(s, "reconfigure") and (s.encoding or "").lower().replace("-", "") != "utf8":
            s.reconfigure(errors="backslashreplace")
        if not isinstance(s, _PipeSafe):
            setattr(sys, name, _PipeSafe(s))


class StopSignal:
    """The first SIGINT (Ctrl-C) or SIGTERM (schedulers, `timeout`) asks the training loop to
    stop after this iteration and save; a second Ctrl-C stops at once. Exit code: 128 + signal."""

    def __init__(self):
        self.signum = None
        self.old = {s: signal.signal(s, self.handle) for s in (signal.SIGINT, signal.SIGTERM)}

    def handle(self, signum, frame):
        self.signum = signum
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def restore(self) -> None:
        for s, handler in self.old.items():
            signal.signal(s, handler)


class Run:
    """A method script's run around its training loop, done the same way for every script: the
    run folder and its lock, config.json, the signals, and how the run ends (status, message,
    curves, summary.json, exit code). Every script's main reads

        start = restore(...) if ckpt else 0   # a checkpoint that does not fit: exit 2 first
        run = common.Run(parser, SCRIPT, args, ckpt, device, method_name(args), use_graph, argv)
        with run.training(start) as logged:   # logged: the iterations metrics.csv holds
            ...evaluate at start (unless logged), then train while not run.stopped, and set
            run.last to every evaluation's metrics row
        return run.end(estimate_label(args))

    Inside `training`, Diverged, CaptureFailed, running out of memory and a file that cannot be
    written (a full disk) end the run with their status and a one-line reason, the last good
    checkpoint and figures kept; the first SIGINT or SIGTERM sets run.stopped, so that the loop
    evaluates, saves and leaves (a second Ctrl-C stops at once). Anything else is a bug and
    propagates as a traceback.
    """

    EXIT = {"finished": 0, "diverged": 1, "out_of_memory": 1, "capture_failed": 1,
            "no_space": 1, "write_failed": 1}

    def __init__(self, parser, script: str, args, ckpt, device, method: str, cuda_graph: bool,
                 argv):
        try:
            self.dir, self.lock = open_run_dir(args.out, f"{script}-{args.data}-s{args.seed}",
                                               os.path.dirname(ckpt["path"]) if ckpt else None)
        except ValueError as e:
            parser.error(str(e))
        self.script, self.args, self.method = script, args, method
        self.start = ckpt["iteration"] if ckpt else 0
        # a resumed run's wall time is its segments' together: the summary the last segment left
        # holds theirs (a segment killed before it wrote one is not counted)
        before = (read_json(self.path("summary.json")) or {}).get("wall_time_s") if ckpt else 0
        self.before = before if isinstance(before, (int, float)) else 0.0
        self.last, self.status, self.why, self.stop, self.t0 = None, "finished", "", None, \
            time.time()
        try:
            write_json(self.path(f"config-resume{self.start}.json" if ckpt else "config.json"),
                       {"script": script, "args": vars(args), "method": method,
                        "argv": sys.argv if argv is None else argv, "cuda_graph": cuda_graph,
                        "versions": versions(device)})
        except WriteFailed as e:  # before anything ran: leave no folder that looks like a run
            self.lock.close()
            if not ckpt:
                import shutil
                shutil.rmtree(self.dir, ignore_errors=True)
            say(f"[{script}] {e}: nothing ran", err=True)
            raise SystemExit(1) from None
        say(f"[{script}] {method} · {args.data} · {args.iters} iterations on {device}"
            f"{' (CUDA graph)' if cuda_graph else ''}\n[{script}] run folder: {self.dir}")

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    @property
    def stopped(self) -> bool:
        """A SIGINT or SIGTERM came: evaluate, save and leave the loop."""
        return bool(self.stop and self.stop.signum)

    @contextlib.contextmanager
    def training(self, start: int):
        """The training loop's frame: yields the iterations metrics.csv holds (rows past `start`,
        left by a crash between a row and its checkpoint, are dropped first), and turns the
        ways a run can stop into its status."""
        self.start = start
        logged = trim_metrics(self.path("metrics.csv"), start)
        if start in logged:  # the run's last good row so far, should it end before the next
            self.last = next(r for r in read_metrics(self.path("metrics.csv"))
                             if r["iter"] == start)
            self.last["iter"] = start
        self.stop = StopSignal()
        try:
            yield logged
            self.status = "interrupted" if self.stop.signum else "finished"
        except Diverged as e:
            self.status, self.why = "diverged", f"{e} became NaN or infinite (try a smaller --lr)"
        except CaptureFailed as e:  # not safe to go on in this process: stop, say how to resume
            self.status, self.why = "capture_failed", (
                f"{e}; continue without the graph: --resume {self.path('checkpoint.pt')} "
                f"--no-cuda-graph")
        except WriteFailed as e:  # a full disk: what was written before stays good
            self.status, self.why = "no_space" if e.no_space else "write_failed", str(e)
        except (MemoryError, RuntimeError) as e:  # torch's out-of-memory errors are RuntimeErrors
            if not isinstance(e, MemoryError) and "memory" not in str(e):
                raise
            self.status, self.why = "out_of_memory", "out of memory (try a smaller --batch or " \
                "--dim): " + str(e).strip().splitlines()[0]
        finally:
            self.stop.restore()

    def end(self, estimate_label: str) -> int:
        """Draw the curves (unless the run failed), write summary.json, say how the run ended,
        release the folder; returns the exit code: 0 finished, 1 failed, 128 + the signal."""
        good = self.last["iter"] if self.last else self.start
        a, s = self.args, self.script
        if not self.why:
            try:
                plot_curves(self.path("metrics.csv"), self.path("curves.png"),
                            title=self.method, estimate_label=estimate_label)
            except WriteFailed as e:
                self.status, self.why = "no_space" if e.no_space else "write_failed", str(e)
        if self.why:
            say(f"[{s}] stopped after iteration {good}: {self.why}. The last good checkpoint and "
                f"figures (iteration {good}) are kept in {self.dir}", err=True)
        if self.status == "interrupted":
            say(f"[{s}] interrupted at iteration {good}: checkpoint and figures written; "
                f"continue with --resume {self.path('checkpoint.pt')}")
        seconds = time.time() - self.t0
        try:
            write_json(self.path("summary.json"), {
                "status": self.status, "iteration": good, "wall_time_s": self.before + seconds,
                "run_dir": self.dir, "method": self.method, "data": a.data,
                "why": self.why or None, "final": self.last})
        except WriteFailed as e:
            say(f"[{s}] {e}: the run has no summary; --resume {self.path('checkpoint.pt')} "
                f"writes it once there is space", err=True)
        say(f"[{s}] {self.status} in {fmt_time(seconds)}"
            + (f" ({fmt_time(self.before + seconds)} with the segments before the resume)"
               if self.before else "") + f" · run folder: {self.dir}")
        self.lock.close()
        return self.EXIT.get(self.status, 128 + ((self.stop and self.stop.signum) or 2))


class CaptureFailed(Exception):
    """Capturing the training step into a CUDA graph failed. The run stops: a failed capture can
    leave the capture stream current and the CUDA generator and allocator in states PyTorch
    does not promise to recover from (CUDAGraph::reset), so going on in the same process is not
    safe. The last checkpoint is good; --resume it with --no-cuda-graph."""


class CudaGraphStep:
    """Wraps a training step step(n) -> tensor so that it is captured once into a CUDA graph and
    then replayed: a toy step is launch-bound, and a replay launches it all at once.

    The first `warmup` calls run eagerly on a side stream (real iterations, which also create the
    optimiser state); then torch.cuda.graph captures it, one graph per argument n (weight
    clipping's 100- and 5-step iterations). A capture that fails raises CaptureFailed with a
    one-line reason. The step must not sync with the host and its optimisers must be capturable.
    """

    def __init__(self, step, warmup: int = 3):
        self.step, self.warmup, self.side, self.graphs = step, warmup, torch.cuda.Stream(), {}

    def __call__(self, n: int) -> torch.Tensor:
        g = self.graphs.setdefault(n, [self.warmup, None, None])  # [warm-ups left, graph, out]
        if g[0] <= 0 and g[1] is None:
            try:
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    out = self.step(n)
            except Exception as e:
                text = str(e).strip().splitlines()[0] if str(e).strip() else ""
                raise CaptureFailed(f"CUDA graph capture failed ({type(e).__name__}: {text})") \
                    from e
            g[1], g[2] = graph, out
        if g[1] is not None:
            g[1].replay()
            return g[2]
        g[0] -= 1
        self.side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.side):
            out = self.step(n)
        torch.cuda.current_stream().wait_stream(self.side)
        return out


# Arguments and checkpoints ------------------------------------------------------------------
class ArgumentParser(argparse.ArgumentParser):
    """argparse with the defaults in --help, and errors as one line with exit code 2. `check`,
    if given, sees every parsed namespace and returns what is wrong with it (flags that are fine
    one by one but not together), or None: whoever parses a script's flags (the script, a sweep,
    a benchmark) gets the same verdict. `resolve`, if given, fills the defaults that depend on
    other flags (parse_or_resume calls it, after the data's defaults)."""

    def __init__(self, check=None, resolve=None, **kw):
        super().__init__(formatter_class=argparse.ArgumentDefaultsHelpFormatter, **kw)
        self.check, self.resolve = check, resolve

    def parse_known_args(self, args=None, namespace=None):
        ns, rest = super().parse_known_args(args, namespace)
        if self.check is not None and all(hasattr(ns, a.dest) for a in self._actions
                                          if a.dest != "help"):  # given_options' partial parse
            problem = self.check(ns)
            if problem:
                self.error(problem)
        return ns, rest

    def error(self, message):  # one line and exit code 2, without the usage dump
        self.exit(2, f"{self.prog}: error: {message}\n")


def number(kind, lo=-math.inf, hi=math.inf, lo_ok=True, hi_ok=True):
    """An argparse type: a finite int or float in the given range, or a one-line error."""
    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {text!r}") from None
        inside = (v >= lo if lo_ok else v > lo) and (v <= hi if hi_ok else v < hi)
        if not (math.isfinite(v) and inside):
            span = f"{'[' if lo_ok else '('}{lo}, {hi}{']' if hi_ok else ')'}"
            raise argparse.ArgumentTypeError(f"must be a finite number in {span}, got {text}")
        return v
    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


CHECKPOINT_KEYS = {"script", "iteration", "args", "G", "D", "opt_g", "opt_d", "rng_cpu", "rng_cuda"}


def save_checkpoint(run_dir: str, state: dict, device) -> None:
    """torch.save the state with the random generators' states, atomically: a crash while
    writing leaves the previous checkpoint intact."""
    state = {**state, "rng_cpu": torch.get_rng_state(),
             "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}
    path = os.path.join(run_dir, "checkpoint.pt")
    with writing(path, path + ".tmp"):
        torch.save(state, path + ".tmp")
        os.replace(path + ".tmp", path)


def load_checkpoint(path: str, script: str, arg_names: set) -> dict:
    """Load a checkpoint of `script` (without running any pickled code), or raise ValueError
    saying why it is not one."""
    path = os.path.join(path, "checkpoint.pt") if os.path.isdir(path) else path
    if not os.path.isfile(path):
        raise ValueError(f"no checkpoint at {path!r}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds here for a file that is not a checkpoint
        raise ValueError(f"{path} is not a checkpoint ({type(e).__name__})") from None
    found = ckpt.get("script") if isinstance(ckpt, dict) else None
    if found != script:
        raise ValueError(f"{path} is not a checkpoint of {script}.py"
                         + (f" (it is from {found}.py)" if isinstance(found, str) else ""))
    if not CHECKPOINT_KEYS <= set(ckpt) or not isinstance(ckpt["args"], dict) \
            or set(ckpt["args"]) != arg_names:
        raise ValueError(f"{path} is damaged or from another version of {script}.py")
    return {**ckpt, "path": os.path.abspath(path)}


def load_optimizer(opt, state: dict, device, capturable: bool) -> None:
    """Load an optimiser's state for this run, whichever device wrote it: load_state_dict also
    restores the writer's `capturable`, which must match this run's (CUDA graph or not). A state
    tensor whose shape is not its weight's (a damaged checkpoint) is a ValueError here, not a
    traceback at the first step: torch checks only the number of weights."""
    opt.load_state_dict(state)
    params = [p for g in opt.param_groups for p in g["params"]]
    for i, p in enumerate(params):
        for name, v in opt.state.get(p, {}).items():
            if torch.is_tensor(v) and v.dim() > 0 and v.shape != p.shape:
                raise ValueError(f"optimiser state {name!r} of weight {i} has shape "
                                 f"{tuple(v.shape)}, the weight {tuple(p.shape)}")
    for group in opt.param_groups:
        group["capturable"] = capturable
    for st in opt.state.values():  # a capturable step count lives beside the weights
        if capturable or torch.is_tensor(st.get("step")):  # older RMSprop keeps a Python int
            st["step"] = torch.as_tensor(st["step"], dtype=torch.float32).to(
                device if capturable else "cpu")


def restore_rng(ckpt: dict, device) -> None:
    """Restore the random streams a checkpoint saved. A checkpoint written on the CPU holds no
    CUDA stream: resumed on a GPU, the CUDA generator gets a seed of its own from the run's seed
    and iteration, so the noise of the first iterations is not drawn again."""
    torch.set_rng_state(ckpt["rng_cpu"])
    if device.type == "cuda":
        if ckpt["rng_cuda"] is not None:
            torch.cuda.set_rng_state(ckpt["rng_cuda"], device)
        else:
            torch.cuda.manual_seed(resume_seed(ckpt["args"]["seed"], ckpt["iteration"]))


def resume_seed(seed: int, iteration: int) -> int:
    """A seed for a random stream picked up at `iteration` with no saved state: a function of
    the run's seed and the iteration, unlike the seed the run started from."""
    return (seed * 6_364_136_223_846_793_005 + iteration * 1_442_695_040_888_963_407 + 1) % 2**63


# Defaults that differ by dataset, where the command line does not set them: the digits'
# convolutions cost more per iteration than the toys' MLPs, and converge in fewer iterations
# (a 2000-iteration run takes ~5 min on 2 CPU cores).
# Defaults that follow --data (a flag given on the command line wins). MNIST: gan_mnist.py's
# batch 50 and DIM 64; its 200,000 iterations take days on a CPU, where one takes 1.7 s on one
# thread (benchmarks/speed.py --data mnist): 1000 take half an hour there.
DATA_DEFAULTS = {"digits": {"iters": 2000},
                 "mnist": {"iters": 1000, "batch": 50, "dim": 64, "eval_every": 250}}


def given_options(parser, argv) -> set:
    """The destinations of the options written on the command line (not left at a default)."""
    defaults = {a: a.default for a in parser._actions}
    for a in parser._actions:
        a.default = argparse.SUPPRESS
    try:
        return set(vars(parser.parse_args(argv)))
    finally:
        for a, d in defaults.items():
            a.default = d


def parse_or_resume(parser, argv, script: str, resumable: set):
    """Parse the command line, filling DATA_DEFAULTS for its --data and then the parser's
    resolve (defaults that depend on other flags); with --resume, load the checkpoint and
    continue with the arguments it was made with (checked as a command line is: a damaged or
    tampered checkpoint is refused), of which the command line may change only `resumable`.
    A run that reached its --iters but has no summary yet (killed while it wrote its figures)
    is completed without training. Returns (args, checkpoint or None); a bad command line is
    a one-line error and exit 2."""
    args = parser.parse_args(argv)
    if getattr(args, "data", None) == "mnist":  # a damaged or missing file: refused up front
        try:
            _mnist_arrays()
        except (OSError, ValueError) as e:
            parser.error(f"--data mnist: {e}")
    if args.resume is None:
        given = given_options(parser, argv)
        for k, v in DATA_DEFAULTS.get(args.data, {}).items():
            if k not in given:
                setattr(args, k, v)
        if parser.resolve is not None:
            parser.resolve(args)
        return args, None
    try:
        ckpt = load_checkpoint(args.resume, script, set(vars(args)))
        check_saved_args(parser, ckpt)
    except ValueError as e:
        parser.error(f"--resume: {e}")
    given = given_options(parser, argv) - {"resume"}
    changed = {k for k in given - resumable if getattr(args, k) != ckpt["args"].get(k)}
    if changed:  # repeating a value the run already has is no change
        parser.error("--resume continues a run as it was configured; it cannot change "
                     + ", ".join("--" + k.replace("_", "-") for k in sorted(changed)))
    args = argparse.Namespace(**{**ckpt["args"], "resume": args.resume,
                                 **{k: getattr(args, k) for k in given}})
    if args.iters < ckpt["iteration"] or (args.iters == ckpt["iteration"] and run_ended(ckpt)):
        parser.error(f"--resume: the run is at iteration {ckpt['iteration']} already; pass "
                     f"--iters larger than that to continue it")
    return args, ckpt


def run_ended(ckpt) -> bool:
    """Whether the run of this checkpoint has its summary: it ended (a run killed between its
    last checkpoint and its summary has none, and --resume completes it)."""
    try:
        with open(os.path.join(os.path.dirname(ckpt["path"]), "summary.json")) as fh:
            return json.load(fh).get("status") in ("finished", "diverged")
    except (OSError, ValueError, AttributeError):
        return False


def check_saved_args(parser, ckpt: dict) -> None:
    """A checkpoint's arguments pass the checks the command line passes: rebuilt into the flags
    that give them and parsed by the script's own parser (types, ranges, choices, the flags
    that go together), each value as it was saved; its iteration is a count within its
    --iters. ValueError saying what is damaged otherwise: nothing but tensors is trusted."""
    saved, argv = ckpt["args"], []
    for act in parser._actions:
        if not act.option_strings or act.dest in ("help", "resume"):
            continue
        v, flag = saved.get(act.dest), act.option_strings[0]
        if isinstance(act, argparse._StoreTrueAction):
            if not isinstance(v, bool):
                raise ValueError(f"damaged checkpoint: {flag} is {v!r}, not true or false")
            argv += [flag] if v else []
        elif v is None:
            if act.default is not None:
                raise ValueError(f"damaged checkpoint: it has no {flag}")
        else:
            argv += [flag, *(map(str, v) if isinstance(v, list) and act.nargs else [str(v)])]
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            parsed = vars(parser.parse_args(argv))
    except SystemExit:
        why = (err.getvalue().strip().splitlines() or ["refused"])[-1].split("error: ", 1)[-1]
        raise ValueError(f"damaged checkpoint: its arguments are refused ({why})") from None
    for k, v in parsed.items():
        if k != "resume" and (saved.get(k) != v or type(saved.get(k)) is not type(v)) \
                and not (isinstance(v, float) and isinstance(saved.get(k), int)):
            raise ValueError(f"damaged checkpoint: --{k.replace('_', '-')} is "
                             f"{saved.get(k)!r}")
    it = ckpt["iteration"]
    if not isinstance(it, int) or isinstance(it, bool) or not 0 <= it <= saved["iters"]:
        raise ValueError(f"damaged checkpoint: its iteration is {it!r}, not a count from 0 to "
                         f"its --iters {saved['iters']}")
