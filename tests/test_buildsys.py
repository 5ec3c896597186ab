"""Build-system integration: the CMake module shipped in the package (snnc --cmake-dir)
compiles a model into a static library that a C program links, with Ninja and with
Make, and reruns snnc exactly when an input of the depfile changes."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import EXAMPLES

pytestmark = pytest.mark.skipif(
    not (shutil.which("cmake") and shutil.which("snnc") and shutil.which("gcc")),
    reason="needs cmake, gcc and the installed snnc command")

MAIN_C = """#include "net.h"
#include <stdio.h>
static net_ctx ctx;
int main(void) { net_init(&ctx); puts("linked"); return 0; }
"""


def _project(src: Path) -> None:
    src.mkdir()
    for f in ("mnist_cnn.onnx", "mnist_calib.npz"):
        shutil.copy(EXAMPLES / f, src / f)
    cmake_dir = subprocess.run(["snnc", "--cmake-dir"], check=True, capture_output=True,
                               text=True).stdout.strip()
    (src / "main.c").write_text(MAIN_C)
    (src / "CMakeLists.txt").write_text(f"""cmake_minimum_required(VERSION 3.20)
project(snnc_app C)
list(APPEND CMAKE_MODULE_PATH "{cmake_dir}")
include(snnc)
snnc_add_model(net MODEL ${{CMAKE_SOURCE_DIR}}/mnist_cnn.onnx
               CALIB ${{CMAKE_SOURCE_DIR}}/mnist_calib.npz NAME net)
add_executable(app main.c)
target_link_libraries(app PRIVATE net)
""")


@pytest.mark.parametrize("generator", ["Ninja", "Unix Makefiles"])
def test_cmake_module_builds_and_reruns_snnc_only_when_needed(tmp_path, generator):
    if generator == "Ninja" and not shutil.which("ninja"):
        pytest.skip("no ninja")
    src, build = tmp_path / "src", tmp_path / "build"
    _project(src)
    subprocess.run(["cmake", "-S", str(src), "-B", str(build), "-G", generator],
                   check=True, capture_output=True)

    def build_log() -> str:
        r = subprocess.run(["cmake", "--build", str(build), "--verbose"], check=True,
                           capture_output=True, text=True)
        return r.stdout

    first = build_log()
    assert "snnc" in first and "mnist_cnn.onnx" in first
    out = subprocess.run([str(build / "app")], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "linked"
    assert "--depfile" not in build_log()  # nothing changed: snnc does not run
    (src / "unrelated.txt").write_text("x")
    assert "--depfile" not in build_log()
    stamp = (build / "net.snn" / "manifest.json").stat().st_mtime_ns + 1_000_000
    os.utime(src / "mnist_calib.npz", ns=(stamp, stamp))  # known through the depfile only
    assert build_log().count("--depfile") == 1
    assert "--depfile" not in build_log()
