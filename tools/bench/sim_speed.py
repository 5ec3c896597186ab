"""Simulator speed, side by side in one process per model.

For every bench model (default settings, percentile:99.9), with the same number of threads
for everything (`--threads`, default 1: onnxruntime's intra-op threads, BLAS threads,
torch threads, the simulator's kernels):

    ratio = simulator seconds per sample per time step / onnxruntime ANN seconds per sample

at batch 100 and T = --timesteps. Rounds are interleaved (ANN, then each engine, repeated
--rounds times; medians), because this machine's timings drift by +-30 % over minutes.

Engines:
  eval     what `snnc eval` runs: the runtime with its accelerated kernels
  ort      the runtime with onnxruntime's kernels only (no native kernels)
  numpy    the standalone OUT/snn_runtime.py path (numpy only)
  old      the runtime of an earlier snnc (--old REV, read with `git show`)
  sj       SpikingJelly 2.0 on the same weights (its 99.9% recipe, as
           tools/bench/spikingjelly_ref.py converts it), single-step (SJ's ann2snn
           default) and multi-step mode; the faster is reported. Needs torch and
           `pip install --no-deps spikingjelly`.

    python tools/bench/sim_speed.py [--models mlp,cnn_bn_max] [--engines eval,numpy,sj]
        [--timesteps 64] [--threads 1] [--rounds 5] [--json FILE] [--md FILE]

Each model runs in a fresh process (BLAS threads are fixed at numpy's import).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import MODELS_DIR, ROOT, data, ensure_models  # noqa: E402

ALL_MODELS = ["mlp", "cnn_avg", "cnn_bn_max", "cnn_clip", "resnet", "cnn_big"]
ENGINES = ["eval", "ort", "numpy", "old", "sj"]


def _old_runtime(rev: str) -> Any:
    """The runtime module of snnc at git revision `rev` (numpy only, self-contained)."""
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:backends/sim/runtime.py"],
                         capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "old_runtime.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("old_runtime", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _sj_runners(name: str, x: np.ndarray, steps: int, threads: int) -> dict[str, Any]:
    """SpikingJelly's converted network on the same weights: {mode: run()}."""
    bench = Path(__file__).resolve().parent
    spec = importlib.util.spec_from_file_location("sj_ref", bench / "spikingjelly_ref.py")
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    ref.NUM_THREADS = threads
    torch = ref.import_torch()
    torch.set_num_threads(threads)
    sj = ref.import_spikingjelly()
    train = ref.import_train_mnist()
    xt, yt = data("test")
    model, _, _ = ref.torch_model_from_onnx(name, train, xt.astype(np.float32),
                                            yt.astype(np.int64))
    calib, _ = data("calib")
    try:
        snn = ref.convert(sj, model, "99.9%", ref._batches(calib.astype(np.float32), 100))
    except ValueError as exc:  # SJ cannot convert Clip (torch.clamp) networks
        print(f"[{name}] SpikingJelly cannot convert it ({exc}); timing its "
              "clamp->relu variant (same layers and sizes)", file=sys.stderr)
        model = ref.clamp_to_relu(model)
        snn = ref.convert(sj, model, "99.9%", ref._batches(calib.astype(np.float32), 100))
    xb = torch.from_numpy(x)

    def single() -> None:
        with torch.no_grad():
            sj.functional.reset_net(snn)
            for _ in range(steps):
                snn(xb)

    runners = {"sj-single": single}
    try:
        multi = ref.convert(sj, model, "99.9%", ref._batches(calib.astype(np.float32), 100))
        sj.functional.set_step_mode(multi, "m")
        seq = xb.unsqueeze(0).repeat(steps, *([1] * xb.dim()))
        with torch.no_grad():
            sj.functional.reset_net(multi)
            multi(seq[:2])

        def multistep() -> None:
            with torch.no_grad():
                sj.functional.reset_net(multi)
                multi(seq)

        runners["sj-multi"] = multistep
    except Exception as exc:  # SJ's converted graph may refuse multi-step mode
        print(f"[{name}] SpikingJelly multi-step mode unavailable: {exc}", file=sys.stderr)
    return runners


def measure(name: str, engines: list[str], steps: int, batch: int, threads: int,
            rounds: int, old_rev: str) -> dict[str, Any]:
    """In this process: per-sample ANN time and per-sample-step engine times."""
    import onnxruntime as ort
    from snnc.backends.sim import accelerated, network
    from snnc.driver import compile_model

    path = MODELS_DIR / f"{name}.onnx"
    x, _ = data("test")
    xb = np.ascontiguousarray(x[:batch], np.float32)
    calib, _ = data("calib")
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "calib.npz", x=calib)
        res = compile_model(path, Path(tmp) / "out", calib=Path(tmp) / "calib.npz")
        out_dir = Path(tmp) / "out"
        graph = res.graph
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        feed = {sess.get_inputs()[0].name: xb}
        runs: dict[str, Any] = {}
        if "eval" in engines:
            net = network(graph, accelerated(), threads)
            runs["eval"] = lambda: net.simulate(xb, steps)
        if "ort" in engines:
            ortnet = network(graph, accelerated(native=False), threads)
            runs["ort"] = lambda: ortnet.simulate(xb, steps)
        if "numpy" in engines:
            plain = network(graph, None, threads)
            runs["numpy"] = lambda: plain.simulate(xb, steps)
        if "old" in engines:
            old = _old_runtime(old_rev).Network.load(str(out_dir))
            runs["old"] = lambda: old.simulate(xb, steps)
        if "sj" in engines:
            runs.update(_sj_runners(name, xb, steps, threads))
        sess.run(None, feed)
        for fn in runs.values():  # warm-up (sessions, caches, native build)
            fn()
        times: dict[str, list[float]] = {"ann": [], **{k: [] for k in runs}}
        for _ in range(rounds):
            for _ in range(5):
                t0 = time.perf_counter()
                sess.run(None, feed)
                times["ann"].append((time.perf_counter() - t0) / batch)
            for k, fn in runs.items():
                t0 = time.perf_counter()
                fn()
                times[k].append((time.perf_counter() - t0) / (batch * steps))
        med = {k: statistics.median(v) for k, v in times.items()}
        macs = res.report["ann_macs"]
    row = {"model": name, "ann_macs": macs, "threads": threads, "timesteps": steps,
           "batch": batch, "ann_us_per_sample": med["ann"] * 1e6,
           "engines": {k: {"us_per_sample_step": v * 1e6, "ratio": v / med["ann"]}
                       for k, v in med.items() if k != "ann"}}
    sj = [k for k in row["engines"] if k.startswith("sj-")]
    if sj:
        best = min(sj, key=lambda k: row["engines"][k]["us_per_sample_step"])
        row["engines"]["sj"] = dict(row["engines"][best], mode=best)
    return row


def markdown(rows: list[dict[str, Any]]) -> str:
    engines = [e for e in ENGINES if any(e in r["engines"] for r in rows)]
    head = ["model", "ANN MACs", "ORT us/sample"] + [
        f"{e} us/sample-step (ratio)" for e in engines]
    if "sj" in engines and "eval" in engines:
        head.append("SJ / eval")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["model"], f"{r['ann_macs'] / 1e6:.2f}M", f"{r['ann_us_per_sample']:.1f}"]
        for e in engines:
            v = r["engines"].get(e)
            cells.append("-" if v is None else
                         f"{v['us_per_sample_step']:.1f} ({v['ratio']:.2f})")
        if "sj" in engines and "eval" in engines:
            sj, ev = r["engines"].get("sj"), r["engines"].get("eval")
            cells.append("-" if not sj or not ev else
                         f"{sj['us_per_sample_step'] / ev['us_per_sample_step']:.1f}x")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(ALL_MODELS))
    ap.add_argument("--engines", default="eval,numpy")
    ap.add_argument("--timesteps", type=int, default=64)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--old", default="b9ac7e1", help="git revision for the 'old' engine")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--md", type=Path)
    ap.add_argument("--one", help=argparse.SUPPRESS)  # child process: measure one model
    args = ap.parse_args()
    engines = [e for e in args.engines.split(",") if e]
    bad = sorted(set(engines) - set(ENGINES))
    if bad:
        ap.error(f"unknown engines {bad}; choose from {ENGINES}")
    if args.one:
        row = measure(args.one, engines, args.timesteps, args.batch, args.threads,
                      args.rounds, args.old)
        print(json.dumps(row))
        return 0
    models = [m for m in args.models.split(",") if m]
    ensure_models(models)
    env = {**os.environ, **{k: str(args.threads) for k in (
        "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}}
    rows = []
    for m in models:
        cmd = [sys.executable, __file__, "--one", m, "--engines", ",".join(engines),
               "--timesteps", str(args.timesteps), "--batch", str(args.batch),
               "--threads", str(args.threads), "--rounds", str(args.rounds),
               "--old", args.old]
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if r.returncode != 0:
            print(r.stderr, file=sys.stderr)
            return 1
        rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
        print(f"[{m}] " + ", ".join(f"{k} {v['ratio']:.2f}x"
                                    for k, v in rows[-1]["engines"].items()),
              file=sys.stderr, flush=True)
    table = markdown(rows)
    print(f"threads={args.threads}, batch={args.batch}, T={args.timesteps}; "
          "ratio = simulator s per sample-step / onnxruntime ANN s per sample")
    print(table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    if args.md:
        args.md.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
