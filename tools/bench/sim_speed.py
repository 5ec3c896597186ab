"""Simulator speed: time per sample per time step / onnxruntime ANN time per sample.

Same model, same process, batch 100, measured side by side (best of R repeats each):
    ratio = (sim seconds per batch at T steps / (100 * T)) / (ORT seconds per batch / 100)

    python tools/bench/sim_speed.py [--models mlp,cnn_avg,cnn_bn_max] [--timesteps 64]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import MODELS, data, ensure_models
from snnc.backends.sim import runtime
from snnc.calibration import ort_session
from snnc.driver import compile_model
from snnc.frontend import load_model


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--timesteps", type=int, default=64)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    paths = ensure_models(args.models.split(","))
    x, _ = data("test")
    xb = x[:args.batch]
    calib, _ = data("calib")
    print(f"{'model':12s} {'ORT us/sample':>14s} {'sim us/sample/step':>19s} {'ratio':>7s}")
    for name, path in paths.items():
        with tempfile.TemporaryDirectory() as tmp:
            np.savez(Path(tmp) / "calib.npz", x=calib)
            compile_model(path, Path(tmp) / "out", calib=Path(tmp) / "calib.npz")
            net = runtime.Network.load(str(Path(tmp) / "out"))
        sess = ort_session(load_model(path))
        feed = {sess.get_inputs()[0].name: xb}
        sess.run(None, feed)
        t_ort = best(lambda s=sess, f=feed: s.run(None, f), args.repeats * 5) / len(xb)
        t_sim = best(lambda n=net: n.simulate(xb, args.timesteps), args.repeats) / (
            len(xb) * args.timesteps)
        print(f"{name:12s} {t_ort * 1e6:14.2f} {t_sim * 1e6:19.2f} {t_sim / t_ort:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
