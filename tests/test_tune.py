"""--tune auto (compiler/tune.py) and bias calibration that holds across T
(passes/calibrate_bias.py targets): the split, the search space, the fit, and the CLI."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLES, small_cnn
from snnc.driver import Options, convert
from snnc.ir import ops as O
from snnc.ir.errors import SnncError
from snnc.passes.calibrate_bias import _fit_current_and_charge
from snnc.tune import MIN_SPLIT, candidates, split

MODEL, CALIB, TEST = (EXAMPLES / n for n in ("mnist_cnn.onnx", "mnist_calib.npz",
                                             "mnist_test.npz"))


def snnc(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snnc", *args], capture_output=True,
                          text=True, cwd=cwd)


# ------------------------------------------------------------------ the split ------------
def test_split_is_deterministic_disjoint_and_covers_everything():
    fit, held = split(500, seed=0)
    assert np.array_equal(fit, split(500, seed=0)[0])
    assert not set(fit) & set(held)
    assert sorted([*fit, *held]) == list(range(500))
    assert len(held) == 166
    assert not np.array_equal(held, split(500, seed=1)[1])  # the seed chooses


def test_split_of_too_few_inputs_holds_nothing_out():
    fit, held = split(MIN_SPLIT - 1)
    assert list(fit) == list(held) == list(range(MIN_SPLIT - 1))


# ------------------------------------------------------------------ the search space -----
def test_candidates_keep_what_the_user_fixed():
    c, stage2 = candidates(Options(norm="max", tune="auto"))
    assert {o.norm for o in c} == {"max"} and stage2
    c, stage2 = candidates(Options(calibrate_bias=True, v_init=0.5, tune="auto"))
    assert not stage2 and all(o.calibrate_bias and o.v_init == 0.5 and not o.shift_bias
                              for o in c)
    assert all(o.tune == "off" for o in c)


def test_several_timesteps_never_try_shift_bias():
    """theta/2T is right at one T; v_init 0.5 is the same charge at every T."""
    one, _ = candidates(Options(timesteps=8, tune="auto"))
    many, _ = candidates(Options(timesteps=256, targets=(8, 32, 256), tune="auto"))
    assert any(o.shift_bias for o in one)
    assert not any(o.shift_bias for o in many) and any(o.v_init == 0.5 for o in many)


def test_mse_norms_stay_valid_at_any_t():
    from snnc.passes.normalize import parse_method
    from snnc.tune import norms_for

    for t in (1, 8, 2**31 - 1):
        for n in norms_for(Options(timesteps=t)):
            parse_method(n)


def test_shift_bias_with_several_timesteps_is_refused():
    with pytest.raises(SnncError, match="v-init 0.5"):
        Options(timesteps=32, targets=(8, 32), shift_bias=True).validate()
    with pytest.raises(SnncError, match="largest"):
        Options(timesteps=8, targets=(8, 32)).validate()


# ------------------------------------------------------------------ the fit --------------
def test_current_and_charge_fit_recovers_a_plus_b_over_t():
    steps = [8, 32, 256]
    a, b = np.array([0.1, -0.05, 0.0]), np.array([0.5, 2.0, -1.0])
    errs = np.stack([a + b / t for t in steps])
    fa, fb = _fit_current_and_charge(errs, steps)
    np.testing.assert_allclose(fa, a, atol=1e-12)
    np.testing.assert_allclose(fb, b, atol=1e-12)


def _first_layer_errors(graph, x, steps):
    """Per-channel mean rate error of the first IF population at each T."""
    from snnc.backends.sim import Simulator

    sim = Simulator()
    neuron = next(op for op in graph.ops if isinstance(op, O.IFNeuron))
    want = sim.rates(graph, x, [neuron.out])[neuron.out]
    at = sim.spike_counts_at(graph, x, steps, [neuron.name])
    w = np.minimum(want, 1.0).reshape(len(x), want.shape[1], -1).mean(axis=(0, 2))
    return {t: np.abs(w - (at[t][neuron.name] / t).reshape(len(x), want.shape[1], -1)
                      .mean(axis=(0, 2))).mean() for t in steps}


def test_calibration_over_several_t_lowers_the_error_at_each():
    """Fitted at T = 4, 16, 64: the first layer's rate error after calibration is below
    the uncalibrated one at every target T, and a single-T calibration for T=4 does worse
    than the fitted one at T=64 (it decays past its T)."""
    rng = np.random.default_rng(0)
    m = small_cnn(3, softmax=False)
    x = rng.uniform(0, 1, (96, 1, 12, 12)).astype(np.float32)
    steps = [4, 16, 64]
    plain = convert(m, Options(timesteps=64), calib_x=x)[1]
    multi, one = (convert(m, o, calib_x=x)[1] for o in (
        Options(timesteps=64, targets=tuple(steps), calibrate_bias=True),
        Options(timesteps=4, calibrate_bias=True)))
    assert sum(op.kind == "current" and op.steps == 1 for op in multi.ops) >= 1
    e_plain, e_multi, e_one = (_first_layer_errors(g, x, steps) for g in (plain, multi, one))
    for t in steps:
        assert e_multi[t] < e_plain[t], (t, e_multi, e_plain)
    assert e_multi[64] < e_one[64], (e_multi, e_one)


# ------------------------------------------------------------------ the command ----------
@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    d = tmp_path_factory.mktemp("tune")
    r = snnc(str(MODEL), "-o", str(d / "out"), "--calib", str(CALIB), "--timesteps", "8,32")
    assert r.returncode == 0, r.stderr
    return d, r


def test_timesteps_alone_tunes_and_reports_the_choice(tuned):
    d, r = tuned
    rep = json.loads((d / "out" / "report.json").read_text())
    t = rep["tune"]
    assert t["timesteps"] == [8, 32] and t["held_out_samples"] + t["fit_samples"] == 500
    assert t["shipped_fit_samples"] == 500  # the chosen recipe, refitted on every input
    names = [c["setting"] for c in t["candidates"]]
    assert t["chosen"] in names and len(names) >= 10
    best = max(c["mean_agreement"] for c in t["candidates"])
    assert next(c for c in t["candidates"] if c["setting"] == t["chosen"])[
        "mean_agreement"] == best
    assert rep["options"]["tune"] == "auto" and rep["options"]["targets"] == [8, 32]
    assert f"recipe (--tune auto, {len(names)} tried): {t['chosen']}" in r.stdout
    # eval runs the compiled T values by default and repeats the choice
    e = snnc("eval", str(d / "out"), "--data", str(TEST), "--no-diagnostics", "--no-report")
    assert e.returncode == 0, e.stderr
    assert t["chosen"] in e.stdout
    rows = [ln.split()[0] for ln in e.stdout.splitlines() if ln[:1].isdigit()]
    assert rows == ["8", "32"]


def test_tuned_compile_is_deterministic(tuned, tmp_path):
    d, _ = tuned
    r = snnc(str(MODEL), "-o", str(tmp_path / "again"), "--calib", str(CALIB),
             "--timesteps", "8,32")
    assert r.returncode == 0, r.stderr
    for f in ("graph.json", "params.npz", "report.json", "manifest.json"):
        assert (tmp_path / "again" / f).read_bytes() == (d / "out" / f).read_bytes(), f


def test_a_recipe_flag_turns_tuning_off_and_tune_auto_keeps_it_fixed(tmp_path):
    r = snnc(str(MODEL), "-o", str(tmp_path / "a"), "--calib", str(CALIB), "--timesteps",
             "8", "--norm", "max")
    assert r.returncode == 0, r.stderr
    assert "tune" not in json.loads((tmp_path / "a" / "report.json").read_text())
    r = snnc(str(MODEL), "-o", str(tmp_path / "b"), "--calib", str(CALIB), "--timesteps",
             "8", "--norm", "max", "--tune", "auto")
    assert r.returncode == 0, r.stderr
    t = json.loads((tmp_path / "b" / "report.json").read_text())["tune"]
    assert t["fixed_by_user"] == ["norm"]
    assert all(c["setting"].startswith("max") for c in t["candidates"])


@pytest.mark.parametrize("args,msg", [
    (["--tune", "auto"], "needs calibration data"),
    (["--timesteps", "8,32", "--shift-bias", "--calib", str(CALIB)], "--v-init 0.5"),
    (["--tune", "auto", "--coding", "ttfs", "--calib", str(CALIB)], "does not apply"),
])
def test_tuning_errors_are_one_line(args, msg, tmp_path):
    r = snnc(str(MODEL), "-o", str(tmp_path / "o"), *args)
    assert r.returncode == 2 and msg in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_config_file_takes_a_list_of_timesteps(tmp_path):
    (tmp_path / "snnc.toml").write_text('timesteps = [8, 16]\ntune = "off"\n')
    r = snnc(str(MODEL), "-o", "out", "--calib", str(CALIB), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    g = json.loads((tmp_path / "out" / "graph.json").read_text())
    assert g["meta"]["timesteps"] == 16 and g["meta"]["target_timesteps"] == [8, 16]


def test_sweep_tries_calibration_across_t(tmp_path):
    from snnc.driver import sweep, sweep_settings

    grid = sweep_settings(calibrate_bias="no,yes,across", shift_bias="no,yes",
                          steps=[8, 16])
    names = [o for o in grid if o.targets]
    assert len(names) == 1 and names[0].targets == (8, 16) and not names[0].shift_bias
    assert sweep_settings(calibrate_bias="across", steps=[8]) == []  # nothing to span
    with np.load(TEST) as z:
        np.savez(tmp_path / "d.npz", x=z["x"][:100], y=z["y"][:100])
    res = sweep(MODEL, CALIB, tmp_path / "d.npz", [8, 16], names)
    row = res["settings"][0]
    assert row["setting"] == "percentile:99.9, calibrate-bias across T"
    assert row["options"]["calibrate_bias"] == "across"
    assert [r["timesteps"] for r in row["snn"]] == [8, 16]  # one network, read at both


def test_html_report_lists_the_recipes(tuned):
    d, _ = tuned
    page = (d / "out" / "report.html").read_text()
    assert "Recipe selection (--tune auto)" in page and 'id="tune"' in page
