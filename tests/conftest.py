"""Test configuration: hypothesis profiles and helpers shared by the test files.

`CI` set (as .ci/run sets it): the "ci" profile, derandomized so a red run can be rerun exactly,
with a bounded number of examples and no deadline (a 2-core machine is slow and noisy).
Otherwise the faster "dev" profile. HYPOTHESIS_PROFILE overrides either.
"""
import os
import sys

import pytest
from hypothesis import HealthCheck, settings

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


@pytest.fixture
def cuda_only():
    import torch
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
