"""C backend: accuracy, spike agreement, speed and footprint of the generated C.

For each model (examples/mnist_cnn.onnx, plus build/models/*.onnx with --zoo), compile
float32 and fixed point (16-bit weights), build the generated main_example with gcc -O2 and
run N test images for T steps, side by side with the NumPy simulator in the same process:
  * accuracy at T: float simulator, fixed simulator, C float, C fixed;
  * spike agreement: the fraction of (sample, IF layer) spike totals that are identical in
    C and in the simulator of the same arithmetic (fixed must be 100%);
  * time per sample per time step: the C program (one sample at a time, wall clock of the
    whole run, so it includes reading the input file) vs the simulator (batch 100);
  * footprint totals (flash weights, RAM context, Cortex-M4 code if arm-none-eabi-gcc).

    python tools/bench/c_backend.py [--n 200] [--timesteps 32] [--zoo]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
from snnc.backends.sim import network, runtime  # noqa: E402
from snnc.driver import Options, compile_model, load  # noqa: E402


def run_c(out: Path, x: np.ndarray, steps: int, fixed: bool
          ) -> tuple[np.ndarray, np.ndarray, float]:
    """(predicted class per sample, spike totals (N, layers), seconds) of main_example."""
    c = out / "c"
    name = next(c.glob("*_weights.c")).name[:-len("_weights.c")]
    exe = c / "bench_example"
    subprocess.run(["gcc", "-std=c99", "-O2", "-o", str(exe), str(c / "main_example.c"),
                    str(c / f"{name}.c"), str(c / f"{name}_weights.c")], check=True)
    g = load(out)
    xi = (runtime.quantize_input(x, g.meta["fixed_point"]["input_bits"]) if fixed
          else x.astype(np.float32))
    inp = c / "bench_in.bin"
    inp.write_bytes(np.ascontiguousarray(xi).tobytes())
    t0 = time.perf_counter()
    r = subprocess.run([str(exe), str(inp), str(steps)], capture_output=True, text=True,
                       check=True)
    sec = time.perf_counter() - t0
    rows = [ln.split() for ln in r.stdout.splitlines()]
    i, j = rows[0].index("spikes"), rows[0].index("out")
    cls = np.array([int(f[5]) for f in rows])
    spikes = np.array([[int(v) for v in f[i + 1:j]] for f in rows])
    return cls, spikes, sec


def run_sim(out: Path, x: np.ndarray, y: np.ndarray, steps: int
            ) -> tuple[float, np.ndarray, float]:
    """(accuracy at T, spike totals (N, layers), seconds) of the simulator."""
    g = load(out)
    net = network(g)
    names = [op.name for op in g.ops if op.kind == "if"]
    spikes = np.zeros((len(x), len(names)), np.int64)
    correct = 0
    t0 = time.perf_counter()
    for off in range(0, len(x), 100):
        xb = x[off:off + 100]

        def rec(name: str, _t0: int, chunk: np.ndarray, off: int = off, n: int = len(xb)
                ) -> None:
            if name in names:
                spikes[off:off + n, names.index(name)] += chunk.reshape(
                    len(chunk), n, -1).sum(axis=(0, 2)).astype(np.int64)

        tr = net.simulate(xb, steps, sample_offset=off, record=rec)
        correct += int((tr["output"][-1].reshape(len(xb), -1).argmax(-1)
                        == y[off:off + 100]).sum())
    return correct / len(x), spikes, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="test images (default 200)")
    ap.add_argument("--timesteps", type=int, default=32)
    ap.add_argument("--zoo", action="store_true",
                    help="also the models in build/models (tools/train_mnist.py)")
    args = ap.parse_args()
    with np.load(ROOT / "examples" / "mnist_test.npz") as z:
        x, y = z["x"][:args.n], z["y"][:args.n]
    models = [("mnist_cnn", ROOT / "examples" / "mnist_cnn.onnx",
               ROOT / "examples" / "mnist_calib.npz")]
    if args.zoo:
        zoo = ROOT / "build" / "models"
        models += [(p.stem, p, zoo / "mnist_calib.npz") for p in sorted(zoo.glob("*.onnx"))]
    t = args.timesteps
    print(f"N = {len(x)} images, T = {t}; times per sample per time step\n")
    print("| model | arith | sim acc | C acc | C=sim spikes | sim us | C us | sim/C | "
          "flash weights B | RAM ctx B | M4 code B |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="snnc-bench-c-") as tmp:
        for name, path, calib in models:
            for arith in ("float", "fixed"):
                out = Path(tmp) / f"{name}_{arith}"
                compile_model(path, out, calib=calib,
                              options=Options(arith=arith, timesteps=t,
                                              backends=("sim", "c")))
                acc_s, spk_s, sec_s = run_sim(out, x, y, t)
                cls, spk_c, sec_c = run_c(out, x, t, arith == "fixed")
                acc_c = float((cls == y).mean())
                same = float((spk_c == spk_s).mean())
                fp = json.loads((out / "c" / "footprint.json").read_text())["total"]
                us_s, us_c = sec_s / (len(x) * t) * 1e6, sec_c / (len(x) * t) * 1e6
                m4 = fp["flash_code_bytes"] if fp["flash_code_bytes"] is not None else "n/a"
                print(f"| {name} | {arith} | {acc_s:.4f} | {acc_c:.4f} | {same * 100:.1f}% | "
                      f"{us_s:.1f} | {us_c:.1f} | {us_s / us_c:.1f} | "
                      f"{fp['flash_weights_bytes']} | {fp['ram_ctx_bytes']} | {m4} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
