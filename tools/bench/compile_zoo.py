"""Compile time and peak memory of real architectures from the onnx package.

Each model is compiled by the `snnc` CLI in a fresh subprocess (so peak RSS is the
compile's own), with its ConstantOfShape weights materialized by constant folding and a
small random calibration set (the light models carry no trained weights, so accuracy is
meaningless here; this measures the compiler).

    python tools/bench/compile_zoo.py [--models light_vgg19,light_resnet50]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx

# Runs in a fresh interpreter: time the in-process compile and report its own peak RSS.
CHILD = """
import resource, sys, time
t0 = time.perf_counter()
from snnc.cli import main
rc = main(sys.argv[1:])
dt = time.perf_counter() - t0
print(dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
sys.exit(rc)
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="light_vgg19,light_resnet50")
    ap.add_argument("--calib-samples", type=int, default=4)
    args = ap.parse_args()
    light = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
    print(f"{'model':20s} {'compile s':>10s} {'peak RSS MiB':>13s} {'weights MB':>10s}")
    for name in args.models.split(","):
        path = light / f"{name}.onnx"
        with tempfile.TemporaryDirectory() as tmp:
            m = onnx.load(path)
            inits = {i.name for i in m.graph.initializer}
            inp = next(i for i in m.graph.input if i.name not in inits)
            shape = [d.dim_value for d in inp.type.tensor_type.shape.dim][1:]
            x = np.random.default_rng(0).random((args.calib_samples, *shape), np.float32)
            np.savez(Path(tmp) / "calib.npz", x=x)
            argv = [str(path), "-o", str(Path(tmp) / "out"), "--calib",
                    str(Path(tmp) / "calib.npz")]
            r = subprocess.run([sys.executable, "-c", CHILD, *argv], capture_output=True,
                               text=True)
            if r.returncode != 0:
                print(f"{name}: FAILED: {r.stderr.strip()}")
                return 1
            dt, peak_kib = r.stdout.split()[-2:]
            with np.load(Path(tmp) / "out" / "params.npz") as z:
                size = sum(z[k].nbytes for k in z.files) / 1e6
            print(f"{name:20s} {float(dt):10.1f} {int(peak_kib) / 1024:13.0f} {size:10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
