"""The W1 benchmark (benchmarks/w1_benchmark.py): its sampler is the published construction, its
true potential and metrics are right on critics whose answer is known, a short training moves a
critic toward the optimum, and bad flags are one line."""
import os
import sys

import pytest
import torch
from hypothesis import given, strategies as st

from test_scripts import ROOT

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import w1_benchmark as wb  # noqa: E402


@pytest.fixture(scope="module")
def pairs():
    return {f: {**wb.load_pair(f), "true_w1": wb.true_w1(wb.load_pair(f), n=20_000)}
            for f in (4, 16)}


class Potential(torch.nn.Module):
    def __init__(self, pair, sign):
        super().__init__()
        self.pair, self.sign = pair, sign

    def forward(self, x):
        return self.sign * wb.potential(x, self.pair)


@pytest.mark.parametrize("funnels", [4, 16])
def test_p_is_q_moved_toward_its_funnel_centre(funnels, pairs):
    """Each x lies on the segment from its funnel's centre to its y, in the same funnel, so u
    falls by exactly the distance moved: the plan runs along the rays of u."""
    pair = pairs[funnels]
    x, y = wb.sample_plan(5000, pair, torch.Generator().manual_seed(0))
    c = pair["centers"]
    ky = (wb.dist(y, c) + pair["bias"]).argmin(1)
    dx, dy = x - c[ky], y - c[ky]
    cross = dx[:, 0] * dy[:, 1] - dx[:, 1] * dy[:, 0]
    assert cross.abs().max() < 1e-4 and ((dx * dy).sum(1) >= -1e-6).all()  # same ray
    assert (dx.norm(dim=1) <= dy.norm(dim=1) + 1e-5).all()  # toward the centre
    drop = wb.potential(y, pair) - wb.potential(x, pair)
    torch.testing.assert_close(drop, (y - x).norm(dim=1), atol=2e-5, rtol=0)
    assert (x.abs() <= pair["half"] + 1e-6).all()


@given(seed=st.integers(0, 2**31 - 1))
def test_the_potential_is_1_lipschitz_and_lower_on_p(seed):
    pair = wb.load_pair(16)
    g = torch.Generator().manual_seed(seed)
    a, b = wb.sample_q(512, pair, g), wb.sample_q(512, pair, g)
    q = (wb.potential(a, pair) - wb.potential(b, pair)).abs() / (a - b).norm(dim=1)
    assert q.max() <= 1 + 1e-5
    x, y = wb.sample_plan(512, pair, g)
    assert (wb.potential(x, pair) <= wb.potential(y, pair) + 1e-6).all()


def test_the_plan_cost_is_the_published_w1(pairs):
    """The 4-funnel pair's true W1 is 0.817 in their table (16 funnels: 0.466)."""
    for funnels in (4, 16):
        want = pairs[funnels]["published"]["true"]["cost"]
        assert pairs[funnels]["true_w1"] == pytest.approx(want, abs=0.012)


def test_the_metrics_on_known_critics(pairs):
    pair = pairs[4]
    best = wb.metrics(Potential(pair, -1), pair, n=8192)
    assert best["cos"] == pytest.approx(1, abs=1e-5) and best["l2"] == pytest.approx(0, abs=1e-8)
    assert best["estimate"] == pytest.approx(best["true_w1"], abs=0.05)
    worst = wb.metrics(Potential(pair, +1), pair, n=8192)
    assert worst["cos"] == pytest.approx(-1, abs=1e-5) and worst["l2"] == pytest.approx(4, 1e-4)
    flat = wb.metrics(lambda x: torch.ones(len(x)), pair, n=1024)
    assert flat["estimate"] == 0 and flat["cos"] == 0 and flat["l2"] == pytest.approx(1, 1e-5)
    assert 0 <= best["at_centre"] < 0.1


def test_a_short_training_moves_the_critic_toward_the_optimum():
    r = wb.train("wgan-div", 4, 0, 100)
    assert r["cos"] > r["cos_at_start"] + 0.3 and r["cos"] > 0.5


def test_every_constraint_is_a_script_function():
    """The constraints are trained by the scripts' own critic_step on their own critic_net:
    one update of each moves its critic and leaves it finite."""
    pair = wb.load_pair(4)
    g = torch.Generator().manual_seed(0)
    p, _ = wb.sample_plan(64, pair, g)
    q = wb.sample_q(64, pair, g)
    for name, script, flags, _ in wb.constraints():
        mod, args = wb.method(name)
        assert mod.__name__ == script
        D = wb.make_critic(name)
        before = [w.detach().clone() for w in D.parameters()]
        out = mod.critic_step(D, torch.optim.Adam(D.parameters(), lr=1e-3), p, q, args)
        assert all(torch.isfinite(torch.as_tensor(v)).all() for v in out), name
        assert any(not torch.equal(a, b) for a, b in zip(before, D.parameters())), name


@pytest.mark.real_figures
def test_a_tiny_run_writes_the_table_and_the_figure(tmp_path, capsys):
    out = str(tmp_path / "w1")
    assert wb.main(["--only", "gp-onesided", "wgan-sn", "--funnels", "4", "--seeds", "0",
                    "--iters", "5", "--jobs", "1", "--out", out, "--heartbeat", "0.005"]) == 0
    said = capsys.readouterr().out
    assert "0/2 done, " in said and "running | still running" in said, said  # every 0.3 s
    assert "2/2 done, 0 running | wgan-sn-4-s0: cos" in said
    md = open(os.path.join(out, "results.md")).read()
    assert "| gp-onesided-l10 | 1 × 5 |" in md and "wgan-lp: 0.82, 0.17, 1.08" in md
    assert "| wgan-sn | 1 × 5 |" in md and "sn-gan: 0.21" in md
    assert os.path.getsize(os.path.join(out, "pair-4.png")) > 10_000
    runs = open(os.path.join(out, "runs.csv")).read().splitlines()
    assert runs[0].startswith("config,funnels,seed") and len(runs) == 3  # one row a training


def test_the_local_pool_reports_a_failed_training_and_stops_on_ctrl_c():
    """A training that raises is reported and the others go on; Ctrl-C (a KeyboardInterrupt
    in the driver) cancels what has not started and returns the signal."""
    import signal
    jobs = [("bad", ("no-such-constraint", 4, 0, 5, 64)),
            ("good", ("gp-onesided-l10", 4, 0, 5, 64)), ("later", ("wgan-sn", 4, 0, 5, 64))]
    seen = {}

    def report(key, result, error, tries, running):
        seen[key] = (result, error)
        if key == "good":
            raise KeyboardInterrupt
    assert wb.local_pool(jobs, 1, report) == signal.SIGINT
    assert seen["bad"][0] is None and "StopIteration" in seen["bad"][1]
    assert seen["good"][0]["config"] == "gp-onesided-l10" and "later" not in seen


@pytest.mark.parametrize("argv,says", [(["--funnels", "5"], "--funnels"),
                                       (["--only", "nope"], "matches no constraint"),
                                       (["--iters", "0"], "--iters"),
                                       (["--device", "cuda:7"], "--device"),
                                       (["--out", "/proc/no-such-dir/x"], "cannot write")])
def test_bad_flags_are_one_line(argv, says, capsys):
    with pytest.raises(SystemExit) as e:
        wb.main(argv)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "\n" not in err and says in err
