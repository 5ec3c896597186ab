"""Build-system integration: the CMake module shipped in the package (snnc --cmake-dir)
compiles a model into a static library that a C program links, with Ninja and with
Make, and reruns snnc exactly when an input of the depfile changes."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
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
    _touch(src / "mnist_calib.npz")
    assert build_log().count("--depfile") == 1
    assert "--depfile" not in build_log()
    # the model touched, its content unchanged: snnc reruns, the generated C keeps its
    # time stamps, so nothing is recompiled or relinked
    _touch(src / "mnist_cnn.onnx")
    log = build_log()
    assert log.count("--depfile") == 1
    assert "net.c.o" not in log and "main.c.o" not in log, log
    # other calibration data: other weights, so the weights file is rebuilt
    _other_calib(src / "mnist_calib.npz")
    log = build_log()
    assert log.count("--depfile") == 1 and "net_weights.c.o" in log
    assert (build / "app").exists()


def _touch(path: Path) -> None:
    """A new time stamp, past every time a build tool recorded (Ninja's restat log keeps
    build times, which file-system time stamps of a busy machine can trail)."""
    time.sleep(1.05)
    os.utime(path)


def _other_calib(path: Path) -> None:
    time.sleep(1.05)
    import numpy as np

    with np.load(path) as z:
        x = z["x"]
    np.savez(path, x=x[: len(x) // 2])


MAKEFILE = """include {mk}
$(eval $(call snnc_model,net,mnist_cnn.onnx,mnist_calib.npz,))
app: main.o libnet.a
	$(CC) -o $@ $^ -lm
main.o: CPPFLAGS += $(net_CPPFLAGS)
main.o: net.snn/c/net.h
"""


@pytest.mark.skipif(not shutil.which("make"), reason="needs GNU make")
def test_makefile_include_builds_and_reruns_exactly_the_right_steps(tmp_path):
    """compiler/cmake/snnc.mk: a plain Makefile compiles the model, links it, and reruns
    snnc only when an input changes; recompiles only the C files whose content changed."""
    src = tmp_path / "src"
    _project(src)
    mk = Path(subprocess.run(["snnc", "--cmake-dir"], check=True, capture_output=True,
                             text=True).stdout.strip()) / "snnc.mk"
    (src / "Makefile").write_text(MAKEFILE.format(mk=mk))

    def make() -> list[str]:
        r = subprocess.run(["make", "-C", str(src), "--no-print-directory"], check=True,
                           capture_output=True, text=True)
        return [line for line in r.stdout.splitlines()
                if line.startswith(("snnc ", "cc ", "ar ", "gcc "))]

    first = make()
    assert sum(line.startswith("snnc ") for line in first) == 1
    assert subprocess.run([str(src / "app")], check=True, capture_output=True,
                          text=True).stdout.strip() == "linked"
    assert make() == []  # nothing changed: nothing runs
    _touch(src / "mnist_cnn.onnx")
    steps = make()
    assert len(steps) == 1 and steps[0].startswith("snnc "), steps  # snnc only
    assert make() == []
    _other_calib(src / "mnist_calib.npz")
    steps = make()
    assert steps[0].startswith("snnc ")
    assert any("net_weights.c" in s for s in steps)
    assert not any(" net.snn/c/net.c" in s or "main.c" in s for s in steps), steps
