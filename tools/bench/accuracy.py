"""Accuracy table: ANN (onnxruntime) vs converted SNN at T = 8..256 on the mnist5k test split.

For each trained model (tools/train_mnist.py, cached in build/models) and each
normalization, compiles with the `snnc` CLI and evaluates with `snnc eval --json`, exactly
as a user would, and prints one markdown table (also written with --md FILE).

    python tools/bench/accuracy.py [--models mlp,cnn_avg,cnn_bn_max]
                                   [--norms max,percentile:99.9] [--md FILE]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import MODELS, MODELS_DIR, ensure_models
from snnc.cli import main as snnc

STEPS = [8, 16, 32, 64, 128, 256]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--norms", default="max,percentile:99.9")
    ap.add_argument("--timesteps", default=",".join(map(str, STEPS)))
    ap.add_argument("--md", help="also write the table to this markdown file")
    args = ap.parse_args()
    paths = ensure_models(args.models.split(","))
    steps = [int(t) for t in args.timesteps.split(",")]
    head = ("| model | norm | ANN | " + " | ".join(f"T={t}" for t in steps)
            + " | spikes/sample @T=128 | SynOps/sample @T=128 |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, path in paths.items():
        for norm in args.norms.split(","):
            with tempfile.TemporaryDirectory() as tmp:
                out, js = Path(tmp) / "out", Path(tmp) / "r.json"
                rc = snnc([str(path), "-o", str(out), "--calib",
                           str(MODELS_DIR / "mnist_calib.npz"), "--norm", norm])
                rc = rc or snnc(["eval", str(out), "--data", str(MODELS_DIR / "mnist_test.npz"),
                                 "--timesteps", ",".join(map(str, steps)), "--json", str(js)])
                if rc:
                    return rc
                r = json.loads(js.read_text())
            by_t = {row["timesteps"]: row for row in r["snn"]}
            ref = by_t.get(128, r["snn"][-1])
            lines.append(f"| {name} | {norm} | {100 * r['ann_accuracy']:.1f} | "
                         + " | ".join(f"{100 * by_t[t]['accuracy']:.1f}" for t in steps)
                         + f" | {ref['spikes_per_sample']:.0f} | {ref['synops_per_sample']:.0f} |")
    table = "\n".join(lines)
    print(table)
    if args.md:
        Path(args.md).write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
