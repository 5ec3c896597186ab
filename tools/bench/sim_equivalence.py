"""Same accuracy as before: the simulator's engines against the runtime of an earlier snnc.

For every bench model, compiled with the default settings in float and in fixed point,
accuracy (and spikes per sample) on the mnist5k test split at T = 8 ... 256 by
  new-eval   what `snnc eval` runs (native and onnxruntime kernels)
  new-numpy  the standalone OUT/snn_runtime.py path (numpy only)
  old        the runtime at git revision --old (numpy only, slow: --old-n images)
Fixed point must agree exactly (accuracy and spikes); float32 engines may differ by
summation order, which moves a spike where a membrane sits on its threshold.

    python tools/bench/sim_equivalence.py [--models ...] [--n 1000] [--old-n 1000]
        [--old b9ac7e1] [--md FILE]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import MODELS_DIR, data, ensure_models  # noqa: E402
from sim_speed import ALL_MODELS, _old_runtime  # noqa: E402

STEPS = [8, 16, 32, 64, 128, 256]


def run(models: list[str], n: int, old_n: int, rev: str) -> list[dict]:
    from snnc.backends.sim import accelerated, cpus, network, runtime
    from snnc.driver import Options, compile_model

    x, y = data("test")
    calib, _ = data("calib")
    old = _old_runtime(rev) if old_n else None
    rows = []
    for name in models:
        for arith in ("float", "fixed"):
            with tempfile.TemporaryDirectory() as tmp:
                np.savez(Path(tmp) / "calib.npz", x=calib)
                res = compile_model(MODELS_DIR / f"{name}.onnx", Path(tmp) / "out",
                                    calib=Path(tmp) / "calib.npz",
                                    options=Options(arith=arith))
                engines = {"new-eval": (network(res.graph, accelerated(), cpus()), n),
                           "new-numpy": (network(res.graph), n)}
                if old is not None:
                    engines["old"] = (old.Network.load(str(Path(tmp) / "out")), old_n)
                row = {"model": name, "arith": arith, "engines": {}}
                for key, (net, count) in engines.items():
                    t0 = time.perf_counter()
                    ev = (old.evaluate if key == "old" else runtime.evaluate)(
                        net, x[:count], y[:count], STEPS)
                    row["engines"][key] = {
                        "n": count, "seconds": time.perf_counter() - t0,
                        "accuracy": {r["timesteps"]: r["accuracy"] for r in ev["snn"]},
                        "spikes": {r["timesteps"]: r["spikes_per_sample"] for r in ev["snn"]}}
                    print(f"[{name} {arith}] {key} ({count} images, "
                          f"{row['engines'][key]['seconds']:.0f} s): "
                          + " ".join(f"{a:.4f}" for a in row["engines"][key]["accuracy"]
                                     .values()), file=sys.stderr, flush=True)
                rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| model | arith | engine | images | " + " | ".join(f"T={t}" for t in STEPS)
             + " | spikes/sample @256 |", "|" + "---|" * (5 + len(STEPS))]
    for r in rows:
        for key, e in r["engines"].items():
            lines.append(f"| {r['model']} | {r['arith']} | {key} | {e['n']} | "
                         + " | ".join(f"{100 * e['accuracy'][t]:.1f}" for t in STEPS)
                         + f" | {e['spikes'][STEPS[-1]]:.0f} |")
    return "\n".join(lines)


def verdicts(rows: list[dict]) -> list[str]:
    """Fixed point: every engine identical on the common images; float: the largest
    accuracy difference between engines on the same images."""
    out = []
    for r in rows:
        e = r["engines"]
        pairs = [("new-eval", "new-numpy")] + ([("new-eval", "old")] if "old" in e else [])
        for a, b in pairs:
            if e[a]["n"] != e[b]["n"]:
                continue
            d = max(abs(e[a]["accuracy"][t] - e[b]["accuracy"][t]) for t in STEPS)
            s = max(abs(e[a]["spikes"][t] - e[b]["spikes"][t]) / max(1.0, e[b]["spikes"][t])
                    for t in STEPS)
            out.append(f"{r['model']} {r['arith']}: {a} vs {b}: max |accuracy diff| "
                       f"{100 * d:.2f} pp, max relative spike-count diff {s:.2e}"
                       + ("" if r["arith"] == "float" or (d == 0 and s == 0) else
                          "  <-- FIXED POINT MUST BE IDENTICAL"))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(ALL_MODELS))
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--old-n", type=int, default=1000,
                    help="images for the (slow) old runtime; 0: skip it")
    ap.add_argument("--old", default="b9ac7e1")
    ap.add_argument("--md", type=Path)
    args = ap.parse_args()
    models = [m for m in args.models.split(",") if m]
    ensure_models(models)
    rows = run(models, args.n, args.old_n, args.old)
    table = markdown(rows)
    print(table)
    for v in verdicts(rows):
        print(v)
    if args.md:
        args.md.write_text(table + "\n\n" + "\n".join(f"- {v}" for v in verdicts(rows))
                           + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
