"""The fifth adversarial round: fifteen defects, each with the test that failed before its fix
(see the issue "Reliability, fifth round"). Every refusal is one line and exit 2 before anything
is written; nothing is left half-written."""
import errno
import os
import sys

import pytest
import torch

import common
import harness
from test_reliability import one_line_error
from test_scripts import ROOT, quick, run_dirs, run_main

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import compare  # noqa: E402
import report  # noqa: E402
import sweep  # noqa: E402
import w1_benchmark  # noqa: E402


# -------------------------------------------- 1–3: floats that float32 cannot hold, exit 2
@pytest.mark.parametrize("script, argv, says", [
    ("wgan_alp", ["--lr", "1e39"], "infinite in float32"),
    ("wgan_gp", ["--lr", "1e39"], "infinite in float32"),
    ("wgan_alp", ["--xi", "1e-300"], "becomes 0 in float32"),
    ("wgan_alp", ["--radius", "1e-300"], "becomes 0 in float32"),
    ("wgan_alp", ["--eps-min", "1e-300", "--eps-max", "1e-300"], "becomes 0 in float32"),
    ("wgan_alp", ["--eps-max", "1e300"], "infinite in float32"),
    ("wgan_alp", ["--xi", "1e300"], "infinite in float32"),
    ("wgan_alp", ["--radius", "1e300"], "infinite in float32"),
    ("slogan", ["--lambda", "1e39"], "infinite in float32"),
    ("zero_centred", ["--center", "1e20"], "--center"),
])
def test_a_float_beyond_float32_is_one_line(script, argv, says, tmp_path, capsys):
    out = str(tmp_path / "runs")
    code, cap = run_main(script, quick(script) + ["--iters", "2", "--out", out] + argv, capsys)
    one_line_error(code, cap, script, says)
    assert not os.path.exists(out)


def test_a_float_that_float32_holds_still_passes():
    parse = harness.number(float, 0)
    assert parse("1e-40") == 1e-40 and parse("3e38") == 3e38 and parse("0") == 0.0


# ------------------------------------ 4, 7, 8, 11: MNIST's files, checked before anything
def refused(monkeypatch, capsys, what, value, clear):
    monkeypatch.setattr(common, what, value)
    clear()
    import wgan_gp
    with pytest.raises(SystemExit) as e:
        harness.check_data(wgan_gp.build_parser(), "mnist")
    err = "\n".join(line for line in capsys.readouterr().err.strip().splitlines()
                    if not line.startswith("[mnist] training"))  # said while it trains them
    clear()
    assert e.value.code == 2 and "\n" not in err and "--data mnist" in err
    return err


@pytest.mark.parametrize("content", [b"", b"not a pickle at all", "half", "foreign"])
def test_a_damaged_or_foreign_classifier_is_one_line(content, tmp_path, monkeypatch, capsys):
    path = tmp_path / "mnist_classifier.pt"
    if content == "half":  # the real file cut short
        whole = open(common.MNIST_CLASSIFIER, "rb").read()
        content = whole[: len(whole) // 2]
    elif content == "foreign":  # a state dict of another network
        torch.save(torch.nn.Linear(3, 2).state_dict(), str(path))
    if isinstance(content, bytes):
        path.write_bytes(content)
    err = refused(monkeypatch, capsys, "MNIST_CLASSIFIER", str(path),
                  common._mnist_classifier.cache_clear)
    assert "damaged or not this classifier's weights" in err and "delete it" in err


def test_a_classifier_with_random_weights_is_refused(tmp_path, monkeypatch, capsys):
    """The right shape, weights never trained: FD would be meaningless (0.1 against 1639)."""
    path = tmp_path / "mnist_classifier.pt"
    torch.manual_seed(0)
    torch.save(common.MnistClassifier().state_dict(), str(path))
    err = refused(monkeypatch, capsys, "MNIST_CLASSIFIER", str(path),
                  common._mnist_classifier.cache_clear)
    assert "of the held-out digits right" in err


def test_no_classifier_and_a_folder_that_cannot_be_written_is_one_line(tmp_path, monkeypatch,
                                                                       capsys):
    blocked = tmp_path / "a_file"
    blocked.write_text("")
    err = refused(monkeypatch, capsys, "MNIST_CLASSIFIER", str(blocked / "classifier.pt"),
                  common._mnist_classifier.cache_clear)
    assert "not writable" in err


def test_a_full_disk_while_the_classifier_is_written_leaves_nothing(tmp_path, monkeypatch,
                                                                    capsys):
    path = tmp_path / "mnist_classifier.pt"
    monkeypatch.setattr(common, "train_mnist_classifier", lambda: common.MnistClassifier())

    def save(obj, f, *a, **k):
        open(f, "wb").write(b"PK\x03\x04half")
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(torch, "save", save)
    err = refused(monkeypatch, capsys, "MNIST_CLASSIFIER", str(path),
                  common._mnist_classifier.cache_clear)
    assert "no space left" in err
    assert sorted(os.listdir(tmp_path)) == ["mnist_classifier.pt.lock"]  # no .tmp, no weights


@pytest.mark.parametrize("content", [None, "{\"baselines\": {\"w1_mean_digit\": 1.0", "{}"])
def test_missing_or_torn_assets_are_one_line(content, tmp_path, monkeypatch, capsys):
    path = tmp_path / "mnist_5k.assets.json"
    if content is not None:
        path.write_text(content)
    err = refused(monkeypatch, capsys, "MNIST_ASSETS", str(path), common.mnist_assets.cache_clear)
    assert "missing or damaged" in err and "git checkout" in err


def test_resuming_an_mnist_run_checks_its_data(tmp_path, monkeypatch, capsys):
    """The command line of a resume says no --data: the checkpoint's data is checked all the
    same, before config-resume is written."""
    out = str(tmp_path / "runs")
    code, cap = run_main("wgan_gp", quick("wgan_gp") + [
        "--data", "mnist", "--dim", "4", "--iters", "2", "--eval-every", "2", "--out", out],
        capsys)
    assert code == 0, cap.err
    (d,) = run_dirs(out)
    bad = tmp_path / "mnist_5k.csv.gz"
    bad.write_bytes(open(common.MNIST_FILE, "rb").read()[:553_392])
    monkeypatch.setattr(common, "MNIST_FILE", str(bad))
    common.mnist_arrays.cache_clear()
    try:
        code, cap = run_main("wgan_gp", ["--resume", d, "--iters", "4"], capsys)
    finally:
        monkeypatch.undo()
        common.mnist_arrays.cache_clear()
    one_line_error(code, cap, "wgan_gp", "--data mnist")
    assert not [f for f in os.listdir(d) if f.startswith("config-resume")]


# ------------------------------------------------ 5, 6: a value given twice runs once
def test_compare_runs_a_lambda_or_a_dataset_given_twice_once():
    once = compare.plan(compare.parse_args(["--lambdas", "1", "--data", "swissroll",
                                            "--no-fixed"]))
    twice = compare.plan(compare.parse_args(["--lambdas", "1", "1", "--data", "swissroll",
                                             "swissroll", "--no-fixed"]))
    assert [r[0] for r in twice] == [r[0] for r in once] and len(once) > 0
    near = compare.plan(compare.parse_args(["--lambdas", "1", "1.0000001", "--data",
                                            "swissroll", "--no-fixed", "--seeds", "0"]))
    names = {r[1] for r in near}
    flags = {(r[2], tuple(r[3])) for r in near}  # (script, flags): one run each
    assert len(names) == len(flags) == 2 * len({sweep.split_lambda(n)[0] for n in names})
    assert any("1.0000001" in n for n in names)


def test_the_w1_benchmark_trains_a_lambda_given_twice_once():
    a = w1_benchmark.parse_args(["--lambdas", "1", "1", "--dims", "2", "--seeds", "0"])
    b = w1_benchmark.parse_args(["--lambdas", "1", "--dims", "2", "--seeds", "0"])
    assert w1_benchmark.plan(a) == w1_benchmark.plan(b)


# ------------------------------------- 9: a checkpoint's arguments are checked as a command line
@pytest.mark.parametrize("script, arg", [("wgan_alp", "radius"), ("wgan_gn", "n_critic"),
                                         ("wgan_gn", "lr"), ("wgan_gn", "iters")])
def test_a_checkpoint_whose_argument_is_none_is_refused(script, arg, tmp_path, capsys):
    out = str(tmp_path / "runs")
    code, cap = run_main(script, quick(script) + ["--iters", "2", "--eval-every", "2",
                                                  "--out", out], capsys)
    assert code == 0, cap.err
    (d,) = run_dirs(out)
    path = os.path.join(d, "checkpoint.pt")
    ck = torch.load(path, map_location="cpu", weights_only=True)
    ck["args"][arg] = None
    torch.save(ck, path)
    code, cap = run_main(script, ["--resume", d, "--iters", "4"], capsys)
    one_line_error(code, cap, script, "damaged checkpoint")
    assert not [f for f in os.listdir(d) if f.startswith("config-resume")]


# ----------------------------------------------------- 10: report.py never skips a table
def test_a_table_marker_with_a_trailing_space_is_rewritten_and_one_with_more_is_refused():
    path = "results/fixed.csv"
    text = f"before\n<!-- table fixed {path} --> \n| a hand-edited 9.99 |\n<!-- /table -->\n"
    new = report.update(text)
    assert "9.99" not in new and new.startswith(f"before\n<!-- table fixed {path} --> \n|")
    with pytest.raises(report.ReportError, match="more than its line"):
        report.update(text.replace("--> \n", "--> and more\n"))


# ------------------------------------------------------ 12, 13: the functions' edges
def test_grad_normalized_refuses_an_empty_batch():
    import wgan_gn
    with pytest.raises(ValueError, match="non-empty"):
        wgan_gn.grad_normalized(lambda x: x.sum(1), torch.zeros(0, 2))
    with pytest.raises(ValueError, match="non-empty"):
        wgan_gn.GradNorm(torch.nn.Linear(2, 1))(torch.zeros(0, 2))


@pytest.mark.parametrize("scale", [0.0, float("inf"), float("nan"), -1.0])
def test_a_grad_scale_that_would_make_nan_is_refused(scale):
    from dragan import dragan_penalty
    from wgan_div import divergence_penalty
    from wgan_gp import gradient_penalty
    from zero_centred import zero_centred_penalty
    f, x = (lambda v: v.sum(1)), torch.randn(4, 2)
    for call in (lambda: gradient_penalty(f, x, x + 1, grad_scale=scale),
                 lambda: dragan_penalty(f, x, grad_scale=scale),
                 lambda: zero_centred_penalty(f, x, x + 1, grad_scale=scale),
                 lambda: divergence_penalty(f, x, x + 1, grad_scale=scale)):
        with pytest.raises(ValueError, match="grad_scale"):
            call()


# ----------------------------------------------------------- 14: the settling column
def test_a_diverged_run_never_settled(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    harness.append_metrics(str(run / "metrics.csv"), {"iter": 0, "w1": 1.0, "w1_floor": 1.0,
                                                      "ms_per_iter": 5.0})
    harness.write_json(str(run / "summary.json"), {"status": "finished"})
    assert sweep.settling_columns([str(run)])["settled_runs"] == 1
    harness.write_json(str(run / "summary.json"), {"status": "diverged"})
    cols = sweep.settling_columns([str(run)])
    assert cols["settled_runs"] == 0 and cols["settled_at_median"] == float("inf")


# ------------------------------------------------- 15: what a run that stopped early says
def test_a_full_disk_at_the_first_figure_says_no_checkpoint_was_written(tmp_path, capsys,
                                                                      monkeypatch):
    out = str(tmp_path / "runs")

    def full(fig, path):
        raise common.WriteFailed(path, OSError(errno.ENOSPC, "No space left on device"))
    monkeypatch.setattr(common, "_save", full)
    code, cap = run_main("wgan_div", quick("wgan_div") + ["--iters", "2", "--out", out], capsys)
    assert code == 1 and "No checkpoint was written" in cap.err
    assert "checkpoint and figures (iteration 0) are kept" not in cap.err


def test_minus_zero_is_zero_in_a_methods_name():
    import zero_centred
    args = zero_centred.parse(["--center", "-0"])[0]
    assert zero_centred.method_name(args).startswith("R1,") and "-0" not in \
        zero_centred.method_name(args)


# ------------------------- a checkpoint made before a flag existed resumes with its default
def test_a_checkpoint_from_before_a_new_flag_resumes_and_one_missing_an_old_flag_does_not(
        tmp_path, capsys):
    """--threads and --ortho-map came after the runs of earlier versions: their checkpoints lack
    them, and resume with their default None (the behaviour those runs had). A checkpoint that
    lacks a flag whose default means something (--group-size) is from another version."""
    out = str(tmp_path / "runs")
    code, cap = run_main("wgan_groupsort", quick("wgan_groupsort") + [
        "--iters", "2", "--eval-every", "2", "--out", out], capsys)
    assert code == 0, cap.err
    (d,) = run_dirs(out)
    path = os.path.join(d, "checkpoint.pt")
    ck = torch.load(path, map_location="cpu", weights_only=True)
    for flag in ("threads", "ortho_map"):
        del ck["args"][flag]
    torch.save(ck, path)
    code, cap = run_main("wgan_groupsort", ["--resume", d, "--iters", "4"], capsys)
    assert code == 0, cap.err
    ck = torch.load(path, map_location="cpu", weights_only=True)
    assert ck["iteration"] == 4 and ck["args"]["ortho_map"] is None
    del ck["args"]["group_size"]
    torch.save(ck, path)
    code, cap = run_main("wgan_groupsort", ["--resume", d, "--iters", "6"], capsys)
    one_line_error(code, cap, "wgan_groupsort", "from another version")


@pytest.mark.parametrize("script,flag,default", [("wgan_sn", "constant_sigma", False)])
def test_a_checkpoint_from_before_a_published_rule_resumes_with_the_old_behaviour(
        script, flag, default, tmp_path, capsys):
    """--constant-sigma (a switch, like --weights-only) came with the published solvers'
    variants: an earlier run's checkpoint lacks it and resumes as it ran, the switch off (a
    flag whose default is None, as --objective, is the test above)."""
    out = str(tmp_path / "runs")
    code, cap = run_main(script, quick(script) + ["--iters", "2", "--eval-every", "2",
                                                  "--out", out], capsys)
    assert code == 0, cap.err
    (d,) = run_dirs(out)
    path = os.path.join(d, "checkpoint.pt")
    ck = torch.load(path, map_location="cpu", weights_only=True)
    del ck["args"][flag]
    torch.save(ck, path)
    code, cap = run_main(script, ["--resume", d, "--iters", "4"], capsys)
    assert code == 0, cap.err
    ck = torch.load(path, map_location="cpu", weights_only=True)
    assert ck["iteration"] == 4 and ck["args"][flag] is default
