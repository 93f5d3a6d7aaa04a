"""Test configuration: hypothesis profiles and helpers shared by the test files.

`CI` set (as .ci/run sets it): the "ci" profile, derandomized so a red run can be rerun exactly,
with a bounded number of examples and no deadline (a 2-core machine is slow and noisy).
Otherwise the faster "dev" profile. HYPOTHESIS_PROFILE overrides either.
"""
import functools
import os
import sys

import pytest
from hypothesis import HealthCheck, settings

# pytest-xdist runs one worker per core: one thread each, or torch's threads of the workers (and
# of the runs they spawn) fight over the cores and every test slows down several times.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

settings.register_profile(
    "ci", derandomize=True, max_examples=25, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "dev", max_examples=10, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA device (skipped without one)")
    config.addinivalue_line("markers", "full_evaluation: evaluate runs at the scripts' sizes")
    config.addinivalue_line("markers", "real_figures: render figures to real PNG files")


SMALL_EVAL, SMALL_DISTANCE = 256, 512

# Runs in the processes the tests start evaluate at these sizes too (tests/subprocess_site): a
# test that needs a subprocess at the scripts' sizes removes WGAN_TESTS_SMALL_EVALUATION from the
# environment it passes.
os.environ["WGAN_TESTS_SMALL_EVALUATION"] = f"{SMALL_EVAL} 1 {SMALL_DISTANCE}"
os.environ["PYTHONPATH"] = os.pathsep.join(
    [os.path.join(ROOT, "tests", "subprocess_site")]
    + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])


@pytest.fixture(autouse=True)
def small_evaluation(request, monkeypatch):
    """Runs made in the test process evaluate on SMALL_EVAL points, one draw, and test
    distance-likeness on SMALL_DISTANCE points: the same code as the scripts' 3 draws of 1024 and
    4096 points, at a fortieth of the cost (exact W1 on 1024 points takes ~0.2 s, and a test run
    evaluates several times). A test marked full_evaluation keeps the scripts' sizes; runs in
    subprocesses get the small sizes from tests/subprocess_site."""
    if not request.node.get_closest_marker("full_evaluation"):
        evaluate_small(monkeypatch)


def evaluate_small(monkeypatch):
    """What small_evaluation does, for a fixture of a wider scope too (a run shared by the
    tests of a module)."""
    import common
    monkeypatch.setattr(common, "N_EVAL", SMALL_EVAL)
    monkeypatch.setattr(common, "N_EVAL_DRAWS", 1)
    monkeypatch.setattr(common, "distance_stats",
                        functools.partial(common.distance_stats, n=SMALL_DISTANCE))


@pytest.fixture
def cuda_only():
    import torch
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")


PLACEHOLDER_PNG = b"\x89PNG\r\n\x1a\n(placeholder: drawn, not rendered)"


@pytest.fixture(autouse=True)
def fast_figures(request, monkeypatch):
    """Figures are drawn (every plotting call runs) but not rendered: Figure.savefig writes a
    placeholder. Rendering (constrained layout, rasterising, PNG) costs ~0.6 s a figure and a
    test run writes several; tests whose subject is a figure are marked real_figures (the
    figure tests, one run of each script in test_scripts.py, the comparison's grids)."""
    if not request.node.get_closest_marker("real_figures"):
        draw_only(monkeypatch)


def draw_only(monkeypatch):
    """What fast_figures does, for a fixture of a wider scope too."""
    from matplotlib.figure import Figure

    def savefig(self, fname, **kw):
        with open(fname, "wb") as fh:
            fh.write(PLACEHOLDER_PNG)
    monkeypatch.setattr(Figure, "savefig", savefig)

