"""The code only a GPU runs, tested on a CPU.

No GPU runs this project's CI, and an untested CUDA branch is how every script came to crash at
start-up on any GPU. So these tests fake the CUDA boundary, the few low-level entry points that
reach the driver, and call the real torch functions above it and the project's own code:

- device set-up for every device form, every script and the speed benchmark;
- capture safety: each training step configuration runs with capturable optimisers while
  every host-synchronising entry point raises (what a CUDA graph capture cannot contain);
- CudaGraphStep's warm-up, capture, replay and failed capture, with torch's stream and graph API
  faked; a failed capture stops the run cleanly and the run resumes without the graph;
- checkpoints across devices, the clock behind ms/iter, and the other GPU-only defects.

What a fake cannot show (kernels, graphs replaying on a real device, speed) is checked on a GPU
by `python benchmarks/gpu_check.py`.
"""
import contextlib
import csv
import importlib
import json
import os
import sys

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import common
import harness
from test_scripts import QUICK_ALL, ROOT, SCRIPTS, quick, run_dirs, run_main

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import gpu_check  # noqa: E402
import speed  # noqa: E402
import sweep  # noqa: E402

GIB = 2**30


# ------------------------------------------------------------------------ the CUDA boundary
class FakeCuda:
    """A machine with `count` GPUs, as torch's Python layer sees it through the entry points
    that reach the driver. The fakes are as strict as the oldest supported torch: like torch
    2.3–2.4's mem_get_info they refuse a device without an index."""

    def __init__(self, monkeypatch, count=2):
        self.count, self.current, self.set_calls = count, 0, []
        m = monkeypatch
        m.setattr(torch.cuda, "is_available", lambda: True)
        m.setattr(torch.cuda, "device_count", lambda: self.count)
        m.setattr(torch.cuda, "current_device", lambda: self.current)
        m.setattr(torch._C, "_cuda_setDevice", self._set, raising=False)
        m.setattr(torch.cuda, "mem_get_info", self._mem_get_info)
        m.setattr(torch.cuda, "get_device_name", self._name)

    def _index(self, device):
        i = torch.cuda._utils._get_device_index(device)  # raises for an index-less device
        if not 0 <= i < self.count:
            raise RuntimeError("CUDA error: invalid device ordinal")
        return i

    def _set(self, i):
        self.set_calls.append(self._index(i))
        self.current = i

    def _mem_get_info(self, device=None):
        self._index(device)
        return 70 * GIB, 80 * GIB

    def _name(self, device=None):
        return f"Fake GPU {self._index(device if device is not None else self.current)}"


@pytest.fixture
def fake_cuda(monkeypatch):
    return FakeCuda(monkeypatch)


def _parse(script, argv):
    """The script's own set-up: argument parsing, device, memory check."""
    if script == "speed":
        a, device = speed.parse(argv)
        return device
    return importlib.import_module(script).parse(argv + quick(script))[2]


SETUPS = SCRIPTS + ["speed"]


@pytest.mark.parametrize("script", SETUPS)
def test_every_device_form_gets_past_set_up(script, fake_cuda):
    for form, want in (("auto", 0), ("cuda", 0), ("cuda:0", 0), ("cuda:1", 1)):
        fake_cuda.current, fake_cuda.set_calls = 0, []
        device = _parse(script, ["--device", form])
        assert device == torch.device("cuda", want), form  # indexed, for every torch.cuda call
        assert fake_cuda.set_calls == [want] and fake_cuda.current == want, form
    fake_cuda.current = 1  # another process (or the user) made cuda:1 current: 'cuda' means it
    assert _parse(script, ["--device", "cuda"]) == torch.device("cuda", 1)
    assert _parse(script, ["--device", "cpu"]) == torch.device("cpu")


@pytest.mark.parametrize("script", SETUPS)
def test_a_missing_gpu_is_one_line_and_exit_2(script, fake_cuda, capsys):
    with pytest.raises(SystemExit) as e:
        _parse(script, ["--device", "cuda:7"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "\n" not in err
    assert "there is no cuda:7" in err and "2 CUDA devices" in err, err
    assert fake_cuda.set_calls == []


def test_no_cuda_at_all_is_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in ("cuda", "cuda:0"):
        with pytest.raises(ValueError, match="CUDA is not available"):
            harness.pick_device(name)
    assert harness.pick_device("auto") == torch.device("cpu")


def test_a_gpu_the_driver_refuses_is_one_line(fake_cuda, monkeypatch):
    def broken(device=None):
        raise RuntimeError("CUDA error: CUDA-capable device(s) is/are busy or unavailable\n"
                           "CUDA kernel errors might be asynchronously reported")
    monkeypatch.setattr(torch.cuda, "mem_get_info", broken)
    with pytest.raises(ValueError) as e:
        harness.pick_device("cuda")
    assert str(e.value) == "CUDA error: CUDA-capable device(s) is/are busy or unavailable"


def test_memory_and_names_ask_an_indexed_device(fake_cuda):
    """memory_of and device_name take an index-less device too (torch 2.3's mem_get_info
    does not), and name the card they ask about."""
    assert harness.memory_of(torch.device("cuda")) == 80 * GIB
    fake_cuda.current = 1
    assert harness.device_name(torch.device("cuda")) == "Fake GPU 1"
    assert harness.device_name(torch.device("cuda:0")) == "Fake GPU 0"
    assert harness.versions(torch.device("cuda:1"))["device_name"] == "Fake GPU 1"


def test_digits_are_copied_to_a_gpu_once(fake_cuda, monkeypatch):
    """'cuda' and 'cuda:0' are one card, so one cached copy (the cache is keyed by device)."""
    keys = []
    monkeypatch.setattr(common, "_digits", lambda key, dtype: keys.append(key) or {"train": 0})
    for d in ("cuda", "cuda:0", torch.device("cuda"), torch.device("cuda", 0)):
        common.digits("train", d)
    assert set(keys) == {"cuda:0"}
    common.digits("train", "cpu")
    assert keys[-1] == "cpu"


def test_the_scripts_leave_torch_cuda_to_common():
    """Device set-up lives in harness.pick_device alone: no script calls torch.cuda itself."""
    for name in SCRIPTS:
        with open(os.path.join(ROOT, name + ".py"), encoding="utf-8") as fh:
            assert "torch.cuda." not in fh.read(), name


# --------------------------------------------------------------------------- capture safety
class HostSync(AssertionError):
    pass


SYNCING_OPS = {"_local_scalar_dense", "nonzero", "masked_select", "unique", "_unique",
               "_unique2", "unique_consecutive", "unique_dim", "repeat_interleave", "equal",
               "is_nonzero", "bincount", "item"}


class _NoSyncingOps(TorchDispatchMode):
    """Every aten op the step runs, C++-internal calls included (one_hot's range check calls
    .item() in C++, where no Python patch sees it): the ones that read a device value on the
    host, or whose output size depends on one, raise."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in SYNCING_OPS:
            raise HostSync(f"aten.{name} reads a device value on the host")
        if name.startswith("index") and any(  # x[mask]: its size is the count of True, a nonzero
                isinstance(i, torch.Tensor) and i.dtype == torch.bool
                for a in args if isinstance(a, (list, tuple)) for i in a):
            raise HostSync(f"aten.{name} with a boolean mask is a nonzero: a host read")
        return func(*args, **(kwargs or {}))


def _moves_device(args, kwargs):
    return "device" in kwargs or any(isinstance(x, (str, torch.device, int)) for x in args)


@contextlib.contextmanager
def no_host_sync(monkeypatch, capture=True):
    """Inside: no host-device transfer. capture=True (what a CUDA graph capture needs) also
    forbids every host read of a device value; capture=False (an eager CUDA step, whose plain
    optimisers keep their step count on the host) forbids only moving tensors between devices."""
    def forbid(what):
        def raiser(*a, **k):
            raise HostSync(f"{what} inside the training step")
        return raiser

    with monkeypatch.context() as m:
        real_to, real_as_tensor, real_tensor = torch.Tensor.to, torch.as_tensor, torch.tensor

        def to(self, *a, **k):
            if _moves_device(a, k):
                raise HostSync(f"Tensor.to{a} moves a tensor between devices")
            return real_to(self, *a, **k)

        def from_host(real, what):
            def make(data, *a, **k):
                if not isinstance(data, torch.Tensor):
                    raise HostSync(f"{what} copies Python data to the device")
                return real(data, *a, **k)
            return make

        m.setattr(torch.Tensor, "to", to)
        m.setattr(torch.Tensor, "cuda", forbid("Tensor.cuda"))
        m.setattr(torch, "as_tensor", from_host(real_as_tensor, "torch.as_tensor"))
        m.setattr(torch, "tensor", from_host(real_tensor, "torch.tensor"))
        m.setattr(torch, "from_numpy", forbid("torch.from_numpy"))
        if not capture:
            yield
            return
        for name in ("item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__",
                     "__index__", "nonzero"):
            m.setattr(torch.Tensor, name, forbid(f"Tensor.{name}"))
        m.setattr(torch, "nonzero", forbid("torch.nonzero"))
        with _NoSyncingOps():
            yield


@pytest.fixture
def capturable_on_cpu(monkeypatch):
    """Let capturable optimisers run on the CPU: torch allows them only on devices that can
    capture, but their capturable code path (the step count as a tensor, no .item()) is plain
    tensor code that runs anywhere. This is what a CUDA graph replays."""
    import torch.optim as optim
    devices, patched = ["cuda", "cpu"], 0
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("torch.optim") and \
                hasattr(module, "_get_capturable_supported_devices"):
            monkeypatch.setattr(module, "_get_capturable_supported_devices",
                                lambda supports_xla=True: devices)
            patched += 1
    if not patched:  # older torch checks capturable devices another way
        pytest.skip(f"torch {torch.__version__}: no _get_capturable_supported_devices to widen")
    return optim


@pytest.mark.parametrize("op,name", [
    (lambda x: torch.as_tensor(10.0, device=x.device, dtype=x.dtype), "torch.as_tensor"),
    (lambda x: F.one_hot(x.long(), 4).sum(0).max(), "_local_scalar_dense"),
    (lambda x: x.max().item(), "Tensor.item"), (lambda x: bool(x.sum() > 0), "__bool__"),
    (lambda x: x[x > 0], "nonzero"), (lambda x: float(x.sum()), "__float__"),
    (lambda x: x.sum().tolist(), "tolist"), (lambda x: x.to("cpu"), "moves a tensor"),
    (lambda x: torch.full((), 10.0) + torch.bincount(x.long()).max(), "bincount"),
])
def test_the_guard_catches_each_host_sync(op, name, monkeypatch):
    """The two host operations a reading found in the training steps (λ by torch.as_tensor,
    counts by one_hot) and the other kinds: the capture-safety tests below fail on them."""
    x = torch.tensor([0.0, 1.0, 3.0])
    op(x)  # fine outside
    with pytest.raises(HostSync, match=name):
        with no_host_sync(monkeypatch):
            op(x)


# Every configuration that changes what a training step computes.
STEP_CASES = [(s, []) for s in SCRIPTS] + [
    ("wgan_gp", ["--one-sided"]), ("wgan_gp", ["--lambda-from", "0.1"]),
    ("wgan_gp", ["--lambda-from", "0.1", "--one-sided", "--fixed-generator"]),
    *[("slogan", ["--pairs", p]) for p in ("interpolate", "real-fake", "all")],
    ("slogan", ["--two-sided"]),
    *[("dragan", ["--perturb", p]) for p in ("paper", "normal", "none", "toward-fake",
                                               "interpolate")],
    ("dragan", ["--one-sided", "--loss", "wgan"]), ("dragan", ["--lp-lambda", "1"]),
    ("dragan", ["--loss", "wgan", "--perturb", "toward-fake", "--lp-lambda", "1"]),
    *[("zero_centred", ["--perturb", p]) for p in ("fake", "interpolate")],
    ("zero_centred", ["--loss", "wgan", "--center", "1"]),
    ("zero_centred", ["--perturb", "interpolate", "--reduce", "max"]),
    ("wgan_clip", ["--warmup-schedule-on"]),  # 100 critic steps: a graph of its own
    ("wgan_ct", ["--epsilon", "0.05"]), ("wgan_ct", ["--fixed-generator"]),
    ("wgan_ct", ["--objective", "cowgan"]), ("wgan_sn", ["--constant-sigma"]),
    ("wgan_clip", ["--weights-only"]),
    *[(s, ["--fixed-generator"]) for s in ("slogan", "dragan", "wgan_clip", "wgan_sn",
                                            "wgan_div")],
    ("wgan_sn", ["--power-iterations", "3"]), ("wgan_div", ["--points", "real-fake"]),
    ("wgan_div", ["--k", "10", "--p", "2.5"]),
    *[(s, ["--data", "digits"]) for s in SCRIPTS],
    ("slogan", ["--pairs", "all", "--data", "digits"]),
    ("dragan", ["--perturb", "normal", "--data", "digits"]),
]


def _models(script, extra, capturable):
    mod = importlib.import_module(script)
    flags = [f for f in extra if f != "--warmup-schedule-on"]
    base = QUICK_ALL if "--warmup-schedule-on" in extra else quick(script)
    args, _ = harness.parse_or_resume(mod.build_parser(), base + flags + ["--dim", "8", "--batch",
                                                                         "8"], script, set())
    torch.manual_seed(0)
    G, D = mod.make_models(args)
    return mod, args, G, D, mod.make_optimizers(G, D, args, capturable=capturable)


@pytest.mark.parametrize("script,extra", [c for c in STEP_CASES if c[0] in SCRIPTS],
                         ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_training_step_is_capture_safe(script, extra, capturable_on_cpu, monkeypatch):
    """What CudaGraphStep captures: the step after its warm-up, with capturable optimisers,
    contains no host sync and no host-device copy, and still trains."""
    mod, args, G, D, (opt_g, opt_d) = _models(script, extra, capturable=True)
    its = sorted({mod.critic_steps(args, it) for it in (0, 1, 25, 26)})  # clipping: 100 and 5
    for n in its:
        mod.train_step(G, D, opt_g, opt_d, args, n)  # the warm-up: creates optimiser state
    before = [p.detach().clone() for p in (*G.parameters(), *D.parameters())]
    for n in its:
        with no_host_sync(monkeypatch):
            out = mod.train_step(G, D, opt_g, opt_d, args, n)
        assert out.shape == (len(mod.STEP_COLUMNS),) and torch.isfinite(out).all()
    after = list((*G.parameters(), *D.parameters()))
    moved = [not torch.equal(a, b) for a, b in zip(before, after)]
    assert any(moved[len(list(G.parameters())):]), "the critic did not train"
    assert any(moved[:len(list(G.parameters()))]) != args.fixed_generator


@pytest.mark.parametrize("extra", [["--lambda-from", "0.1"], []])
def test_eager_gpu_step_copies_nothing_between_devices(extra, monkeypatch):
    """On CUDA without a graph the optimisers are plain ones, whose step count lives on the
    host; the λ ramp reads it there (a 0-d CPU tensor, which kernels take by value) instead of
    copying it to the GPU every iteration."""
    mod, args, G, D, (opt_g, opt_d) = _models("wgan_gp", extra, capturable=False)
    mod.train_step(G, D, opt_g, opt_d, args, 2)
    with no_host_sync(monkeypatch, capture=False):
        out = mod.train_step(G, D, opt_g, opt_d, args, 2)
    if extra:  # λ of the last critic step, which follows 3 (of iters × n_critic) on the ramp
        want = 0.1 * 100 ** (3 / (args.iters * args.n_critic))  # 0.1 → 10
        assert out[-1].item() == pytest.approx(want, rel=1e-6)


# ---------------------------------------------------------------- CudaGraphStep, faked streams
class FakeGraphAPI:
    """torch.cuda's streams and graphs, faked: a 'capture' runs the step once (recording that
    it did), a replay counts. `fail` makes capture_end raise, as a real failed capture does."""

    def __init__(self, monkeypatch, fail=False):
        self.captures, self.replays, self.fail = 0, 0, fail
        api = self

        class Stream:
            def wait_stream(self, other):
                pass

        class Graph:
            def replay(self):
                api.replays += 1

        @contextlib.contextmanager
        def graph(g):
            api.captures += 1
            yield
            if api.fail:
                raise RuntimeError("CUDA error: operation not permitted when stream is "
                                   "capturing\nmore detail")

        m = monkeypatch
        m.setattr(torch.cuda, "Stream", Stream)
        m.setattr(torch.cuda, "current_stream", lambda *a: Stream())
        m.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
        m.setattr(torch.cuda, "CUDAGraph", Graph)
        m.setattr(torch.cuda, "graph", graph)


def test_graph_step_warms_up_captures_once_per_n_and_replays(monkeypatch):
    api, calls = FakeGraphAPI(monkeypatch), []
    run = harness.CudaGraphStep(lambda n: calls.append(n) or torch.full((), float(n)), warmup=2)
    outs = [run(5) for _ in range(5)] + [run(100) for _ in range(4)]
    # 2 eager warm-ups, 1 capture (the step traced once), then replays; per n
    assert calls == [5, 5, 5, 100, 100, 100] and api.captures == 2 and api.replays == 3 + 2
    assert all(o.item() == 5 for o in outs[:5]) and outs[-1].item() == 100


def test_a_failed_capture_raises_one_line(monkeypatch):
    FakeGraphAPI(monkeypatch, fail=True)
    run = harness.CudaGraphStep(lambda n: torch.ones(()), warmup=1)
    run(1)
    with pytest.raises(harness.CaptureFailed) as e:
        run(1)
    assert str(e.value) == ("CUDA graph capture failed (RuntimeError: CUDA error: operation not "
                            "permitted when stream is capturing)")


class _FailsAtCapture:
    """CudaGraphStep on a CPU: the warm-ups run the real step, the capture fails."""

    def __init__(self, step, warmup=3):
        self.step, self.left = step, warmup

    def __call__(self, n):
        if self.left == 0:
            raise harness.CaptureFailed("CUDA graph capture failed (RuntimeError: CUDA error: "
                                       "operation not permitted when stream is capturing)")
        self.left -= 1
        return self.step(n)


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_failed_capture_stops_the_run_cleanly_and_it_resumes_eagerly(
        script, tmp_path, capsys, monkeypatch, capturable_on_cpu):
    """Exit 1, one line that gives the command to resume with --no-cuda-graph, the summary says
    why, the last checkpoint is kept; that command then finishes the run."""
    monkeypatch.setattr(harness, "graph_wanted", lambda device, no_graph, opt: not no_graph)
    monkeypatch.setattr(harness, "CudaGraphStep", _FailsAtCapture)
    out = str(tmp_path / "runs")
    code, cap = run_main(script, quick(script) + ["--iters", "4", "--eval-every", "2", "--out",
                                                  out, "--dim", "8"], capsys)
    (d,) = run_dirs(out)
    ckpt = os.path.join(d, "checkpoint.pt")
    err = [line for line in cap.err.splitlines() if line.strip()]
    assert code == 1 and len(err) == 1 and "Traceback" not in cap.err, cap.err
    assert "CUDA graph capture failed" in err[0] and f"--resume {ckpt} --no-cuda-graph" in err[0]
    summ = json.load(open(os.path.join(d, "summary.json")))
    assert summ["status"] == "capture_failed" and "capture failed" in summ["why"]
    assert summ["iteration"] == 2  # the warm-ups trained 3 iterations; 2 was checkpointed
    assert torch.load(ckpt, map_location="cpu", weights_only=True)["iteration"] == 2
    code, cap = run_main(script, ["--resume", ckpt, "--no-cuda-graph"], capsys)
    assert code == 0, cap.err
    assert json.load(open(os.path.join(d, "summary.json")))["status"] == "finished"
    assert [int(r["iter"]) for r in csv.DictReader(open(os.path.join(d, "metrics.csv")))] == \
        [0, 2, 4]


# ------------------------------------------------------------------ checkpoints across devices
class _Eager:
    """CudaGraphStep without a GPU: the same calls, run eagerly (with capturable optimisers)."""

    def __init__(self, step, warmup=3):
        self.step = step

    def __call__(self, n):
        return self.step(n)


def _weights(d):
    ck = torch.load(os.path.join(d, "checkpoint.pt"), map_location="cpu", weights_only=True)
    return ck, [*ck["G"].values(), *ck["D"].values()]


@pytest.mark.parametrize("script", ["wgan_gp", "wgan_clip"])  # Adam and RMSprop
def test_checkpoints_cross_between_the_graph_and_the_cpu_path(script, tmp_path, capsys,
                                                               monkeypatch, capturable_on_cpu):
    """A run written by the graph path (capturable optimisers: step counts as tensors beside the
    weights, a CUDA random state) goes on eagerly on the CPU, and a CPU checkpoint goes on in
    the graph path; both end where one uninterrupted run ends."""
    base = quick(script) + ["--dim", "8", "--eval-every", "3", "--seed", "5"]
    run = lambda argv: run_main(script, argv, capsys)  # noqa: E731
    assert run(base + ["--iters", "6", "--out", str(tmp_path / "ref")])[0] == 0
    _, ref = _weights(run_dirs(str(tmp_path / "ref"))[0])

    with monkeypatch.context() as m:  # the graph path writes the first half
        m.setattr(harness, "graph_wanted", lambda device, no_graph, opt: not no_graph)
        m.setattr(harness, "CudaGraphStep", _Eager)
        assert run(base + ["--iters", "3", "--out", str(tmp_path / "g")])[0] == 0
        (g,) = run_dirs(str(tmp_path / "g"))
        ck, _ = _weights(g)
        assert all(grp["capturable"] for grp in ck["opt_d"]["param_groups"])
        assert all(torch.is_tensor(s["step"]) for s in ck["opt_d"]["state"].values())
        ck["rng_cuda"] = torch.zeros(16, dtype=torch.uint8)  # as a GPU run saves it
        torch.save(ck, os.path.join(g, "checkpoint.pt"))
        # ... and a CPU checkpoint goes on in the graph path
        assert run(base + ["--iters", "3", "--out", str(tmp_path / "c")])[0] == 0
        (c,) = run_dirs(str(tmp_path / "c"))
        assert run(["--resume", c, "--iters", "6"])[0] == 0
        ck, to_graph = _weights(c)
        assert all(grp["capturable"] for grp in ck["opt_d"]["param_groups"])
    code, cap = run(["--resume", g, "--iters", "6", "--device", "cpu"])  # eager on the CPU
    assert code == 0, cap.err
    ck, to_cpu = _weights(g)
    assert not any(grp.get("capturable") for grp in ck["opt_d"]["param_groups"])
    for got in (to_cpu, to_graph):
        for x, y in zip(ref, got):
            torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-6)


def test_a_cpu_checkpoint_on_a_gpu_does_not_replay_the_first_noise(monkeypatch):
    """No CUDA random state in a CPU checkpoint: the CUDA stream gets a seed of its own from the
    run's seed and iteration, not the run's seed again (which would redraw iteration 0's noise)."""
    seeded, restored = [], []
    monkeypatch.setattr(torch.cuda, "manual_seed", seeded.append)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, d: restored.append(d))
    ck = {"rng_cpu": torch.get_rng_state(), "rng_cuda": None, "iteration": 40,
          "args": {"seed": 3}}
    harness.restore_rng(ck, torch.device("cuda:0"))
    harness.restore_rng({**ck, "iteration": 80}, torch.device("cuda:0"))
    assert len(set(seeded)) == 2 and 3 not in seeded
    assert all(0 <= s < 2**63 for s in seeded)
    harness.restore_rng({**ck, "rng_cuda": torch.zeros(8, dtype=torch.uint8)},
                       torch.device("cuda:1"))
    assert restored == [torch.device("cuda:1")] and len(seeded) == 2
    harness.restore_rng(ck, torch.device("cpu"))  # the CPU stream only
    assert len(seeded) == 2


# ------------------------------------------------------------------------- the other defects
def test_ms_per_iter_counts_the_queued_work(monkeypatch):
    """The clock is read after the step's outputs reach the host (the sync), not before: on a
    GPU the work still queued when the host finished launching is counted."""
    clock = {"t": 100.0}
    monkeypatch.setattr(harness.time, "time", lambda: clock["t"])

    class Queued(torch.Tensor):
        def tolist(self):  # the sync: waits for the GPU's queued work (here 2 s of it)
            clock["t"] += 2.0
            return super().tolist()

    total = torch.tensor([4.0, 8.0]).as_subclass(Queued)
    stats = harness.step_stats(("a", "b"), total, 4, since=99.0)
    assert stats["a"] == 1.0 and stats["b"] == 2.0
    assert stats["ms_per_iter"] == pytest.approx(1000 * 3.0 / 4)


def test_an_optimiser_that_cannot_be_captured_falls_back_to_eager(capsys):
    """torch 2.3's RMSprop has no `capturable`: weight clipping runs eagerly, with one line."""
    class RMSpropOf23(torch.optim.Optimizer):
        def __init__(self, params, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                     centered=False, foreach=None, maximize=False, differentiable=False):
            super().__init__(params, {"lr": lr})

    cuda = torch.device("cuda:0")
    assert harness.graph_wanted(cuda, False, RMSpropOf23) is False
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "RMSpropOf23 cannot step inside a CUDA graph" in err
    assert harness.graph_wanted(cuda, False, torch.optim.RMSprop) is True
    assert harness.graph_wanted(cuda, True, torch.optim.RMSprop) is False
    assert harness.graph_wanted(torch.device("cpu"), False, torch.optim.Adam) is False
    assert capsys.readouterr().err == ""
    assert importlib.import_module("wgan_clip").OPTIMIZER is torch.optim.RMSprop


@pytest.mark.parametrize("data", ["swissroll", "digits"])
def test_speed_benchmark_times_the_scripts_own_models(data, capsys):
    assert speed.main(["--data", data, "--dims", "8", "--iters", "2", "--warmup", "1",
                       "--batch", "8", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert f"{data}, batch 8" in out and "eager ms/it" in out and "(no CUDA)" in out
    assert out.splitlines()[-1].split()[0] == "8"


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_speed_says_that_torch_compile_refuses_a_double_backward(capsys):  # (torch's own warning)
    """--compile on a gradient penalty: the refusal is the result, said in its row, exit 0."""
    assert speed.main(["--script", "wgan_gp", "--dims", "8", "--iters", "1", "--warmup", "1",
                       "--batch", "8", "--device", "cpu", "--compile"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "compiled: refused" in last and "double backward" in last, last


def test_compare_names_the_device_each_run_recorded(tmp_path):
    ended = []
    for i, (dev, name) in enumerate((("cuda:1", "NVIDIA H200"), ("cuda:1", "NVIDIA H200"),
                                     ("cpu", "x86_64"))):
        d = tmp_path / str(i)
        d.mkdir()
        (d / "config.json").write_text(json.dumps({"versions": {
            "device": dev, "device_name": name, "torch": "2.13.0", "cpu_threads": 1}}))
        ended.append({"folder": str(d)})
    assert sweep.ran_on(ended + [None]) == \
        "NVIDIA H200 (cuda:1, torch 2.13.0); x86_64 (cpu, torch 2.13.0, 1 CPU thread)"
    assert sweep.ran_on([None]) == "no run that ended"


# ------------------------------------------------------------------------------- the GPU check
def test_gpu_check_commands_are_real(capsys):
    """Every command the GPU check runs exists with those flags (the scripts' own parsers)."""
    assert gpu_check.main(["--dry-run", "--iters", "50"]) == 0
    lines = capsys.readouterr().out.splitlines()
    _, a = gpu_check.parse_args(["--iters", "50"])
    todo = gpu_check.commands(a, "OUT")
    # the tests, each script eager and graphed, + MNIST graphed, + what scripts ask for ("gpu")
    extra = sweep.configs("gpu")
    assert [(n, s) for n, s, _ in extra] == [("groupsort-cayley", "wgan_groupsort"),
                                             ("groupsort-matrix_exp", "wgan_groupsort")]
    assert len(lines) == len(todo) == 2 + 3 * len(SCRIPTS) + len(SCRIPTS) + len(extra)
    for label, argv, graph in todo:
        if argv[1].endswith(".py") and argv[1][:-3] in SCRIPTS:
            args, _ = harness.parse_or_resume(importlib.import_module(argv[1][:-3]).build_parser(),
                                              argv[2:], argv[1][:-3], set())
            assert args.device == "cuda" and args.iters == 50
            assert args.no_cuda_graph == (graph is False)
        elif "speed.py" in argv[1]:
            a_, _ = speed.parse(argv[2:-2] + ["--device", "cpu"])
            assert a_.script in SCRIPTS
        else:
            assert argv[1:3] == ["-m", "pytest"]
    assert gpu_check.SCRIPTS == tuple(SCRIPTS)


def test_gpu_check_without_a_gpu_is_one_line(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as e:
        gpu_check.main([])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "\n" not in err and "CUDA is not available" in err


def test_gpu_check_runs_every_check_and_gives_one_verdict(fake_cuda, monkeypatch, tmp_path,
                                                          capsys):
    """gpu_check's own loop, on a faked GPU whose commands are faked too: a run that finishes
    with the graph used as asked passes; a warning, a non-zero exit or a run that did not use
    the graph fails its check, and the last line says which."""
    import subprocess

    def fake_run(argv, **kw):
        said, code = "ok", 0
        if argv[1].endswith(".py") and argv[1][:-3] in SCRIPTS:
            out = argv[argv.index("--out") + 1]
            graph = "--no-cuda-graph" not in argv and argv[1] != "wgan_clip.py"  # (fault 1)
            d = os.path.join(out, f"run-{len(os.listdir(out)) if os.path.isdir(out) else 0}")
            os.makedirs(d)
            json.dump({"status": "finished"}, open(os.path.join(d, "summary.json"), "w"))
            json.dump({"cuda_graph": graph}, open(os.path.join(d, "config.json"), "w"))
            if argv[1] == "wgan_div.py":  # fault 2
                said = "UserWarning: The AccumulateGrad node's stream does not match"
        elif "speed.py" in argv[1] and "slogan" in argv:  # fault 3
            code = 1
        return subprocess.CompletedProcess(argv, code, stdout=said + "\n")

    monkeypatch.setattr(gpu_check.subprocess, "run", fake_run)
    assert gpu_check.main(["--out", str(tmp_path), "--iters", "5"]) == 1
    out = capsys.readouterr().out
    assert "gpu_check on Fake GPU 0 (cuda:0)" in out
    last = out.strip().splitlines()[-1]
    assert last.startswith(f"gpu_check: FAIL (6 of {2 + 4 * len(SCRIPTS) + 2}: ") and \
        len(sweep.configs("gpu")) == 2 and \
        "Fake GPU 0" in last
    for failed in ("wgan_clip graph", "wgan_clip mnist graph", "wgan_div graph", "wgan_div eager",
                   "wgan_div mnist graph", "speed slogan"):
        assert failed in last
    assert "cuda_graph is False (asked for True)" in out and "1 warning line(s)" in out


def test_speed_times_the_graph_path(monkeypatch, capturable_on_cpu, capsys):
    """speed.py's graph column, with CudaGraphStep run eagerly on the CPU; a failed capture is
    one line and exit 1."""
    monkeypatch.setattr(harness, "graph_wanted", lambda device, no_graph, opt: True)
    monkeypatch.setattr(harness, "CudaGraphStep", _Eager)
    argv = ["--dims", "8", "--iters", "2", "--warmup", "1", "--batch", "8", "--device", "cpu"]
    assert speed.main(argv) == 0
    row = capsys.readouterr().out.strip().splitlines()[-1].split()  # width, threads, eager,
    assert row[0] == "8" and row[4].endswith("x") and float(row[2]) > 0  # graph, speed-up
    monkeypatch.setattr(harness, "CudaGraphStep", _FailsAtCapture)
    assert speed.main(argv) == 1
    assert "(failed)" in capsys.readouterr().out
