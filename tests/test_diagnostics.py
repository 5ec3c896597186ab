"""Conversion diagnostics of `snnc eval` (METHODS 8): K curve, saturation, dead neurons,
correlation, verdicts, energy, plots."""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import EXAMPLES
from snnc.cli import main
from snnc.diagnostics import COST_TABLES, checkpoints, cost_table, format_diagnostics
from snnc.driver import Options, compile_model, evaluate
from snnc.ir.errors import SnncError


@pytest.fixture(scope="module")
def data(tmp_path_factory, mnist):
    d = tmp_path_factory.mktemp("diag")
    np.savez(d / "test.npz", x=mnist["x"][:100], y=mnist["y"][:100])
    np.savez(d / "calib.npz", x=mnist["calib"][:200])
    return d


def _compile(d, name, **opts):
    out = d / name
    if not out.exists():
        compile_model(EXAMPLES / "mnist_cnn.onnx", out, calib=d / "calib.npz",
                      options=Options(**opts))
    return out


def test_k_curve_falls_and_rates_match_the_ann(data):
    res = evaluate(_compile(data, "max", norm="max"), data / "test.npz", [8, 64])
    diag = res["diagnostics"]
    assert [p["t"] for p in diag["layers"][0]["k_curve"]] == [1, 2, 4, 8, 16, 32, 64]
    for row in diag["layers"]:
        ks = [p["k"] for p in row["k_curve"]]
        assert ks[-1] < ks[0] / 5  # converging
        assert row["correlation"] > 0.95
        assert row["saturated_fraction"] < 0.01  # max norm: nothing above threshold
        assert row["ann_above_threshold_fraction"] < 1e-3  # test data may exceed calib max
        assert abs(row["firing_rate"] - row["ann_rate"]) < 0.15 * row["ann_rate"]
    # first layer, analog input, no saturation: Ding's bound K(t) < 2 Omega / t holds
    for p in diag["layers"][0]["k_curve"]:
        assert p["k"] < p["bound"]
    assert diag["ann_macs_per_sample"] == 1031744
    assert diag["synops_per_sample"] == res["snn"][-1]["synops_per_sample"]
    e = diag["energy"]
    assert e["cost_table"] == "horowitz45nm" and e["estimate"] is True
    assert e["ann_joules_per_sample"] == pytest.approx(1031744 * 4.6e-12)
    assert all(r["verdict"] == "ok" for r in diag["layers"]) or res["snn"][-1][
        "accuracy"] < res["ann_accuracy"] - 0.005


def test_saturation_is_found_and_explained(data):
    """A too-low percentile makes layers saturate; the verdict names the layer and the
    remedy."""
    res = evaluate(_compile(data, "p50", norm="percentile:50"), data / "test.npz", [16])
    rows = res["diagnostics"]["layers"]
    assert max(r["saturated_fraction"] for r in rows) > 0.05
    assert max(r["ann_above_threshold_fraction"] for r in rows) > 0.2
    flagged = [r for r in rows if "saturated" in r["verdict"]]
    assert flagged and all(r["layer"] in r["verdict"] for r in flagged)
    assert "percentile" in flagged[0]["verdict"]


def test_fit_rates_are_read_over_t1(data):
    res = evaluate(_compile(data, "fit", fit="8:8"), data / "test.npz", [16])
    diag = res["diagnostics"]
    assert diag["input_steps"] == 8
    plain = evaluate(_compile(data, "pct"), data / "test.npz", [8])["diagnostics"]
    for row, ref in zip(diag["layers"], plain["layers"]):
        assert row["correlation"] > 0.9
        # the drain only adds spikes, and the rate is per input step (over T1 = 8)
        assert ref["firing_rate"] <= row["firing_rate"] < 1.5 * ref["firing_rate"]


def test_checkpoints():
    assert checkpoints(10, [3, 10, 50]) == [1, 2, 3, 4, 8, 10]


def test_cost_tables(tmp_path):
    assert cost_table("horowitz45nm")["name"] == "horowitz45nm"
    assert set(COST_TABLES) >= {"horowitz45nm", "horowitz45nm-int8"}
    f = tmp_path / "chip.json"
    f.write_text(json.dumps({"synop_pJ": 23.6, "neuron_update_pJ": 52, "mac_pJ": 4.6,
                             "source": "my chip"}))
    assert cost_table(str(f))["synop_pJ"] == 23.6
    f.write_text(json.dumps({"synop_pJ": -1}))
    with pytest.raises(SnncError, match="not valid"):
        cost_table(str(f))
    with pytest.raises(SnncError, match="unknown cost table"):
        cost_table("nope")


def test_cli_diagnostics_json_plots_and_contract(data, capsys):
    out = _compile(data, "pct")
    d = data / "cli"
    assert main(["eval", str(out), "--data", str(data / "test.npz"), "--timesteps", "8,32",
                 "--json", str(d / "r.json"), "--diagnostics", str(d / "diag.json"),
                 "--plots", str(d / "plots")]) == 0
    text = capsys.readouterr().out
    assert "per-layer diagnostics at T=32" in text and "horowitz45nm" in text
    assert "SynOps" in text and "ANN MACs 1031744" in text
    contract = json.loads((d / "r.json").read_text())
    assert set(contract) == {"ann_accuracy", "snn"}  # the eval contract stays exact
    diag = json.loads((d / "diag.json").read_text())
    assert {"layers", "energy", "accuracy_per_step", "ann_macs_per_sample"} <= set(diag)
    assert len(diag["accuracy_per_step"]) == 32
    for name in ("accuracy.png", "k_curve.png", "rates.png"):
        assert (d / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["eval", str(out), "--data", str(data / "test.npz"), "--timesteps", "8",
                 "--cost-table", "nope"]) == 2
    assert main(["eval", str(out), "--data", str(data / "test.npz"), "--timesteps", "8",
                 "--no-diagnostics", "--plots", str(d / "p2")]) == 2
    assert main(["eval", str(out), "--data", str(data / "test.npz"), "--timesteps", "8",
                 "--no-diagnostics"]) == 0
    assert "per-layer diagnostics" not in capsys.readouterr().out


def test_plot_contents(data):
    """The accuracy plot has the ANN's line and markers at the evaluated T; the K-curve
    plot the bound 2*Omega/t per layer; the rates plot keeps rates and fractions on two
    labelled axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from snnc.diagnostics import figures

    out = _compile(data, "pct")
    d = data / "plotc"
    assert main(["eval", str(out), "--data", str(data / "test.npz"), "--timesteps", "8,16",
                 "--json", str(d / "r.json"), "--diagnostics", str(d / "diag.json")]) == 0
    diag = json.loads((d / "diag.json").read_text())
    ev = json.loads((d / "r.json").read_text())
    figs = dict(figures(plt, diag, ev))
    acc = figs["accuracy.png"].axes[0]
    labels = [ln.get_label() for ln in acc.get_lines()]
    assert "ANN (onnxruntime)" in labels
    markers = next(ln for ln in acc.get_lines() if ln.get_label() == "SNN at each evaluated T")
    assert list(markers.get_xdata()) == [8, 16]
    k = figs["k_curve.png"].axes[0]
    bounds = [ln for ln in k.get_lines() if "bound 2*Omega/t" in ln.get_label()]
    assert len(bounds) == len(diag["layers"])
    rates = figs["rates.png"].axes
    assert [a.get_ylabel() for a in rates] == ["spikes per neuron per step",
                                               "fraction of neuron-sample pairs"]
    for f in figs.values():
        plt.close(f)


@pytest.mark.parametrize("bounded", [False, True])
def test_rate_view_of_a_neuron(bounded):
    """rhat = max(I - shift, 0) / theta, clipped at 1 only where the ANN clips too."""
    from snnc.backends.sim.runtime import Network

    graph = {"format": "snnc-ir", "version": 1, "facts": ["spiking"], "meta": {},
             "inputs": [{"name": "x", "shape": [3], "dtype": "float32"}],
             "outputs": ["s"], "shapes": {"e": [3], "s": [3]},
             "ops": [{"kind": "encode", "name": "enc", "out": "e", "inputs": ["x"],
                      "params": {}, "attrs": {"coding": "analog", "seed": 0, "steps": 0}},
                     {"kind": "if", "name": "if", "out": "s", "inputs": ["e"],
                      "params": {"threshold": "th"},
                      "attrs": {"reset": "subtract", "v_init": 0.0, "bounded": bounded,
                                "shift": 0.25}}]}
    net = Network(graph, {"th": np.float32(1.0)})
    r = net.run_rates(np.array([[0.1, 0.5, 2.0]], np.float32), ["s"])["s"][0]
    np.testing.assert_allclose(r, [0.0, 0.25, 1.0 if bounded else 1.75])


def test_error_sources_split_the_rate_error(data):
    """The first layer sees the analog input itself, so all its error is quantization;
    the second sits after a max-pool; the three shares of every layer sum to 1."""
    res = evaluate(_compile(data, "pct"), data / "test.npz", [8])["diagnostics"]
    first, second = res["layers"][:2]
    assert first["error_sources"]["quantization"] > 0.999
    assert first["after"] == [] and second["after"] == ["max-pool"]
    for row in res["layers"]:
        src = row["error_sources"]
        if src is not None:
            assert sum(src.values()) == pytest.approx(1.0)
            assert all(0 <= v <= 1 for v in src.values())
    text = format_diagnostics(res)
    assert "error % q/o/i" in text and "max-pool" in text


def test_residual_joins_are_named(tmp_path, rng):
    from conftest import small_cnn

    m = small_cnn(4, residual=True, softmax=False)
    x = rng.uniform(0, 1, (64, 1, 12, 12)).astype(np.float32)
    np.savez(tmp_path / "c.npz", x=x)
    np.savez(tmp_path / "d.npz", x=x, y=np.zeros(64, np.int64))
    import onnx

    onnx.save(m, tmp_path / "m.onnx")
    compile_model(tmp_path / "m.onnx", tmp_path / "out", calib=tmp_path / "c.npz",
                  options=Options(timesteps=8))
    rows = evaluate(tmp_path / "out", tmp_path / "d.npz", [8])["diagnostics"]["layers"]
    assert any("residual add" in r["after"] for r in rows)
    assert any(r["error_sources"] and r["error_sources"]["over_firing"] > 0 for r in rows)
