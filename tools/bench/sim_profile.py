"""Where a simulated time step goes, next to where onnxruntime's ANN pass goes.

For one bench model (default settings, one thread, batch 100, T = --timesteps): the
simulator's time per sample per step in each op (what `snnc eval` runs), and onnxruntime's
time per sample in each node of the ANN (its profiler), side by side. This is the
evidence behind the speed ratios of sim_speed.py: a time step runs every synaptic op on
spikes and updates every neuron and max-pool window, where the ANN runs each layer once.

    python tools/bench/sim_profile.py [--model cnn_bn_max] [--timesteps 64]
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import data, ensure_models  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="cnn_bn_max")
    ap.add_argument("--timesteps", type=int, default=64)
    ap.add_argument("--batch", type=int, default=100)
    args = ap.parse_args()
    if os.environ.get("OPENBLAS_NUM_THREADS") != "1":  # one thread everywhere
        os.environ.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        os.execv(sys.executable, [sys.executable, *sys.argv])
    import onnxruntime as ort
    from snnc.backends.sim import accelerated, network, runtime
    from snnc.driver import compile_model

    path = ensure_models([args.model])[args.model]
    x, _ = data("test")
    xb = np.ascontiguousarray(x[:args.batch], np.float32)
    calib, _ = data("calib")
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "c.npz", x=calib)
        graph = compile_model(path, None, calib=Path(tmp) / "c.npz").graph
    net = network(graph, accelerated())
    spent: dict[str, float] = collections.defaultdict(float)

    def timed(name: str, fn):
        def run(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[name] += time.perf_counter() - t0
        return run

    kinds = {op["name"]: op["kind"] for op in net.ops}
    for table in (net._linear, net._step):
        for name, fn in list(table.items()):
            table[name] = timed(f"{kinds[name]} {name}", fn)
    for op in net.ops:  # the table's own step kernels, where no provider replaced them
        k = runtime.KERNELS[op["kind"]]
        if k.step is not None and op["name"] not in net._step:
            net._step[op["name"]] = timed(f"{op['kind']} {op['name']}", k.step)
    net.simulate(xb, 8)
    spent.clear()
    t0 = time.perf_counter()
    net.simulate(xb, args.timesteps)
    total = time.perf_counter() - t0
    per = args.batch * args.timesteps
    print(f"{args.model}: simulator, one thread, batch {args.batch}, T={args.timesteps} "
          "(us per sample per step)")
    for name, sec in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"  {name:40s} {sec / per * 1e6:8.2f}")
    print(f"  {'(runtime bookkeeping)':40s} {(total - sum(spent.values())) / per * 1e6:8.2f}")
    print(f"  {'total':40s} {total / per * 1e6:8.2f}")

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.enable_profiling = True
    so.profile_file_prefix = str(Path(tempfile.gettempdir()) / "snnc_ort_profile")
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: xb}
    for _ in range(20):
        sess.run(None, feed)
    prof = Path(sess.end_profiling())
    nodes: dict[str, list[float]] = collections.defaultdict(list)
    for e in json.loads(prof.read_text()):
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            nodes[f"{e['args'].get('op_name')} {e['name'][:-12]}"].append(e["dur"])
    prof.unlink()
    print(f"{args.model}: onnxruntime ANN, one thread, batch {args.batch} (us per sample, "
          "median node time)")
    total = 0.0
    for name, durs in nodes.items():
        med = sorted(durs)[len(durs) // 2] / args.batch
        total += med
        print(f"  {name:40s} {med:8.2f}")
    print(f"  {'total':40s} {total:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
