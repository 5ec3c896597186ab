"""Placement on neuromorphic targets (issue 16): cores used against the lower bound,
hop-weighted traffic against a naive in-order placement on the same slices, placement
time, and an independent check of every core against the target's limits.

Each network is compiled once (sim backend, with calibration data), then placed on
every preset by `snnc.driver.place` (what `snnc place OUT --target T` runs), timed in
process; the placement is then re-checked by `snnc.backends.place.check` (independent of
the partitioner) and its report compared with the recomputed numbers.

    python tools/bench/place_bench.py                      # mnist5k models x presets
    python tools/bench/place_bench.py --zoo                # + VGG-19 / ResNet-50
    python tools/bench/place_bench.py --models cnn_avg --targets loihi1

Networks: the trained mnist5k models of tools/train_mnist.py (rates measured on 64
calibration images), and the onnx package's VGG-19 and ResNet-50 (weights materialized
as in tools/bench/compile_zoo.py from 2 random inputs; placed without simulated rates,
i.e. every neuron weighs one spike per step: the resource numbers are the
architecture's, the traffic is per-synapse-path, not measured).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import MODELS_DIR, ensure_models  # noqa: E402

MNIST = ["mlp", "cnn_avg", "cnn_bn_max", "cnn_clip", "resnet", "cnn_big"]
#: zoo network -> the presets the issue names it for (loihi2: VGG-19's numbers where
#: loihi1 refuses it)
ZOO = {"light_vgg19": ["loihi1", "loihi2"],
       "light_resnet50": ["spinnaker1", "spinnaker1@57600", "loihi2"]}
#: a preset on a larger machine: NAME@CHIPS (a square-ish chip grid of CHIPS chips; the
#: full SpiNNaker 1 machine is 57,600 chips)


def machine(name: str, tmp: Path) -> str:
    """NAME or NAME@CHIPS: the preset, or a copy of it with CHIPS chips (written to
    tmp, returned as a path)."""
    if "@" not in name:
        return name
    from snnc.backends.place.targets import PRESET_DIR

    base, chips = name.split("@")
    d = json.loads((PRESET_DIR / f"{base}.json").read_text())
    m = d["mesh"]
    cw, ch = m["chip_routers"]
    gx = int(np.ceil(np.sqrt(int(chips))))
    gy = -(-int(chips) // gx)
    m["routers"] = [gx * cw, gy * ch]
    m["chips"] = {"value": int(chips), "src": "U", "status": "user"}
    d["sources"]["U"] = "a setting of this benchmark, not a published number"
    d["name"] = name
    path = tmp / f"{base}_{chips}.json"
    path.write_text(json.dumps(d))
    return str(path)


def compile_mnist(name: str, out: Path) -> Path:
    from snnc.driver import compile_model

    path = ensure_models([name])[name]
    compile_model(path, out, calib=MODELS_DIR / "mnist_calib.npz")
    return MODELS_DIR / "mnist_calib.npz"


def compile_zoo(name: str, out: Path, tmp: Path) -> Path:
    from snnc.driver import compile_model

    light = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
    m = onnx.load(light / f"{name}.onnx")
    inits = {i.name for i in m.graph.initializer}
    inp = next(i for i in m.graph.input if i.name not in inits)
    shape = [d.dim_value for d in inp.type.tensor_type.shape.dim][1:]
    x = np.random.default_rng(0).random((2, *shape), np.float32)
    calib = tmp / f"{name}_calib.npz"
    np.savez(calib, x=x)
    compile_model(light / f"{name}.onnx", out, calib=calib)
    return calib


def place_one(out: Path, target: str, calib: Path | None, check: bool) -> dict:
    from snnc.backends.place import check as C
    from snnc.backends.place import load_target
    from snnc.driver import load_graph, place
    from snnc.ir.errors import SnncError

    t0 = time.perf_counter()
    try:
        res = place(out, target, calib=calib, seed=0)
    except SnncError as e:
        return {"status": "refused", "error": str(e).splitlines()[0],
                "seconds": time.perf_counter() - t0}
    dt = time.perf_counter() - t0
    s = res["summary"]
    row = {"status": "placed", "seconds": dt, **s}
    if check:
        graph = load_graph(out)
        placement = json.loads((out / "place" / "placement.json").read_text())
        with open(out / "place" / "report.csv") as f:
            rows = list(csv.DictReader(f))
        C.check(graph, load_target(target), placement, rows)
        row["checked"] = "ok"
    return row


def main() -> int:
    from snnc.backends.place import preset_names

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MNIST))
    ap.add_argument("--targets", default=",".join(preset_names()))
    ap.add_argument("--zoo", action="store_true",
                    help="also VGG-19 on loihi1 / loihi2 and ResNet-50 on spinnaker1 / loihi2")
    ap.add_argument("--zoo-targets", default="",
                    help="place the zoo models on these presets too (comma-separated)")
    ap.add_argument("--no-check", action="store_true",
                    help="skip the independent check (slow on VGG-19)")
    ap.add_argument("--json", metavar="FILE", help="write every row as JSON")
    args = ap.parse_args()
    rows = []
    head = (f"{'network':16s} {'target':13s} {'cores':>6s} {'bound':>6s} {'ratio':>6s} "
            f"{'hop/in-order':>12s} {'mean hops':>9s} {'place s':>8s} {'check':>6s}")
    print(head)
    with tempfile.TemporaryDirectory() as tmpd:
        tmp = Path(tmpd)
        jobs = []
        for m in [x for x in args.models.split(",") if x]:
            jobs.append((m, None, args.targets.split(",")))
        if args.zoo:
            for z, ts in ZOO.items():
                extra = [x for x in args.zoo_targets.split(",") if x and x not in ts]
                jobs.append((z, "zoo", ts + extra))
        for name, kind, targets in jobs:
            out = tmp / name
            # zoo: random weights, so no simulated rates (VGG-19 at 224x224 would take
            # minutes to simulate for traffic that means nothing)
            calib = None if kind else compile_mnist(name, out)
            if kind:
                compile_zoo(name, out, tmp)
            for t in targets:
                r = place_one(out, machine(t, tmp), calib, not args.no_check)
                r.update(network=name, target_name=t)
                rows.append(r)
                if r["status"] != "placed":
                    print(f"{name:16s} {t:13s} refused ({r['seconds']:.1f} s): {r['error']}")
                    continue
                hv = r["hop_traffic_vs_in_order"]
                print(f"{name:16s} {t:13s} {r['cores_used']:6d} {r['cores_lower_bound']:6d} "
                      f"{r['cores_over_bound']:6.2f} {'-' if hv is None else f'{hv:.3f}':>12s} "
                      f"{r['mean_hops']:9.2f} {r['seconds']:8.1f} "
                      f"{r.get('checked', '-'):>6s}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
