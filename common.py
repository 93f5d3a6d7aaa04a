"""What every method measures and draws: toy data, the digits, exact-W1 evaluation and figures.

Nothing here knows about a particular Lipschitz constraint, and nothing here runs a script. Each
method script (SCRIPTS, found by method_scripts: every top-level script that declares CONFIGS)
holds its own models, penalty or constraint and training loop, so that reading one script shows
one whole method; what every script does around its loop the same way (arguments, checkpoints,
run folder, signals, Run) is harness.py, which imports this module (never the other way).

Data (as igul222/improved_wgan_training, gan_toy.py, the WGAN-GP paper's toy code, defines it):
    8gaussians   2·{(±1, 0), (0, ±1), (±1/√2, ±1/√2)} + 0.02·N(0, I), then divided by 1.414
    25gaussians  (2i, 2j), i, j ∈ {-2..2}     + 0.05·N(0, I), then divided by 2.828
    swissroll    t = 1.5π(1 + 2u), (t cos t, t sin t) + 0.25·N(0, I), then divided by 7.5
                 (sklearn.make_swiss_roll(noise=0.25), columns 0 and 2)
And images: the 1797 8×8 digits scikit-learn ships (512 held out) and 5000 MNIST digits (data/).

Evaluation: exact W1 between point clouds or images (POT), its noise floor W1(real, real'), mode
statistics for the mixtures, class coverage and collapsed baselines for the images. Figures: the
critic's level sets and ‖∇f‖ beside the samples, and the training curves of a run's metrics.
"""
from __future__ import annotations

import contextlib
import errno
import io
import functools
import json
import math
import os
import re
import sys
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

    digits, mnist: drawn with replacement from the training split (1285; 4000 digits), or
    without (replace=False); split="test" draws n distinct held-out images (512; 1000). On the
    toys every draw is fresh: split and replace change nothing.
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
def mnist_arrays():
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
    pixels, labels = mnist_arrays()
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

    Uniform weights; x, y: tensors (any device) or arrays (n, d) and (m, d), or images compared
    pixel by pixel. POT's network simplex (ot.emd2) in float64; where it stops early (POT's
    cap of 1e5 iterations: a wrong number with only a warning) a RuntimeError here.
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
        saved = mnist_assets()["baselines"]
        return {k: saved[k] for k in ("w1_mean_digit", "w1_ot_means")}
    if name != "digits":
        return {}
    train, test = digits("train")[0], digits("test")[0]
    mean = train.mean(dim=0, keepdim=True).expand(DIGITS_TEST, -1, -1, -1)
    centroids = ot_means(_as_numpy(train, "train"), DIGITS_TEST)
    return {"w1_mean_digit": w1(mean, test), "w1_ot_means": w1(centroids, test)}


MNIST_ASSETS = os.path.join(DATA, "mnist_5k.assets.json")  # the baselines' numbers
MNIST_CLASSIFIER = os.path.join(DATA, "mnist_classifier.pt")  # its weights (made, not committed)
RESTORE = "git checkout data/ restores it, or benchmarks/mnist_assets.py makes it again"


@functools.lru_cache(maxsize=None)
def mnist_assets() -> dict:
    """data/mnist_5k.assets.json: the collapsed baselines' W1 and the classifier's held-out
    accuracy; ValueError in one line where it is missing, torn or lacks a number."""
    try:
        with open(MNIST_ASSETS, encoding="utf-8") as fh:
            saved = json.load(fh)
        numbers = [saved["baselines"]["w1_mean_digit"], saved["baselines"]["w1_ot_means"],
                   saved["classifier_accuracy"]]
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in numbers):
            raise ValueError("a number is not one")
    except (OSError, ValueError, KeyError, TypeError) as e:
        why = getattr(e, "strerror", None) or str(e).splitlines()[0] or type(e).__name__
        raise ValueError(f"{MNIST_ASSETS} is missing or damaged ({why}): {RESTORE}") from None
    return saved


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
MNIST_ACCURACY = 0.95  # what its weights must get right of the held-out digits (97.4 %)


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
        try:
            lock = open(MNIST_CLASSIFIER + ".lock", "a")
        except OSError as e:
            raise ValueError(f"the classifier's weights are not made yet and {DATA} is not "
                             f"writable ({e.strerror}): make it writable for the first MNIST "
                             f"run, which trains them (~20 s)") from None
        with lock:
            try:
                import fcntl
                fcntl.flock(lock, fcntl.LOCK_EX)  # blocks while another process trains it
            except ImportError:  # Windows: no lock; at worst two processes train it
                pass
            if not os.path.exists(MNIST_CLASSIFIER):
                print(f"[mnist] training the evaluation's classifier once into "
                      f"{MNIST_CLASSIFIER} (~20 s on one thread)", file=sys.stderr, flush=True)
                tmp = f"{MNIST_CLASSIFIER}.{os.getpid()}.tmp"
                with writing(MNIST_CLASSIFIER, tmp):  # a full disk: no half file left behind
                    torch.save(train_mnist_classifier().state_dict(), tmp)
                    os.replace(tmp, MNIST_CLASSIFIER)  # whole or absent, never torn
    net = MnistClassifier()
    try:
        net.load_state_dict(torch.load(MNIST_CLASSIFIER, map_location="cpu", weights_only=True))
    except Exception as e:  # noqa: BLE001 - whatever a damaged or foreign file raises
        why = (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
        raise ValueError(f"{MNIST_CLASSIFIER} is damaged or not this classifier's weights "
                         f"({why}): delete it, and the next MNIST run trains it again") from None
    x, y = images("mnist", "test")
    with torch.no_grad():
        right = (net.eval()(x).argmax(1) == y).double().mean().item()
    if right < MNIST_ACCURACY:  # the right shape, other weights (random ones score ~10 %)
        raise ValueError(f"{MNIST_CLASSIFIER} gets {100 * right:.0f} % of the held-out digits "
                         f"right, not the ≥ {100 * MNIST_ACCURACY:.0f} % of its training: delete "
                         f"it, and the next MNIST run trains it again")
    return net.to(device)


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

    Left: level sets of f on a 128×128 grid over [-extent, extent]², real samples orange,
    generated green (`fake` may be None). Right: ‖∇f‖ on a diverging scale centred at 1 (blue
    flatter than 1-Lipschitz, red steeper), ‖∇f‖ = 1 in black. Writes a PNG; returns its path.
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


def plot_curves(metrics, path: str, title: str = "",
                estimate_label: str = "critic: E f(real) − E f(fake)") -> str:
    """Training curves from a run's metrics (a list of dicts: harness.read_metrics).

    Panels: the critic's estimate E f(real) − E f(fake) against the exact W1 and its noise floor;
    the penalty (log scale), or for weight clipping the share of weights pinned at ±c; ‖∇f‖ at
    the penalty points; the cosine between the critic-weight gradients of the discrimination term
    and of λR (does the penalty fight the discrimination term?); mode statistics where the run has
    them, or class coverage on the digits; a column the run lacks is skipped. `estimate_label`
    names the critic_estimate curve (with a GAN loss a gap between logits, not a W1 estimate).
    """
    rows = list(metrics)

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

    A convolution's matrix is built exactly by applying it to every unit image of its input's
    shape (read off one pass of a zero input (1, *input_shape)). Valid for layers applied one
    after the other with 1-Lipschitz activations (ReLU, LeakyReLU ≤ 1, tanh, GroupSort) and
    flattening between them; any other layer needs its own factor.
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


def indexed(device) -> torch.device:
    """The device with its index: 'cuda' becomes cuda:<current device>, so that every
    torch.cuda call, cache key and log line names one GPU ('cuda' and 'cuda:0' are the same
    card but not the same key; torch.cuda.set_device refuses an index-less device, and
    torch 2.3–2.4's mem_get_info too). CPU stays 'cpu'."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu") if device.type == "cpu" else device
