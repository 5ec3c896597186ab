"""Pipelines as objects: Options build Pass objects, --pipeline runs any sequence, and
`snnc opt` runs one on a text IR or an ONNX model's imported IR."""
from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import onnx
import pytest
from conftest import EXAMPLES, small_cnn
from snnc.cli import main
from snnc.driver import Options
from snnc.ir.errors import SnncError
from snnc.ir.text import parse_graph
from snnc.passes import ConvertToSnn, Normalize, ShiftBias
from snnc.passmanager import parse_pipeline, pipeline_spec


def run(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


def test_options_build_pass_objects():
    passes = Options(norm="channel:99", shift_bias=True, timesteps=16, reset="zero").passes()
    assert Normalize(method="channel:99") in passes
    assert ShiftBias(timesteps=16) in passes
    assert ConvertToSnn(reset="zero") in passes
    # the printed pipeline parses back to the same objects
    assert parse_pipeline(pipeline_spec(passes)) == passes


@pytest.mark.parametrize("text, message", [
    ("fold-batchnorm;normalize", "bad pipeline item"),
    ("normalise", "did you mean 'normalize'"),
    ("normalize{methd=max}", "has no option 'methd'"),
    ("convert-to-snn{v_init=x}", "bad value 'x'"),
    ("convert-to-ttfs{gated=maybe}", "bad value 'maybe'"),
    ("normalize{method}", "needs a value"),
])
def test_bad_pipelines_are_named(text, message):
    with pytest.raises(SnncError, match=message):
        parse_pipeline(text)


def test_compile_with_pipeline_equals_compile_with_flags(tmp_path):
    model, calib = str(EXAMPLES / "mnist_cnn.onnx"), str(EXAMPLES / "mnist_calib.npz")
    a, b = tmp_path / "a", tmp_path / "b"
    assert run([model, "-o", str(a), "--calib", calib, "--norm", "max",
                "--reset", "zero"])[0] == 0
    spec = json.loads((a / "report.json").read_text())["pipeline"]
    assert "normalize{method=max}" in spec and "reset=zero" in spec
    assert run([model, "-o", str(b), "--calib", calib, "--pipeline", spec])[0] == 0
    for f in ("graph.json", "params.npz", "model.snnir"):
        assert (a / f).read_bytes() == (b / f).read_bytes(), f


def test_pipeline_and_conversion_flags_conflict(tmp_path):
    code, _, err = run([str(EXAMPLES / "mnist_cnn.onnx"), "-o", str(tmp_path / "o"),
                        "--pipeline", "fold-batchnorm", "--norm", "max"])
    assert code == 2 and "--norm and --pipeline" in err
    assert not (tmp_path / "o").exists()


def test_pipeline_that_is_not_spiking_is_a_clear_error(tmp_path):
    code, _, err = run([str(EXAMPLES / "mnist_cnn.onnx"), "-o", str(tmp_path / "o"),
                        "--calib", str(EXAMPLES / "mnist_calib.npz"),
                        "--pipeline", "fold-batchnorm,normalize{method=max}"])
    assert code == 2 and "does not establish spiking" in err and "internal" not in err
    code, _, err = run([str(EXAMPLES / "mnist_cnn.onnx"), "-o", str(tmp_path / "o"),
                        "--pipeline", "convert-to-snn"])
    assert code == 2 and "run normalize before it" in err


def test_opt_on_onnx_and_on_text_agree(tmp_path):
    """snnc opt MODEL.onnx (onnxruntime calibration) and snnc opt on its imported text IR
    (IR-interpreter calibration) give the same network."""
    model = tmp_path / "m.onnx"
    onnx.save(small_cnn(), model)
    rng = np.random.default_rng(0)
    calib = tmp_path / "c.npz"
    np.savez(calib, x=rng.random((20, 1, 12, 12), dtype=np.float32))
    pipe = "fold-batchnorm,fold-affine,relu-before-maxpool,normalize{method=max},convert-to-snn"
    imported = tmp_path / "imp.snnir"
    assert run(["opt", str(model), "-o", str(imported)])[0] == 0
    code, from_onnx, err = run(["opt", str(model), "--pipeline", pipe, "--calib", str(calib)])
    assert code == 0, err
    code, from_text, err = run(["opt", str(imported), "--pipeline", pipe, "--calib",
                                str(calib)])
    assert code == 0, err
    a, b = parse_graph(from_onnx, strict=True), parse_graph(from_text, strict=True)
    assert sorted(a.params) == sorted(b.params)
    for k in a.params:
        np.testing.assert_allclose(a.params[k], b.params[k], rtol=1e-5, atol=1e-6)


def test_opt_params_in_and_out(tmp_path):
    model = tmp_path / "m.onnx"
    onnx.save(small_cnn(), model)
    text, params = tmp_path / "t.snnir", tmp_path / "p.npz"
    assert run(["opt", str(model), "--pipeline", "fold-batchnorm", "-o", str(text),
                "--params-out", str(params)])[0] == 0
    assert " = [" not in text.read_text()  # shapes only; the weights are in the npz
    code, _, err = run(["opt", str(text)])
    assert code == 2 and "has no values" in err
    code, out, err = run(["opt", str(text), "--params", str(params)])
    assert code == 0 and " = [" in out


def test_opt_lists_passes_and_reads_stdin(monkeypatch):
    code, out, _ = run(["opt", "--list-passes"])
    assert code == 0 and "normalize{method=percentile:99.9}" in out
    monkeypatch.setattr("sys.stdin", io.StringIO("snnir 1\ninput %x [2] float32\n"
                                                 "%y = relu(%x) : [2] name=\"r\" "
                                                 "origin=\"r\"\noutput %y\n"))
    code, out, err = run(["opt", "-", "--pipeline", ""])
    assert code == 0, err
    assert "%y = relu(%x) : [2]" in out
