"""Bias calibration (passes/calibrate_bias.py): the simulated mean rate error of every
neuron layer is cancelled by a compensation current."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from conftest import small_cnn
from snnc.backends.sim import network
from snnc.cli import main
from snnc.driver import Options, compile_model, sweep, sweep_settings
from snnc.ir import ops as O
from snnc.ir.errors import SnncError
from snnc.passes import CalibrateBias

T = 6


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cal")
    onnx.save(small_cnn(3, residual=True, softmax=False), d / "m.onnx")
    r = np.random.default_rng(5)
    np.savez(d / "c.npz", x=r.uniform(0, 1, (64, 1, 12, 12)).astype(np.float32))
    x = r.uniform(0, 1, (48, 1, 12, 12)).astype(np.float32)
    np.savez(d / "d.npz", x=x, y=r.integers(0, 10, 48))
    return d


def _rate_errors(graph, x, steps):
    """Per neuron layer: |mean over samples and positions of (min(rhat, 1) - rate)| per
    channel, averaged over channels (what the pass minimizes), on inputs x."""
    net = network(graph)
    ifs = [op for op in net.ops if op["kind"] == "if"]
    want = net.run_rates(x, [op["out"] for op in ifs])
    counts: dict[str, np.ndarray] = {}

    def record(name, t0, chunk):
        counts[name] = counts.get(name, 0) + chunk.sum(axis=0)

    net.simulate(x, steps, record=record)
    out = {}
    for op in ifs:
        d = np.minimum(want[op["out"]], 1) - counts[op["name"]] / steps
        out[op["name"]] = float(np.abs(d.reshape(len(x), d.shape[1], -1).mean(axis=(0, 2)))
                                .mean())
    return out


@pytest.mark.parametrize("norm", ["percentile:99.9", "channel:99.9"])
def test_calibration_cancels_the_mean_rate_error(files, norm):
    plain = compile_model(files / "m.onnx", None, calib=files / "c.npz",
                          options=Options(timesteps=T, norm=norm)).graph
    cal = compile_model(files / "m.onnx", None, calib=files / "c.npz",
                        options=Options(timesteps=T, norm=norm, calibrate_bias=True)).graph
    # one compensation current in front of every neuron population, lasting for ever
    ifs = [op for op in cal.ops if isinstance(op, O.IFNeuron)]
    prod = cal.producers()
    assert all(isinstance(prod[op.x], O.Current) and prod[op.x].compensation
               and prod[op.x].steps == 0 for op in ifs)
    x = np.load(files / "c.npz")["x"]
    before, after = _rate_errors(plain, x, T), _rate_errors(cal, x, T)
    assert set(before) == set(after)
    # the layer calibrated first sees exactly the corrected current; later layers also
    # see corrected inputs, so every layer's error must shrink on the calibration data
    for k in before:
        assert after[k] < 0.5 * before[k] + 1e-3, (k, before[k], after[k])
    # the rate view (what the SNN approximates) is unchanged: compensation is not ANN
    names = [op.out for op in ifs]
    a = network(plain).run_rates(x[:8], names)
    b = network(cal).run_rates(x[:8], names)
    for n in names:
        np.testing.assert_allclose(a[n], b[n], rtol=1e-5, atol=1e-6)


def test_calibration_under_finite_input_time(files):
    g = compile_model(files / "m.onnx", None, calib=files / "c.npz",
                      options=Options(fit="3:2", calibrate_bias=True)).graph
    assert Options(fit="3:2", calibrate_bias=True).passes()[-1] == CalibrateBias(timesteps=5)
    cur = [op for op in g.ops if isinstance(op, O.Current) and op.compensation]
    assert cur and all(op.steps == 3 for op in cur)


def test_calibration_is_deterministic_and_reported(files, tmp_path):
    for d in ("a", "b"):
        assert main([str(files / "m.onnx"), "-o", str(tmp_path / d), "--calib",
                     str(files / "c.npz"), "--timesteps", str(T), "--calibrate-bias"]) == 0
    for f in ("params.npz", "graph.json", "report.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    import json

    rep = json.loads((tmp_path / "a" / "report.json").read_text())
    assert rep["bias_calibration"]["samples"] == 64
    assert set(rep["bias_calibration"]["mean_abs_rate_error_before"]) == {"relu1", "relu3", "relu4"}


def test_calibration_needs_data(files, tmp_path, capsys):
    with pytest.raises(SnncError, match="bias calibration needs calibration data"):
        compile_model(files / "m.onnx", None, options=Options(norm="clip",
                                                              calibrate_bias=True))
    assert main([str(files / "m.onnx"), "-o", str(tmp_path / "o"), "--norm", "clip",
                 "--calibrate-bias"]) == 2
    assert "calibration data" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_sweep_compiles_calibrated_settings_per_t(files):
    settings = sweep_settings("percentile:99.9", calibrate_bias="no,yes")
    assert [o.calibrate_bias for o in settings] == [False, True]
    res = sweep(files / "m.onnx", files / "c.npz", files / "d.npz", [4, 6], settings)
    cal = res["settings"][1]
    assert cal["setting"] == "percentile:99.9, calibrate-bias"
    assert [r["timesteps"] for r in cal["snn"]] == [4, 6]
    # the T=6 row is the network compiled for T=6
    g = compile_model(files / "m.onnx", None, calib=files / "c.npz",
                      options=Options(timesteps=6, calibrate_bias=True)).graph
    from snnc.backends.sim.runtime import evaluate

    d = np.load(files / "d.npz")
    ref = evaluate(network(g), d["x"], d["y"], [6])["snn"][0]
    assert cal["snn"][1]["accuracy"] == ref["accuracy"]
    assert cal["snn"][1]["spikes_per_sample"] == pytest.approx(ref["spikes_per_sample"])
    with pytest.raises(SnncError, match="calibrate-bias"):
        sweep_settings(calibrate_bias="maybe")
