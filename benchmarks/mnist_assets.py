"""What the MNIST evaluation reads, made again from the data: the classifier whose classes
measure coverage and whose 64 penultimate features the Fréchet distance compares
(data/mnist_classifier.pt, not committed: common.py trains it on first use the same way), and
the W1 of two collapsed generators to the 1000 held-out digits (data/mnist_5k.assets.json): 1000
copies of the mean training digit, and the 1000-point W1-optimal quantisation of the 4000 training
digits (common.ot_means).

The classifier: common.train_mnist_classifier (Adam 1e-3, batch 100, 10 epochs over the training
split with seed 0, one CPU thread); its accuracy on the 1000 held-out digits is written beside
the baselines (committed, in the JSON). 16 s on one thread here.

    python benchmarks/mnist_assets.py            # rewrites data/mnist_classifier.pt and the JSON
    python benchmarks/mnist_assets.py --check    # trains again, changes nothing, compares
"""
import json
import os
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import common  # noqa: E402
import harness


@torch.no_grad()
def accuracy(net) -> float:
    x, y = common.images("mnist", "test")
    return (net(x).argmax(1) == y).double().mean().item()


def baselines() -> dict:
    train, test = common.images("mnist", "train")[0], common.images("mnist", "test")[0]
    mean = train.mean(dim=0, keepdim=True).expand(len(test), -1, -1, -1)
    centroids = common.ot_means(train.flatten(1).double().numpy(), len(test))
    return {"w1_mean_digit": common.w1(mean, test), "w1_ot_means": common.w1(centroids, test)}


def parse_args(argv=None):
    p = harness.ArgumentParser(prog="mnist_assets.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true",
                   help="train again and compare with what is committed; write nothing")
    return p.parse_args(argv)


def main(argv=None) -> int:
    harness.robust_console()
    a = parse_args(argv)
    t = time.time()
    net = common.train_mnist_classifier()
    acc = accuracy(net)
    base = baselines()
    print(f"classifier: {100 * acc:.1f} % right on the 1000 held-out digits; baselines "
          f"{base}; {time.time() - t:.0f} s", flush=True)
    if a.check:
        with open(common.MNIST_ASSETS, encoding="utf-8") as fh:
            saved = json.load(fh)
        same = saved["classifier_accuracy"] == acc and saved["baselines"] == base
        print("the same as committed" if same else f"differs from the committed {saved}")
        return 0 if same else 1
    torch.save(net.state_dict(), common.MNIST_CLASSIFIER)
    harness.write_json(common.MNIST_ASSETS, {
        "data": os.path.basename(common.MNIST_FILE), "sha256": common.MNIST_SHA256,
        "classifier_accuracy": acc, "baselines": base,
        "command": "python benchmarks/mnist_assets.py", "torch": torch.__version__})
    return 0


if __name__ == "__main__":
    sys.exit(main())
