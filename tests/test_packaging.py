"""The wheel carries everything snnc reads at run time besides Python modules: the C
templates, the placement presets, the native kernel sources and the CMake module."""
from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest
from conftest import ROOT


def test_wheel_contains_package_data(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps",
                        "--no-build-isolation", "-q", "-w", str(tmp_path)],
                       capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot build a wheel here: {r.stderr.strip()[-300:]}")
    wheel = next(tmp_path.glob("snnc-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder, pattern, count in (("snnc/backends/c/templates/", ".j2", 5),
                                   ("snnc/backends/place/presets/", ".json", 8),
                                   ("snnc/cmake/", ".cmake", 1)):
        found = [n for n in names if n.startswith(folder) and n.endswith(pattern)]
        assert len(found) >= count, (folder, sorted(found))
    assert "snnc/backends/sim/native.c" in names
    assert "snnc/backends/sim/runtime.py" in names and "snnc/ir/semantics.py" in names
