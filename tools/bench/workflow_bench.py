"""Issue 18's numbers: build-system reruns and the Python API against the CLI.

    python tools/bench/workflow_bench.py [--md FILE]

1. A C program linked against a model compiled by snnc at build time, through CMake
   (Ninja and Makefiles generators, compiler/cmake/snnc.cmake) and plain GNU Make
   (compiler/cmake/snnc.mk): how many times snnc runs and how many C files are compiled
   on the first build, a no-op rebuild, after touching an unrelated file, after touching
   the model (content unchanged) and after changing the calibration data.
2. `snnc.load(OUT).simulate(x, T)` against `snnc eval OUT --data D --timesteps T`: the
   spikes per sample of every layer (identical counts expected).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "examples"
MAIN_C = """#include "net.h"
#include <stdio.h>
static net_ctx ctx;
int main(void) { net_init(&ctx); puts("linked"); return 0; }
"""


def _cmake_dir() -> Path:
    return Path(subprocess.run(["snnc", "--cmake-dir"], check=True, capture_output=True,
                               text=True).stdout.strip())


def _project(src: Path, kind: str) -> None:
    src.mkdir()
    for f in ("mnist_cnn.onnx", "mnist_calib.npz"):
        shutil.copy(EX / f, src / f)
    (src / "main.c").write_text(MAIN_C)
    if kind == "make":
        (src / "Makefile").write_text(
            f"include {_cmake_dir() / 'snnc.mk'}\n"
            "$(eval $(call snnc_model,net,mnist_cnn.onnx,mnist_calib.npz,))\n"
            "app: main.o libnet.a\n\t$(CC) -o $@ $^ -lm\n"
            "main.o: CPPFLAGS += $(net_CPPFLAGS)\nmain.o: net.snn/c/net.h\n")
    else:
        (src / "CMakeLists.txt").write_text(
            "cmake_minimum_required(VERSION 3.20)\nproject(app C)\n"
            f'list(APPEND CMAKE_MODULE_PATH "{_cmake_dir()}")\ninclude(snnc)\n'
            "snnc_add_model(net MODEL ${CMAKE_SOURCE_DIR}/mnist_cnn.onnx\n"
            "               CALIB ${CMAKE_SOURCE_DIR}/mnist_calib.npz NAME net)\n"
            "add_executable(app main.c)\ntarget_link_libraries(app PRIVATE net)\n")


def _counts(log: str) -> tuple[int, int]:
    """(snnc runs, C files compiled) in a verbose build log: snnc's command line is the
    one with --depfile; a C compile has -c."""
    lines = log.splitlines()
    return (sum("--depfile" in ln for ln in lines),
            sum(" -c " in ln and ".c" in ln for ln in lines))


def build_system(kind: str) -> list[tuple[str, int, int]]:
    with tempfile.TemporaryDirectory() as d:
        src, build = Path(d) / "src", Path(d) / "build"
        _project(src, kind)
        if kind == "make":
            cmd = ["make", "-C", str(src), "--no-print-directory"]
        else:
            gen = {"cmake-ninja": "Ninja", "cmake-make": "Unix Makefiles"}[kind]
            subprocess.run(["cmake", "-S", str(src), "-B", str(build), "-G", gen],
                           check=True, capture_output=True)
            cmd = ["cmake", "--build", str(build), "--verbose"]

        def run() -> tuple[int, int]:
            r = subprocess.run(cmd, check=True, capture_output=True, text=True)
            return _counts(r.stdout)

        def touch(p: Path) -> None:
            time.sleep(1.05)  # past every time stamp a build tool recorded
            os.utime(p)

        rows = [("first build", *run()), ("no-op rebuild", *run())]
        (src / "notes.txt").write_text("x")
        rows.append(("unrelated file added", *run()))
        touch(src / "mnist_cnn.onnx")
        rows.append(("model touched (same content)", *run()))
        time.sleep(1.05)
        with np.load(src / "mnist_calib.npz") as z:
            x = z["x"]
        np.savez(src / "mnist_calib.npz", x=x[: len(x) // 2])
        rows.append(("calibration data changed", *run()))
        rows.append(("no-op rebuild", *run()))
        return rows


def api_vs_eval(t: int = 16, n: int = 200) -> dict[str, tuple[float, float]]:
    import snnc
    from snnc.cli import main

    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "out"
        with np.load(EX / "mnist_test.npz") as z:
            x, y = z["x"][:n], z["y"][:n]
        np.savez(Path(d) / "test.npz", x=x, y=y)
        with contextlib.redirect_stdout(io.StringIO()):
            assert main([str(EX / "mnist_cnn.onnx"), "-o", str(out), "--calib",
                         str(EX / "mnist_calib.npz")]) == 0
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            assert main(["eval", str(out), "--data", str(Path(d) / "test.npz"),
                         "--timesteps", str(t), "--no-diagnostics", "--no-report"]) == 0
        text = buf.getvalue().splitlines()
        i = next(k for k, ln in enumerate(text) if ln.startswith("spikes per sample by layer"))
        cli = {ln.split()[0]: float(ln.split()[1]) for ln in text[i + 3:] if ln.strip()}
        run = snnc.load(out).simulate(x, t)
        api = {k: float(v.sum()) / n for k, v in run["spikes"].items() if k in cli}
        return {k: (cli[k], api[k]) for k in cli}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--md", type=Path)
    a = ap.parse_args()
    lines = ["# Build systems and the Python API (issue 18)", "",
             "`python tools/bench/workflow_bench.py --md tools/bench/results_workflow.md`", "",
             "| build | step | snnc runs | C files compiled |", "|---|---|---|---|"]
    for kind in ("cmake-ninja", "cmake-make", "make"):
        if kind == "cmake-ninja" and not shutil.which("ninja"):
            continue
        for step, snnc_runs, cc in build_system(kind):
            lines.append(f"| {kind} | {step} | {snnc_runs} | {cc} |")
    lines += ["", "`snnc.load(OUT).simulate(x, 16)` vs `snnc eval OUT --timesteps 16` "
              "(200 MNIST test images), spikes per sample by layer:", "",
              "| layer | snnc eval | load().simulate | identical |", "|---|---|---|---|"]
    for k, (c, p) in api_vs_eval().items():
        lines.append(f"| {k} | {c:.1f} | {p:.1f} | {'yes' if f'{c:.1f}' == f'{p:.1f}' else 'NO'} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.md:
        a.md.write_text(text)


if __name__ == "__main__":
    main()
