"""Hostile and broken inputs (issue 19), by class: sizes declared by the input are checked
against the memory budget before allocation, data files that lie are refused, the numpy-
only runtime answers bad data with one line. (tests/test_fuzz.py mutates inputs at
random; these pin each class with a hand-made case.)"""
from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLES
from snnc.cli import main

MODEL, CALIB, TEST = (str(EXAMPLES / f) for f in ("mnist_cnn.onnx", "mnist_calib.npz",
                                                  "mnist_test.npz"))


def run(*args: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, err.getvalue()


def one_clean_line(code: int, err: str) -> str:
    assert code == 2, err
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("snnc: error: "), err
    assert "Traceback" not in err
    return lines[0]


def _npy_member(shape: tuple[int, ...], payload: bytes, dtype: str = "<f4") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False,
                                               "shape": shape})
    return buf.getvalue() + payload


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("hostile") / "out"
    assert run(MODEL, "-o", str(d), "--calib", CALIB)[0] == 0
    return d


def test_npy_header_declaring_a_huge_array_is_refused_before_reading(out, tmp_path):
    bomb = tmp_path / "huge.npz"
    with zipfile.ZipFile(bomb, "w") as z:
        z.writestr("x.npy", _npy_member((10**9, 1, 28, 28), b"\0" * 64))
    line = one_clean_line(*run("eval", str(out), "--data", str(bomb)))
    assert "2.9 TiB" in line and "--max-memory" in line


def test_zip_bomb_and_lying_headers_are_refused(out, tmp_path):
    bomb = tmp_path / "bomb.npz"  # 3 GiB of zeros compress to a few MiB
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:
        with z.open("x.npy", "w", force_zip64=True) as f:
            f.write(_npy_member((3 * 2**28, 1), b""))
            chunk = b"\0" * (1 << 24)
            for _ in range(64):
                f.write(chunk)
    assert bomb.stat().st_size < 8 << 20
    line = one_clean_line(*run("eval", str(out), "--data", str(bomb), "--max-memory", "1G"))
    assert "over the memory limit" in line
    short = tmp_path / "short.npz"
    with zipfile.ZipFile(short, "w") as z:
        z.writestr("x.npy", _npy_member((3, 1, 28, 28), b"\0" * 64))
    assert "corrupted" in one_clean_line(*run("eval", str(out), "--data", str(short)))
    pickled = tmp_path / "obj.npz"
    np.savez(pickled, x=np.array([{"a": 1}], dtype=object))
    assert "pickle" in one_clean_line(*run("eval", str(out), "--data", str(pickled)))


@pytest.mark.parametrize("flags, words", [
    (["--timesteps", str(2**40)], "in [1, 2147483647]"),
    (["--timesteps", "0"], "in [1, 2147483647]"),
    (["--fit", f"{10**12}:1"], "T1 + T2 must be"),
    (["--max-memory", "12Q"], "bad memory size"),
])
def test_absurd_compile_flags(tmp_path, flags, words):
    line = one_clean_line(*run(MODEL, "-o", str(tmp_path / "o"), "--calib", CALIB, *flags))
    assert words in line
    assert not (tmp_path / "o").exists()


def test_simulation_budget_names_size_limit_and_flag(out):
    line = one_clean_line(*run("eval", str(out), "--data", TEST, "--timesteps", "100000000",
                               "--no-diagnostics"))
    assert "T=100000000" in line and "over the memory limit" in line
    assert "--max-memory" in line and "--batch" in line


def test_runtime_script_answers_bad_data_in_one_line(out, tmp_path):
    noy, flat = tmp_path / "noy.npz", tmp_path / "flat.npz"
    np.savez(noy, x=np.zeros((2, 1, 28, 28), np.float32))
    np.savez(flat, x=np.zeros((2, 784), np.float32), y=np.zeros(2, np.int64))
    for data, words in ((noy, "needs arrays x (N, ...) and y (N,)"),
                        (flat, "the network takes [N, 1, 28, 28]")):
        r = subprocess.run([sys.executable, str(out / "snn_runtime.py"), str(out), "--data",
                            str(data), "--timesteps", "4"], capture_output=True, text=True)
        assert r.returncode == 2 and "Traceback" not in r.stderr
        assert r.stderr.count("\n") == 1 and words in r.stderr


# ------------------------------------------------------------------ models ----------------
def _cnn(tmp_path: Path, mutate=None, name: str = "m.onnx") -> tuple[str, str]:
    """small_cnn (conftest), mutated, saved; and a calibration file for it."""
    import onnx
    from conftest import small_cnn

    m = small_cnn()
    if mutate is not None:
        mutate(m)
    path = tmp_path / name
    onnx.save(m, path)
    calib = tmp_path / "c.npz"
    np.savez(calib, x=np.random.default_rng(0).random((8, 1, 12, 12), dtype=np.float32))
    return str(path), str(calib)


def _set_attr(m, op_type: str, key: str, value) -> None:
    from onnx import helper as h

    node = next(n for n in m.graph.node if n.op_type == op_type)
    keep = [a for a in node.attribute if a.name != key]
    del node.attribute[:]
    node.attribute.extend(keep + [h.make_attribute(key, value)])


def _init(m, pick, fn) -> None:
    from onnx import numpy_helper as nh

    init = next(i for i in m.graph.initializer if pick(i))
    a = fn(nh.to_array(init).copy())
    init.CopyFrom(nh.from_array(a, init.name))


@pytest.mark.parametrize("mutate, words", [
    (lambda m: _set_attr(m, "Conv", "strides", [0, 0]), "strides [0, 0]"),
    (lambda m: _init(m, lambda i: len(i.dims) == 4, lambda a: a * np.nan), "NaN or Inf"),
    (lambda m: _init(m, lambda i: "var" in i.name, lambda a: a * 0 - 1),
     "variance + epsilon must be > 0"),
    (lambda m: m.graph.ClearField("output"), "no outputs"),
])
def test_broken_models_are_named_errors(tmp_path, mutate, words):
    model, calib = _cnn(tmp_path, mutate)
    line = one_clean_line(*run(model, "-o", str(tmp_path / "o"), "--calib", calib))
    assert words in line
    assert not (tmp_path / "o").exists()


def test_declared_input_size_is_checked_before_anything(tmp_path):
    def huge(m):
        for k in (2, 3):
            m.graph.input[0].type.tensor_type.shape.dim[k].dim_value = 10**6
    model, _ = _cnn(tmp_path, huge)
    line = one_clean_line(*run("check", model))
    assert "one sample" in line and "over the memory limit" in line


def test_initializer_whose_data_does_not_match_its_dims(tmp_path):
    def lie(m):
        init = next(i for i in m.graph.initializer if len(i.dims) == 4)
        init.raw_data = init.raw_data[:-8]
    model, calib = _cnn(tmp_path, lie)
    line = one_clean_line(*run(model, "-o", str(tmp_path / "o"), "--calib", calib))
    assert "w1" in line and "too small for the declared shape" in line


@pytest.mark.parametrize("edit, words", [
    (lambda g: '"graph"', "is not an snnc graph"),
    (lambda g: g.replace('"ops": [', '"ops": 7, "x": ['), "invalid network"),
    (lambda g: "[" * 100000 + "]" * 100000, "cannot read the IR"),
])
def test_edited_out_is_a_named_error(out, tmp_path, edit, words):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    (bad / "graph.json").write_text(edit((bad / "graph.json").read_text()))
    line = one_clean_line(*run("eval", str(bad), "--data", TEST, "--timesteps", "4",
                               "--no-diagnostics"))
    assert words in line


def test_names_with_nul_and_huge_length_survive_the_npz(tmp_path):
    """A NUL or 5,000 characters in a node name: params.npz keeps every weight apart
    (hashed entry names, mapped in graph.json), and eval runs."""
    def rename(m):
        for k, n in enumerate(m.graph.node):
            n.name = f"n\x00{k}" if k % 2 else "x" * 5000 + str(k)
    model, calib = _cnn(tmp_path, rename)
    out = tmp_path / "o"
    assert run(model, "-o", str(out), "--calib", calib)[0] == 0
    import json

    import snnc

    keys = json.loads((out / "graph.json").read_text()).get("param_keys", {})
    assert any("\x00" in k for k in keys) and any(len(k) > 5000 for k in keys)

    net = snnc.load(out)
    assert len(net.graph.params) >= 4
    x = np.random.default_rng(1).random((4, 1, 12, 12), dtype=np.float32)
    assert net.simulate(x, 4)["readout"].shape[0] == 4


def test_file_system_and_flag_mistakes(tmp_path):
    model, calib = _cnn(tmp_path)
    long = tmp_path / ("m" * 300 + ".onnx")
    assert "File name too long" in one_clean_line(*run("check", str(long)))
    before = Path(model).read_bytes()
    line = one_clean_line(*run(model, "-o", str(tmp_path / "o"), "--calib", calib,
                               "--depfile", model))
    assert "is an input of this compile" in line and Path(model).read_bytes() == before
    assert run(model, "-o", str(tmp_path / "o"), "--calib", calib)[0] == 0
    assert "non-negative" in one_clean_line(*run("place", str(tmp_path / "o"), "--target",
                                                 "loihi2", "--seed", "-1"))
    deep = tmp_path / "target.json"
    deep.write_text("[" * 100000 + "]" * 100000)
    assert "nested too deeply" in one_clean_line(*run("place", str(tmp_path / "o"),
                                                      "--target", str(deep)))


def test_text_ir_with_a_missing_param_line(tmp_path):
    src = (Path(__file__).parent / "golden" / "fold-batchnorm.snnir").read_text()
    broken = tmp_path / "b.snnir"
    broken.write_text("\n".join(ln for ln in src.splitlines()
                                if not ln.startswith("param @bn1.bias")) + "\n")
    line = one_clean_line(*run("opt", str(broken), "--pipeline", "fold-batchnorm"))
    assert "uses param @bn1.bias, which no 'param' line declares" in line


# ---- found by the 10,000-case fuzz run (seeds 10 and 11) ------------------------------
def test_outputs_never_overwrite_inputs(out, tmp_path):
    data = tmp_path / "d.npz"
    with np.load(TEST) as z:
        np.savez(data, x=z["x"][:20], y=z["y"][:20])
    before = data.read_bytes()
    line = one_clean_line(*run("eval", str(out), "--data", str(data), "--timesteps", "4",
                               "--no-diagnostics", "--json", str(data)))
    assert "is an input of this command" in line and data.read_bytes() == before
    model = tmp_path / "m.onnx"
    model.write_bytes(Path(MODEL).read_bytes())
    line = one_clean_line(*run("opt", str(model), "-o", str(model)))
    assert "is an input" in line and model.read_bytes() == Path(MODEL).read_bytes()


def _first(g, kind):
    return next(op for op in g["ops"] if op["kind"] == kind)


@pytest.mark.parametrize("edit", [
    lambda g: _first(g, "conv")["attrs"].update(strides=[True, 1]),
    lambda g: _first(g, "conv")["attrs"].update(pads=[2**63, 0, 0, 0]),
    lambda g: _first(g, "if").update(origin=7),
    lambda g: _first(g, "conv")["params"].update(bias=False),
    lambda g: _first(g, "if")["attrs"].update(v_init=""),
    lambda g: g["meta"].update(timesteps="64"),
    lambda g: _first(g, "conv").update(inputs=[]),
])
def test_edited_graph_json_of_the_wrong_types_is_one_line(out, tmp_path, edit):
    import json
    import shutil

    bad = tmp_path / "out"
    shutil.copytree(out, bad)
    g = json.loads((bad / "graph.json").read_text())
    edit(g)
    (bad / "graph.json").write_text(json.dumps(g))
    line = one_clean_line(*run("eval", str(bad), "--data", TEST, "--timesteps", "4"))
    assert "invalid network" in line


def test_check_refuses_what_compile_would(tmp_path):
    """Initializers of the wrong element type (caught by ONNX type checking) and weights of
    absurd magnitude are refused by `snnc check` and the compile alike."""
    import onnx
    from conftest import small_cnn
    from onnx import numpy_helper as nh

    for name, make in (("string", lambda: nh.from_array(np.array(["a"] * 10), "b2")),
                       ("int32", lambda: nh.from_array(np.zeros(10, np.int32), "b2")),
                       ("absurd", lambda: nh.from_array(
                           np.where(np.arange(10) % 2, -1e38, 0.1).astype(np.float32),
                           "b2"))):
        m = small_cnn(0)
        i = next(k for k, t in enumerate(m.graph.initializer) if t.name == "b2")
        m.graph.initializer[i].CopyFrom(make())
        p = tmp_path / f"{name}.onnx"
        onnx.save(m, p)
        assert one_clean_line(*run("check", str(p)))
        assert one_clean_line(*run(str(p), "-o", str(tmp_path / name), "--calib", CALIB))
        assert not (tmp_path / name).exists()
