"""The best SNN at the user's T out of the box (issue 20): `--tune auto` against the plain
default recipe, against the best setting `snnc sweep` finds on the test data, and across T.

For every bench net (tools/train_mnist.py, cached in build/models), on the mnist5k test
split (1000 images), calibration data build/models/mnist_calib.npz (500 training images):
  - the ANN (onnxruntime);
  - plain: `--timesteps T --tune off` (the default recipe, percentile:99.9);
  - tuned: `--timesteps T` alone (--tune auto: recipes scored on held-out calibration
    inputs, never on test data), with its choice and compile time;
  - oracle: the best setting of `snnc sweep` on the test data over the same grid the
    tuner searches (norms x {-, v_init 0.5, shift bias} x bias calibration x signed
    neurons) at T;
  - no decay: compiled once with `--timesteps 8,32,256`, evaluated at 8, 32 and 256;
  - compile time: plain, one bias calibration (--calibrate-bias, tune off), tuned;
and for the ResNet `--timesteps 16` alone, and the accuracy curve T=4..256 before
(plain, compiled for T=64) and after (tuned with --timesteps 4,8,...,256).

    python tools/bench/tune_bench.py [--models mlp,cnn_avg,...] [--t 8] [--md FILE]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import snnc  # noqa: E402
from common import MODELS_DIR, data, ensure_models  # noqa: E402
from snnc.driver import (  # noqa: E402
    Options,  # noqa: E402
    ann_accuracy,
    load_model,
    sweep,
    sweep_settings,
)
from snnc.tune import norms_for  # noqa: E402

BENCH = ["mlp", "cnn_avg", "cnn_bn_max", "cnn_clip", "resnet"]
CURVE = [4, 8, 16, 32, 64, 128, 256]


def acc(net: snnc.Compiled, x, y, steps: list[int]) -> dict[int, float]:
    res = net.evaluate(x, y, steps)
    return {r["timesteps"]: r["accuracy"] for r in res["snn"]}


def timed(fn, *a, **kw):
    t0 = time.perf_counter()
    out = fn(*a, **kw)
    return out, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(BENCH))
    ap.add_argument("--t", type=int, default=8, help="the user's T (default 8)")
    ap.add_argument("--no-oracle", action="store_true", help="skip the sweep on test data")
    ap.add_argument("--no-curve", action="store_true",
                    help="skip the ResNet's curve T=4..256 (its T=16 row stays)")
    ap.add_argument("--md", help="also write the tables to this markdown file")
    a = ap.parse_args()
    paths = ensure_models(a.models.split(","))
    x, y = data("test")
    calib = str(MODELS_DIR / "mnist_calib.npz")
    T = a.t
    lines = [f"T = {T}; mnist5k test split ({len(x)} images); calibration: 500 training "
             "images (the tuner holds out a third of them)", "",
             f"| net | ANN | plain @T={T} | tuned @T={T} | oracle (sweep on test) @T={T} | "
             "tuned choice | compile s: plain / bias calib / tuned |",
             "|---|---|---|---|---|---|---|"]
    decay = ["", "no decay: compiled once with --timesteps 8,32,256", "",
             "| net | ANN | T=8 | T=32 | T=256 | choice |", "|---|---|---|---|---|---|"]
    curves: list[str] = []
    for name, path in paths.items():
        ann = ann_accuracy(load_model(path), x, y)
        plain, t_plain = timed(snnc.compile_model, path, calib=calib, timesteps=T)
        _, t_cal = timed(snnc.compile_model, path, calib=calib, timesteps=T,
                         calibrate_bias=True)
        tuned, t_tuned = timed(snnc.compile_model, path, calib=calib, timesteps=T,
                               tune="auto")
        a_plain, a_tuned = acc(plain, x, y, [T])[T], acc(tuned, x, y, [T])[T]
        oracle = "-"
        if not a.no_oracle:
            norms = ",".join(norms_for(Options(timesteps=T)))
            grid = sweep_settings(norms=norms, v_inits="0,0.5", calibrate_bias="no,yes",
                                  signed="no,yes")
            grid += sweep_settings(norms=norms, shift_bias="yes", calibrate_bias="no,yes",
                                   signed="no,yes")
            res = sweep(path, calib, MODELS_DIR / "mnist_test.npz", [T], grid)
            best = next(b for b in res["best"] if b["timesteps"] == T)
            oracle = f"{best['accuracy']:.4f} ({best['setting']})"
        choice = tuned.report["tune"]["chosen"]
        lines.append(f"| {name} | {ann:.4f} | {a_plain:.4f} | {a_tuned:.4f} | {oracle} | "
                     f"{choice} | {t_plain:.1f} / {t_cal:.1f} / {t_tuned:.1f} |")
        multi = snnc.compile_model(path, calib=calib, timesteps=[8, 32, 256], tune="auto")
        am = acc(multi, x, y, [8, 32, 256])
        decay.append(f"| {name} | {ann:.4f} | {am[8]:.4f} | {am[32]:.4f} | {am[256]:.4f} | "
                     f"{multi.report['tune']['chosen']} |")
        if name == "resnet":
            t16, s16 = timed(snnc.compile_model, path, calib=calib, timesteps=16,
                             tune="auto")
            a16 = acc(t16, x, y, [16])[16]
            curves += ["", f"ResNet at T=16 with `--timesteps 16` alone: {a16:.4f} (ANN "
                       f"{ann:.4f}, {100 * (a16 - ann):+.1f} pp; "
                       f"{t16.report['tune']['chosen']}; compile {s16:.1f} s)"]
            print(curves[-1], flush=True)
        if name == "resnet" and not a.no_curve:
            before = acc(snnc.compile_model(path, calib=calib, timesteps=64, tune="off"),
                         x, y, CURVE)
            after_net = snnc.compile_model(path, calib=calib, timesteps=CURVE, tune="auto")
            after = acc(after_net, x, y, CURVE)
            curves += ["", f"ResNet accuracy vs T (ANN {ann:.4f})", "",
                       "| recipe | " + " | ".join(f"T={t}" for t in CURVE) + " |",
                       "|---|" + "---|" * len(CURVE),
                       "| before: default, compiled for T=64 | "
                       + " | ".join(f"{before[t]:.4f}" for t in CURVE) + " |",
                       f"| after: --timesteps {','.join(map(str, CURVE))} "
                       f"({after_net.report['tune']['chosen']}) | "
                       + " | ".join(f"{after[t]:.4f}" for t in CURVE) + " |"]
        print("\n".join(lines[-1:] + decay[-1:]), flush=True)
    text = "\n".join(lines + decay + curves) + "\n"
    print(text)
    if a.md:
        Path(a.md).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
