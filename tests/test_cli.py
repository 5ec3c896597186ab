"""CLI contract: success paths and every error path (one line, non-zero, no OUT)."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from conftest import small_cnn
from onnx import TensorProto
from onnx import helper as h
from snnc.cli import main


@pytest.fixture
def model_files(tmp_path, rng):
    m = small_cnn(2, residual=True)
    path = tmp_path / "m.onnx"
    onnx.save(m, path)
    x = rng.random((60, 1, 12, 12), dtype=np.float32)
    from helpers import ort_run

    y = ort_run(m, x)[0].argmax(axis=1)
    np.savez(tmp_path / "calib.npz", x=x[:30])
    np.savez(tmp_path / "test.npz", x=x, y=y)
    return tmp_path


def _err_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("snnc: error: ")
    assert "\n" not in err and "Traceback" not in err
    return err


def test_compile_and_eval(model_files, capsys):
    d = model_files
    assert main([str(d / "m.onnx"), "-o", str(d / "out"), "--calib", str(d / "calib.npz"),
                 "--timesteps", "32"]) == 0
    for f in ("graph.json", "params.npz", "snn_runtime.py", "source.onnx", "report.json",
              "model.snnir"):
        assert (d / "out" / f).is_file(), f
    assert main(["eval", str(d / "out"), "--data", str(d / "test.npz"), "--timesteps",
                 "8,16,64", "--json", str(d / "r.json")]) == 0
    r = json.loads((d / "r.json").read_text())
    assert set(r) == {"ann_accuracy", "snn"}
    assert r["ann_accuracy"] == 1.0
    assert [row["timesteps"] for row in r["snn"]] == [8, 16, 64]
    for row in r["snn"]:
        assert set(row) == {"timesteps", "accuracy", "spikes_per_sample",
                            "synops_per_sample"}
        assert 0.0 <= row["accuracy"] <= 1.0
    assert r["snn"][0]["spikes_per_sample"] < r["snn"][2]["spikes_per_sample"]
    assert r["snn"][2]["accuracy"] >= 0.8
    assert "ANN accuracy" in capsys.readouterr().out


def test_outputs_are_byte_identical(model_files):
    d = model_files
    for out in ("a", "b"):
        assert main([str(d / "m.onnx"), "-o", str(d / out), "--calib",
                     str(d / "calib.npz")]) == 0
    for f in sorted(p.name for p in (d / "a").iterdir()):
        assert (d / "a" / f).read_bytes() == (d / "b" / f).read_bytes(), f


def test_recompile_replaces_previous_output(model_files):
    d = model_files
    args = [str(d / "m.onnx"), "-o", str(d / "out"), "--calib", str(d / "calib.npz")]
    assert main(args) == 0
    assert main(args + ["--norm", "max"]) == 0
    assert json.loads((d / "out" / "report.json").read_text())["options"]["norm"] == "max"


def test_dump_ir_and_print_ir(model_files, capsys):
    d = model_files
    assert main([str(d / "m.onnx"), "-o", str(d / "out"), "--calib", str(d / "calib.npz"),
                 "--dump-ir", str(d / "ir"), "--print-ir-after-all"]) == 0
    names = sorted(p.name for p in (d / "ir").glob("*.snnir"))
    assert names[0] == "00-import.snnir" and names[-1].endswith("convert-to-snn.snnir")
    assert "IR after convert-to-snn" in capsys.readouterr().err
    # again into the same folders (both snnc's): fine
    assert main([str(d / "m.onnx"), "-o", str(d / "out"), "--calib", str(d / "calib.npz"),
                 "--dump-ir", str(d / "ir")]) == 0
    # a compile that fails after its passes ran leaves neither OUT nor the dumps
    assert main([str(d / "m.onnx"), "-o", str(d / "out2"), "--calib", str(d / "calib.npz"),
                 "--dump-ir", str(d / "ir2"), "--pipeline", "fold-batchnorm"]) == 2
    assert not (d / "out2").exists() and not (d / "ir2").exists()
    # dumps inside OUT would be replaced with it: refused before any work
    assert main([str(d / "m.onnx"), "-o", str(d / "out"), "--calib", str(d / "calib.npz"),
                 "--dump-ir", str(d / "out" / "ir")]) == 2
    assert "overlap" in capsys.readouterr().err


def _unsupported_model(path):
    nodes = [h.make_node("LRN", ["x"], ["l"], size=3, name="my_lrn"),
             h.make_node("Relu", ["l"], ["y"], name="r")]
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", TensorProto.FLOAT,
                                                           ["N", 1, 4, 4])],
                     [h.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1, 4, 4])])
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 13)]), path)


@pytest.mark.parametrize("case", ["missing-model", "not-onnx", "unsupported-op",
                                  "missing-calib", "calib-no-x", "calib-wrong-shape",
                                  "calib-not-npz", "no-calib", "bad-norm", "out-is-file"])
def test_compile_errors(case, model_files, capsys):
    d = model_files
    model, calib = d / "m.onnx", d / "calib.npz"
    out = d / "out"
    extra: list[str] = []
    if case == "missing-model":
        model = d / "nope.onnx"
    elif case == "not-onnx":
        model = d / "junk.onnx"
        model.write_bytes(b"\x00this is not protobuf\xff" * 10)
    elif case == "unsupported-op":
        model = d / "lrn.onnx"
        _unsupported_model(model)
        calib = d / "c4.npz"
        np.savez(calib, x=np.zeros((2, 1, 4, 4), np.float32))
    elif case == "missing-calib":
        calib = d / "nope.npz"
    elif case == "calib-no-x":
        calib = d / "bad.npz"
        np.savez(calib, images=np.zeros((2, 1, 12, 12), np.float32))
    elif case == "calib-wrong-shape":
        calib = d / "bad.npz"
        np.savez(calib, x=np.zeros((2, 1, 28, 28), np.float32))
    elif case == "calib-not-npz":
        calib = d / "bad.npz"
        calib.write_text("hello")
    elif case == "bad-norm":
        extra = ["--norm", "median"]
    elif case == "out-is-file":
        out = d / "file"
        out.write_text("x")
    args = [str(model), "-o", str(out)] + ([] if case == "no-calib" else
                                           ["--calib", str(calib)]) + extra
    assert main(args) == 2
    err = _err_line(capsys)
    if case == "unsupported-op":
        assert "my_lrn" in err and "LRN" in err
    if case == "no-calib":
        assert "--calib" in err
    if case != "out-is-file":
        assert not out.exists()
    assert not any(p.name.startswith(".out") for p in d.iterdir())


@pytest.mark.parametrize("case", ["no-out", "no-labels", "bad-labels", "bad-timesteps",
                                  "wrong-shape", "label-too-big", "label-negative", "npy",
                                  "not-zip", "data-is-dir", "plots-is-file",
                                  "json-unwritable"])
def test_eval_errors(case, model_files, capsys):
    d = model_files
    assert main([str(d / "m.onnx"), "-o", str(d / "out"), "--calib",
                 str(d / "calib.npz")]) == 0
    out, data, steps = d / "out", d / "test.npz", "8,16"
    if case == "no-out":
        out = d / "missing"
    elif case == "no-labels":
        data = d / "calib.npz"
    elif case == "bad-labels":
        data = d / "bad.npz"
        np.savez(data, x=np.zeros((3, 1, 12, 12), np.float32), y=np.zeros(4))
    elif case == "wrong-shape":
        data = d / "bad.npz"
        np.savez(data, x=np.zeros((3, 12, 12), np.float32), y=np.zeros(3))
    elif case == "bad-timesteps":
        steps = "8,x"
    elif case in ("label-too-big", "label-negative"):  # the model has 10 classes
        data = d / "bad.npz"
        np.savez(data, x=np.zeros((3, 1, 12, 12), np.float32),
                 y=np.array([0, 10 if case == "label-too-big" else -1, 2]))
    elif case == "npy":
        data = d / "bad.npy"
        np.save(data, np.zeros((3, 1, 12, 12), np.float32))
    elif case == "not-zip":
        data = d / "bad.npz"
        data.write_text("hello")
    elif case == "data-is-dir":
        data = d
    extra = ["--json", str(d / "r.json")]
    if case == "plots-is-file":
        (d / "afile").write_text("x")
        extra += ["--plots", str(d / "afile")]
    elif case == "json-unwritable":
        (d / "afile").write_text("x")
        extra = ["--json", str(d / "afile" / "r.json")]
    capsys.readouterr()
    assert main(["eval", str(out), "--data", str(data), "--timesteps", steps, *extra]) == 2
    err = _err_line(capsys)
    expect = {"label-too-big": "must be in [0, 10)", "label-negative": "labels range over",
              "npy": "single .npy array", "not-zip": "not an .npz archive",
              # a folder is a data set of shards: this one holds calib.npz (no labels)
              "data-is-dir": "calib.npz' has no labels", "plots-is-file": "--plots",
              "json-unwritable": "not a writable directory"}
    assert expect.get(case, "") in err
    assert not (d / "r.json").exists()


def test_check_unsupported_exit_code(tmp_path, capsys):
    _unsupported_model(tmp_path / "lrn.onnx")
    assert main(["check", str(tmp_path / "lrn.onnx")]) == 1
    out = capsys.readouterr().out
    assert "my_lrn" in out and "unsupported" in out


def test_check_flags_structural_problems(tmp_path, capsys):
    """A Softmax inside the network imports fine but cannot be converted."""
    nodes = [h.make_node("Softmax", ["x"], ["s"], axis=-1, name="inner_softmax"),
             h.make_node("Relu", ["s"], ["y"], name="r")]
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 5])],
                     [h.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])])
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 13)]), tmp_path / "s.onnx")
    assert main(["check", str(tmp_path / "s.onnx")]) == 1
    out = capsys.readouterr().out
    assert "inner_softmax" in out and "only supported as the final op" in out


def test_python_dash_m(model_files):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "snnc", "--version"], capture_output=True,
                       text=True)
    assert r.returncode == 0 and r.stdout.startswith("snnc ")


def test_mistyped_command_is_named(capsys):
    """`snnc evl` used to say '-o/--output is required' (it read 'evl' as a model)."""
    assert main(["evl", "out"]) == 2
    err = _err_line(capsys)
    assert "unknown command 'evl'" in err and "did you mean 'eval'" in err
    assert main(["help"]) == 2
    assert "unknown command 'help'" in _err_line(capsys)


def test_c_name_without_the_c_backend_is_an_error(tmp_path, capsys):
    from conftest import EXAMPLES

    assert main([str(EXAMPLES / "mnist_cnn.onnx"), "-o", str(tmp_path / "o"), "--calib",
                 str(EXAMPLES / "mnist_calib.npz"), "--c-name", "net"]) == 2
    assert "--backend c" in _err_line(capsys)
    assert not (tmp_path / "o").exists()


def test_plots_without_matplotlib_fail_before_simulating(tmp_path, capsys, monkeypatch):
    import importlib.util

    from conftest import EXAMPLES

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else real(name, *a))
    import snnc.driver

    def never(*a, **k):
        raise AssertionError("simulated although --plots cannot be drawn")

    snnc.driver.compile_model(EXAMPLES / "mnist_cnn.onnx", tmp_path / "out",
                              calib=EXAMPLES / "mnist_calib.npz")
    monkeypatch.setattr(snnc.driver, "evaluate", never)
    assert main(["eval", str(tmp_path / "out"), "--data", str(EXAMPLES / "mnist_test.npz"),
                 "--plots", str(tmp_path / "p")]) == 2
    assert "--plots needs matplotlib" in _err_line(capsys)


def test_manifest_and_depfile_drive_make(tmp_path):
    """OUT/manifest.json hashes every input and output; --depfile makes OUT depend on
    the model and the calibration data, so Make reruns snnc when the model changes and
    not when nothing did."""
    import hashlib
    import shutil
    import subprocess
    import sys

    from conftest import EXAMPLES

    for f in ("mnist_cnn.onnx", "mnist_calib.npz"):
        shutil.copy(EXAMPLES / f, tmp_path / f)
    snnc = f"{sys.executable} -m snnc"
    (tmp_path / "Makefile").write_text(
        "out/manifest.json: mnist_cnn.onnx\n"
        f"\t{snnc} mnist_cnn.onnx -o out --calib mnist_calib.npz --depfile out.d\n"
        "-include out.d\n")
    assert main([str(tmp_path / "mnist_cnn.onnx"), "-o", str(tmp_path / "o"), "--calib",
                  str(tmp_path / "mnist_calib.npz"), "--depfile", str(tmp_path / "o.d")]) == 0
    m = json.loads((tmp_path / "o" / "manifest.json").read_text())
    for name, digest in m["outputs"].items():
        assert hashlib.sha256((tmp_path / "o" / name).read_bytes()).hexdigest() == digest
    assert [i["file"] for i in m["inputs"]] == ["mnist_cnn.onnx", "mnist_calib.npz"]
    dep = (tmp_path / "o.d").read_text()
    assert dep.split(":")[0].strip() == str(tmp_path / "o" / "manifest.json")
    assert str(tmp_path / "mnist_calib.npz") in dep
    if shutil.which("make") is None:
        pytest.skip("no make")

    def make() -> str:
        return subprocess.run(["make", "-C", str(tmp_path), "out/manifest.json"], check=True,
                              capture_output=True, text=True).stdout

    assert "snnc" in make()  # first build
    assert "snnc" not in make()  # nothing changed: snnc does not run
    import os

    stamp = (tmp_path / "out" / "manifest.json").stat().st_mtime_ns + 1_000_000
    # a dependency from the depfile, now newer than the output
    os.utime(tmp_path / "mnist_calib.npz", ns=(stamp, stamp))
    params = tmp_path / "out" / "params.npz"
    before = params.stat().st_mtime_ns
    (tmp_path / "out" / "notes.txt").write_text("mine")  # not snnc's: kept
    assert "snnc" in make()
    assert params.stat().st_mtime_ns == before  # same content: not rewritten
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"
    assert "snnc" not in make()  # the manifest is the stamp: up to date again


def test_options_from_a_config_file(tmp_path, monkeypatch, capsys):
    """./snnc.toml (or [tool.snnc] in ./pyproject.toml) sets compile options; flags
    override it; the resolved options land in the manifest; the config is an input of
    the depfile; an unknown key is named."""
    from conftest import EXAMPLES

    monkeypatch.chdir(tmp_path)
    model, calib = str(EXAMPLES / "mnist_cnn.onnx"), str(EXAMPLES / "mnist_calib.npz")
    (tmp_path / "snnc.toml").write_text('norm = "max"\ntimesteps = 32\nshift-bias = true\n')
    assert main([model, "-o", "a", "--calib", calib, "--timesteps", "16",
                 "--depfile", "a.d"]) == 0
    o = json.loads((tmp_path / "a" / "manifest.json").read_text())["options"]
    assert (o["norm"], o["timesteps"], o["shift_bias"]) == ("max", 16, True)
    assert "snnc.toml" in (tmp_path / "a.d").read_text()
    (tmp_path / "snnc.toml").unlink()
    (tmp_path / "pyproject.toml").write_text('[tool.snnc]\nreset = "zero"\n')
    assert main([model, "-o", "b", "--calib", calib]) == 0
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["options"][
        "reset"] == "zero"
    (tmp_path / "bad.toml").write_text('nrom = "max"\n')
    assert main([model, "-o", "c", "--calib", calib, "--config", "bad.toml"]) == 2
    assert "unknown option 'nrom'" in _err_line(capsys)
    (tmp_path / "bad.toml").write_text('reset = "sideways"\n')
    assert main([model, "-o", "c", "--calib", calib, "--config", "bad.toml"]) == 2
    assert "'reset' must be one of" in _err_line(capsys)
    assert not (tmp_path / "c").exists()
