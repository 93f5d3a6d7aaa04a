"""Python imports this at start-up in every process the tests start: conftest puts this folder
first on PYTHONPATH and says the sizes in WGAN_TESTS_SMALL_EVALUATION ("points draws distance").

A script run in a subprocess (a sweep's runs, the Ctrl-C tests, the Ray workers) cannot be reached
by the small_evaluation fixture, so it evaluated at the scripts' full sizes: 3 exact W1s on 1024
points and distance statistics on 4096, ~40 % of a short run's time. Here the project's common.py
(the one beside wgan_gp.py: a Ray worker runs a copy of the repository elsewhere), once executed,
gets the test process's sizes before any script reads them: the same code as the scripts'
evaluation, on fewer points. Nothing outside the test suite loads this file.
"""
import functools
import importlib.machinery
import os
import sys


class _SmallEvaluation:
    """A meta-path finder that lets the usual finder find common.py and runs it, then shrinks it."""

    def __init__(self, points: int, draws: int, distance: int):
        self.sizes = points, draws, distance

    def find_spec(self, name, path=None, target=None):
        if name != "common":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.origin is None or not os.path.isfile(
                os.path.join(os.path.dirname(spec.origin), "wgan_gp.py")):
            return spec  # another package's module named common: leave it alone
        points, draws, distance = self.sizes
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            module.N_EVAL, module.N_EVAL_DRAWS = points, draws
            module.distance_stats = functools.partial(module.distance_stats, n=distance)

        spec.loader.exec_module = exec_module
        return spec


_sizes = os.environ.get("WGAN_TESTS_SMALL_EVALUATION", "").split()
if len(_sizes) == 3:
    sys.meta_path.insert(0, _SmallEvaluation(*map(int, _sizes)))
