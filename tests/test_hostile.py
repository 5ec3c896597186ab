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
    (["--timesteps", str(2**40)], "timesteps must be in [1, 2147483647]"),
    (["--timesteps", "0"], "timesteps must be in"),
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
