"""The Python API (compiler/api.py): the README's example runs, and the API agrees with
the CLI on the same output directory."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import snnc
from conftest import EXAMPLES, ROOT
from snnc.cli import main


def test_readme_python_example_runs(tmp_path, monkeypatch):
    """The README's Python block, run as written (from the repository root)."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```python\n(import snnc\n.*?)```", text, re.S)
    assert block, "README has no Python API example"
    monkeypatch.chdir(ROOT)
    code = block.group(1).replace('"out"', repr(str(tmp_path / "out")))
    code = code.replace('"out_c"', repr(str(tmp_path / "out_c")))
    exec(compile(code, "README.md", "exec"), {})
    assert (tmp_path / "out" / "graph.json").is_file()


def test_load_simulate_gives_the_spikes_of_snnc_eval(tmp_path):
    out = tmp_path / "out"
    net = snnc.compile_model(EXAMPLES / "mnist_cnn.onnx", out,
                             calib=EXAMPLES / "mnist_calib.npz", timesteps=16)
    z = np.load(EXAMPLES / "mnist_test.npz")
    x, y = z["x"][:200], z["y"][:200]
    np.savez(tmp_path / "d.npz", x=x, y=y)
    assert main(["eval", str(out), "--data", str(tmp_path / "d.npz"), "--timesteps", "16",
                 "--json", str(tmp_path / "r.json"), "--no-diagnostics"]) == 0
    cli = json.loads((tmp_path / "r.json").read_text())["snn"][0]
    sim = snnc.load(out).simulate(x, 16)
    total = sum(float(v.sum()) for v in sim["spikes"].values())
    assert total / len(x) == pytest.approx(cli["spikes_per_sample"], rel=1e-12)
    assert float((sim["prediction"] == y).mean()) == pytest.approx(cli["accuracy"])
    api = net.evaluate(x, y, [16])["snn"][0]
    assert api["accuracy"] == cli["accuracy"]
    assert api["spikes_per_sample"] == pytest.approx(cli["spikes_per_sample"], rel=1e-12)


def test_api_options_are_checked_and_arrays_calibrate(tmp_path):
    with pytest.raises(snnc.SnncError, match="unknown option"):
        snnc.compile_model(EXAMPLES / "mnist_cnn.onnx", calib=EXAMPLES / "mnist_calib.npz",
                           nrom="max")
    x = np.load(EXAMPLES / "mnist_calib.npz")["x"][:64]
    import onnx

    net = snnc.compile_model(onnx.load(EXAMPLES / "mnist_cnn.onnx"), calib=x, norm="max")
    assert net.report["options"]["norm"] == "max"
    info = net.emit_c(tmp_path / "c", name="mnist")
    assert (tmp_path / "c" / "mnist.c").is_file() and info
    saved = net.save(tmp_path / "o")
    assert snnc.load(saved).graph.meta == net.graph.meta
    assert Path(saved / "manifest.json").is_file()
