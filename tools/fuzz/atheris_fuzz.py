"""Coverage-guided fuzzing of snnc's input readers with atheris (libFuzzer for Python).

    pip install 'snnc[fuzz]'          # atheris
    python tools/fuzz/atheris_fuzz.py [TARGET] [libFuzzer flags, e.g. -max_total_time=300]

TARGET (default `model`) is what the fuzzer's bytes become:
  model   an ONNX file compiled by `snnc MODEL -o OUT --calib C` (the protobuf reader,
          the checker, the frontend, the passes, the backends);
  data    an .npz given to `snnc eval OUT --data D` (the header checks, the budgets);
  snnir   a text IR given to `snnc opt IN --pipeline ...` (the IR parser and verifier).
The seed corpus is a valid input of each kind, so mutations start from real files. An
outcome other than exit 0 or one line `snnc: error: ...` with exit 2 (a traceback, an
escaped exception, a multi-line error) is a crash: atheris stops and writes the input.
tools/fuzz/run.py is the catalogue fuzzer (mutations by class, counts by outcome); this
one follows coverage to reach what the catalogue does not list.
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "examples"

with atheris.instrument_imports(include=["snnc"]):
    import numpy as np
    from snnc.cli import main

WORK = Path(tempfile.mkdtemp(prefix="snnc-atheris-"))
CALIB = WORK / "calib.npz"
OUT = WORK / "out"


def _setup() -> None:
    with np.load(EX / "mnist_calib.npz") as z:
        np.savez(CALIB, x=z["x"][:8])
    with contextlib.redirect_stdout(io.StringIO()):
        assert main([str(EX / "mnist_cnn.onnx"), "-o", str(OUT), "--calib", str(CALIB),
                     "--timesteps", "4"]) == 0


def _run(argv: list[str]) -> None:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(argv)  # any exception escaping main() is a crash
    text = err.getvalue()
    if code == 0:
        return
    lines = text.strip("\n").split("\n")
    if code != 2 or len(lines) != 1 or not lines[0].startswith("snnc: error: "):
        raise RuntimeError(f"bad outcome (exit {code}): {text[:2000]!r}")


def fuzz_model(data: bytes) -> None:
    path = WORK / "m.onnx"
    path.write_bytes(data)
    _run([str(path), "-o", str(WORK / "o"), "--calib", str(CALIB), "--timesteps", "4",
          "--max-memory", "1G"])


def fuzz_data(data: bytes) -> None:
    path = WORK / "d.npz"
    path.write_bytes(data)
    _run(["eval", str(OUT), "--data", str(path), "--timesteps", "4", "--no-diagnostics",
          "--no-report", "--max-memory", "1G"])


def fuzz_snnir(data: bytes) -> None:
    path = WORK / "g.snnir"
    path.write_bytes(data)
    _run(["opt", str(path), "--pipeline", "fold-batchnorm,fold-affine", "--max-memory", "1G"])


TARGETS = {"model": (fuzz_model, EX / "mnist_cnn.onnx"),
           "data": (fuzz_data, EX / "mnist_calib.npz"),
           "snnir": (fuzz_snnir, ROOT / "tests" / "golden" / "fold-batchnorm.snnir")}


def main_() -> None:
    target = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] in TARGETS else "model"
    args = [a for a in sys.argv if a != target]
    fn, seed = TARGETS[target]
    corpus = WORK / "corpus"
    corpus.mkdir()
    if target == "data":  # a small valid file: mutations reach the checks quickly
        with np.load(seed) as z:
            np.savez(corpus / "seed", x=z["x"][:2], y=np.zeros(2, np.int64))
    else:
        (corpus / "seed").write_bytes(seed.read_bytes())
    _setup()
    atheris.Setup(args + [str(corpus)], fn)
    atheris.Fuzz()


if __name__ == "__main__":
    os.environ.setdefault("SNNC_MAX_MEMORY", "1G")
    main_()
