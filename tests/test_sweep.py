"""`snnc sweep`: accuracy vs T for a grid of compile settings in one call."""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import EXAMPLES
from snnc.backends.sim import network, runtime
from snnc.cli import main
from snnc.driver import Options, compile_model, sweep, sweep_settings
from snnc.ir.errors import SnncError


@pytest.fixture(scope="module")
def data(tmp_path_factory, mnist):
    d = tmp_path_factory.mktemp("sweep")
    np.savez(d / "test.npz", x=mnist["x"][:60], y=mnist["y"][:60])
    np.savez(d / "calib.npz", x=mnist["calib"][:100])
    return d


def test_grid_is_every_combination():
    grid = sweep_settings("max,percentile:99", "no,yes", "none,5:4", "subtract,zero",
                          "0,0.5")
    assert len(grid) == 32
    assert {(o.norm, o.shift_bias, o.fit, o.reset, o.v_init) for o in grid} == {
        (n, s, f, r, v) for n in ("max", "percentile:99") for s in (False, True)
        for f in (None, "5:4") for r in ("subtract", "zero") for v in (0.0, 0.5)}
    for bad in ({"shift_bias": "maybe"}, {"fits": "5"}, {"norms": "median"},
                {"norms": ""}, {"v_inits": "half"}, {"v_inits": "1.5"}):
        with pytest.raises(SnncError):
            sweep_settings(**bad)


def test_sweep_equals_separate_compiles(data):
    """Each row of the sweep is what compiling that setting and evaluating it gives."""
    model = EXAMPLES / "mnist_cnn.onnx"
    settings = sweep_settings("max,percentile:99.9", "no,yes", "none,6:4")
    res = sweep(model, data / "calib.npz", data / "test.npz", [8, 16], settings)
    assert len(res["settings"]) == 8
    with np.load(data / "test.npz") as z:
        x, y = z["x"], z["y"]
    for row in res["settings"]:
        ts = [r["timesteps"] for r in row["snn"]]
        o = row["options"]
        assert ts == ([8, 6 + 4, 16] if o["fit"] else [8, 16])
    # spot-check two rows against independent compiles
    for row in (res["settings"][1], res["settings"][3]):
        o = row["options"]
        for r in row["snn"]:
            opts = Options(norm=o["norm"], shift_bias=o["shift_bias"], fit=o["fit"],
                           timesteps=r["timesteps"])
            g = compile_model(model, None, calib=data / "calib.npz", options=opts).graph
            ref = runtime.evaluate(network(g), x, y, [r["timesteps"]])["snn"][0]
            assert ref == r
    for b in res["best"]:
        accs = [r["accuracy"] for row in res["settings"] for r in row["snn"]
                if r["timesteps"] == b["timesteps"]]
        assert b["accuracy"] == max(accs)
    assert res["ann_accuracy"] > 0.9


def test_cli_sweep(data, tmp_path, capsys):
    model = str(EXAMPLES / "mnist_cnn.onnx")
    assert main(["sweep", model, "--calib", str(data / "calib.npz"), "--data",
                 str(data / "test.npz"), "--timesteps", "8", "--norm", "max",
                 "--shift-bias", "no,yes", "--v-init", "0",
                 "--json", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    assert "max, shift-bias" in out and "best at T=8" in out
    res = json.loads((tmp_path / "s.json").read_text())
    assert [r["setting"] for r in res["settings"]] == ["max", "max, shift-bias"]
    assert main(["sweep", model, "--data", str(data / "test.npz"), "--timesteps", "8"]) == 2
    assert "calibration" in capsys.readouterr().err
    # data-free normalization, but bias calibration needs the data: say so
    assert main(["sweep", model, "--data", str(data / "test.npz"), "--timesteps", "8",
                 "--norm", "clip", "--calibrate-bias", "yes"]) == 2
    assert "--calibrate-bias" in capsys.readouterr().err
    assert main(["sweep", model, "--calib", str(data / "calib.npz"), "--data",
                 str(data / "test.npz"), "--timesteps", "0"]) == 2
