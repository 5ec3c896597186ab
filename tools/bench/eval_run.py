"""`snnc eval` as a user runs it: wall time and peak memory of one call, and the share of
the per-layer diagnostics.

Compiles a bench model (default cnn_big, the 11.5 M-MAC BN + max-pool CNN) with the
default settings, then runs, each in a fresh process through the CLI,
    snnc eval OUT --data TEST.npz --timesteps 8,16,32,64,128,256 [--no-diagnostics]
on the whole mnist5k test split (1000 images), and reports wall time, peak RSS (the
child's ru_maxrss) and the accuracy table, with and without diagnostics.

    python tools/bench/eval_run.py [--model cnn_big] [--timesteps 8,...,256] [--md FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import data, ensure_models  # noqa: E402


def snnc(*args: str) -> list[str]:
    return [sys.executable, "-m", "snnc", *args]


_LAUNCHER = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[2:]); "
             "open(sys.argv[1], 'w').write(str(resource.getrusage("
             "resource.RUSAGE_CHILDREN).ru_maxrss)); sys.exit(r.returncode)")


def timed(cmd: list[str], tmp: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one fresh process (measured by a launcher whose
    only child it is)."""
    rss = tmp / "rss.txt"
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", _LAUNCHER, str(rss), *cmd],
                       capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr}")
    return wall, int(rss.read_text()) / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="cnn_big")
    ap.add_argument("--timesteps", default="8,16,32,64,128,256")
    ap.add_argument("--md", type=Path)
    args = ap.parse_args()
    path = ensure_models([args.model])[args.model]
    x, y = data("test")
    calib, _ = data("calib")
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        np.savez(t / "test.npz", x=x, y=y)
        np.savez(t / "calib.npz", x=calib)
        subprocess.run(snnc(str(path), "-o", str(t / "out"), "--calib", str(t / "calib.npz")),
                       check=True, capture_output=True)
        runs = {}
        for label, extra in (("without diagnostics", ["--no-diagnostics"]),
                             ("with diagnostics", [])):
            wall, rss = timed(snnc("eval", str(t / "out"), "--data", str(t / "test.npz"),
                                   "--timesteps", args.timesteps, "--json",
                                   str(t / f"{len(extra)}.json"), *extra), t)
            runs[label] = {"wall_s": wall, "peak_rss_mib": rss,
                           "snn": json.loads((t / f"{len(extra)}.json").read_text())}
            print(f"{label}: {wall:.1f} s wall, peak RSS {rss:.0f} MiB", file=sys.stderr)
    a, b = runs["without diagnostics"], runs["with diagnostics"]
    share = (b["wall_s"] - a["wall_s"]) / b["wall_s"]
    lines = [f"`snnc eval` of {args.model} ({len(x)} images, T={args.timesteps}, "
             f"{os.cpu_count()} CPUs):", "",
             "| run | wall s | peak RSS MiB |", "|---|---|---|"]
    lines += [f"| {k} | {v['wall_s']:.1f} | {v['peak_rss_mib']:.0f} |" for k, v in runs.items()]
    lines += ["", f"diagnostics share of the wall time: {100 * share:.1f} %", "",
              f"ANN accuracy {b['snn']['ann_accuracy']:.4f}; SNN: " + ", ".join(
                  f"T={r['timesteps']} {r['accuracy']:.4f}" for r in b["snn"]["snn"])]
    print("\n".join(lines))
    if args.md:
        args.md.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
