"""Issue 4's C backend numbers: exactness, accuracy, latency vs onnxruntime, RAM, heap, M4.

For each trained model (tools/train_mnist.py, cached in build/models) and each arithmetic
(float32, fixed point), on the mnist5k test split (1000 images) at T time steps:
  * exactness: the generated main_example (gcc -O2) traces every step of every image;
    the NumPy simulator of the same compiled network (same arithmetic) records the same
    quantities. Reported: the fraction of (image, step, IF layer) spike counts that are
    identical and of (image, step) output vectors that are identical (fixed point must be
    100% / 100%), and the final-step accuracy of both;
  * latency: a timing harness (below) runs reset + T steps per image over all images,
    compiled with gcc -O2 (and, for information, -O2 -march=native), wall clock inside the
    process, divided by N*T; onnxruntime runs the ANN one image at a time
    (intra_op_num_threads=1, batch 1) over the same images. Both are measured in the same
    process run, interleaved over ROUNDS rounds; the ratio is the median of the per-round
    ratios (the issue's target: <= 1.0);
  * RAM (context struct = neuron state + spike buffers + current buffers + the rest, from
    footprint.json, checked against sizeof in tests), and a static no-heap check: the
    undefined symbols of the network's object files (only memset/memcpy/memmove);
  * flash: weights, and Cortex-M4 code/weights from arm-none-eabi-size when installed.

    python tools/bench/c_backend.py [--models mlp,cnn_avg,cnn_clip,cnn_bn_max]
        [--timesteps 32] [--n 1000] [--md tools/bench/results_c_backend.md]
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import MODELS_DIR, ROOT, data, ensure_models
from snnc.backends.sim import network, runtime
from snnc.driver import Options, compile_model, load
from snnc.frontend import import_model, load_model
from snnc.report import layer_table

MODELS = ["mlp", "cnn_avg", "cnn_clip", "cnn_bn_max"]
ROUNDS = 5
#: <string.h> (memmove: where the compiler turns a copy loop into one)
ALLOWED_EXTERNALS = {"memset", "memcpy", "memmove"}

#: timing harness: no I/O inside the timed loop; prints the class of every image
HARNESS = r"""#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "NAME.h"
static NAME_input_t xs[NSAMP][NAME_INPUT_SIZE];
static NAME_ctx ctx;
static int cls[NSAMP];
int main(int argc, char **argv)
{
    FILE *f = fopen(argv[1], "rb");
    int n, t, s, k, T = atoi(argv[2]);
    struct timespec a, b;
    if (f == NULL) {
        return 1;
    }
    n = (int)fread(xs, sizeof xs[0], NSAMP, f);
    fclose(f);
    NAME_init(&ctx);
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (s = 0; s < n; ++s) {
        const NAME_output_t *y;
        NAME_reset(&ctx, xs[s], (uint32_t)s);
        for (t = 0; t < T; ++t) {
            NAME_step(&ctx);
        }
        y = NAME_output(&ctx);
        cls[s] = 0;
        for (k = 1; k < NAME_OUTPUT_SIZE; ++k) {
            if (y[k] > y[cls[s]]) {
                cls[s] = k;
            }
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    for (s = 0; s < n; ++s) {
        printf("%d\n", cls[s]);
    }
    fprintf(stderr, "%.17g\n", ((double)(b.tv_sec - a.tv_sec) * 1e9
                                + (double)(b.tv_nsec - a.tv_nsec)) / 1e3 / n / T);
    return 0;
}
"""


def _name(c: Path) -> str:
    return next(c.glob("*_weights.c")).name[:-len("_weights.c")]


def _inputs(out: Path, x: np.ndarray, fixed: bool) -> Path:
    g = load(out)
    xi = (runtime.quantize_input(x, g.meta["fixed_point"]["input_bits"]) if fixed
          else x.astype(np.float32))
    path = out / "c" / "bench_in.bin"
    path.write_bytes(np.ascontiguousarray(xi).tobytes())
    return path


def trace_c(out: Path, inp: Path, n: int, steps: int, fixed: bool
            ) -> tuple[np.ndarray, np.ndarray]:
    """main_example (gcc -O2) with TRACE=1: outputs (T, N, K) and spikes (T, N, L)."""
    c = out / "c"
    name = _name(c)
    exe = c / "bench_example"
    subprocess.run(["gcc", "-std=c99", "-O2", "-o", str(exe), str(c / "main_example.c"),
                    str(c / f"{name}.c"), str(c / f"{name}_weights.c")], check=True)
    r = subprocess.run([str(exe), str(inp), str(steps), "1"], capture_output=True,
                       text=True, check=True)
    rows = [ln.split() for ln in r.stdout.splitlines()]
    assert len(rows) == n * steps, (len(rows), n * steps)
    i, j = rows[0].index("spikes"), rows[0].index("out")
    outs = np.zeros((steps, n, len(rows[0]) - j - 1), np.int64 if fixed else np.float64)
    spk = np.zeros((steps, n, j - i - 1), np.int64)
    for f in rows:
        s, t = int(f[1]), int(f[3]) - 1
        spk[t, s] = [int(v) for v in f[i + 1:j]]
        outs[t, s] = [int(v) if fixed else float(v) for v in f[j + 1:]]
    return outs, spk


def trace_sim(out: Path, x: np.ndarray, steps: int
              ) -> tuple[np.ndarray, np.ndarray, float]:
    """The simulator's outputs (T, N, K), spikes per IF layer (T, N, L) and SynOps per
    image per step."""
    g = load(out)
    net = network(g)
    names = [op.name for op in g.ops if op.kind == "if"]
    outs = []
    synops = 0.0
    spk = np.zeros((steps, len(x), len(names)), np.int64)
    for off in range(0, len(x), 100):
        xb = x[off:off + 100]

        def rec(name: str, t0: int, chunk: np.ndarray, off: int = off, nb: int = len(xb)
                ) -> None:
            if name in names:
                spk[t0:t0 + len(chunk), off:off + nb, names.index(name)] = chunk.reshape(
                    len(chunk), nb, -1).sum(axis=-1)

        tr = net.simulate(xb, steps, sample_offset=off, record=rec)
        outs.append(tr["output"].reshape(steps, len(xb), -1))
        synops += float(tr["synops"].sum())
    return np.concatenate(outs, axis=1), spk, synops / (len(x) * steps)


def build_harness(out: Path, n: int, flags: list[str], tag: str) -> Path:
    c = out / "c"
    name = _name(c)
    src = c / "bench_harness.c"
    src.write_text(HARNESS.replace("NAME", name).replace("NSAMP", str(n)))
    exe = c / f"bench_harness_{tag}"
    subprocess.run(["gcc", "-std=c99", *flags, "-o", str(exe), str(src), str(c / f"{name}.c"),
                    str(c / f"{name}_weights.c")], check=True)
    return exe


def time_c(exe: Path, inp: Path, steps: int) -> tuple[float, np.ndarray]:
    r = subprocess.run([str(exe), str(inp), str(steps)], capture_output=True, text=True,
                       check=True)
    return float(r.stderr), np.array([int(v) for v in r.stdout.split()])


def ort_session(path: Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def time_ort(sess: ort.InferenceSession, x: np.ndarray) -> float:
    """Microseconds per image, one image per run() call."""
    name = sess.get_inputs()[0].name
    t0 = time.perf_counter()
    for i in range(len(x)):
        sess.run(None, {name: x[i:i + 1]})
    return (time.perf_counter() - t0) / len(x) * 1e6


def externals(out: Path) -> list[str]:
    """Undefined symbols of the network's object files (what it needs from libc)."""
    c = out / "c"
    name = _name(c)
    undefined: set[str] = set()
    defined: set[str] = set()
    for src in (f"{name}.c", f"{name}_weights.c"):
        obj = c / (src + ".o")
        subprocess.run(["gcc", "-std=c99", "-O2", "-c", "-o", str(obj), str(c / src)],
                       check=True)
        for flag, into in (("-u", undefined), ("--defined-only", defined)):
            r = subprocess.run(["nm", flag, str(obj)], capture_output=True, text=True,
                               check=True)
            into |= {ln.split()[-1] for ln in r.stdout.splitlines() if ln.strip()}
    return sorted(undefined - defined)


def measure(model: str, path: Path, calib: Path, x: np.ndarray, y: np.ndarray, steps: int,
            arith: str, tmp: Path) -> dict:
    out = tmp / f"{model}_{arith}"
    fixed = arith == "fixed"
    compile_model(path, out, calib=calib, options=Options(arith=arith, timesteps=steps,
                                                          backends=("sim", "c")))
    inp = _inputs(out, x, fixed)
    c_out, c_spk = trace_c(out, inp, len(x), steps, fixed)
    s_out, s_spk, synops = trace_sim(out, x, steps)
    res = {"model": model, "arith": arith, "timesteps": steps, "n": len(x),
           "spikes_identical": float((c_spk == s_spk).mean()),
           "outputs_identical": float((c_out == s_out).all(axis=-1).mean()),
           "acc_sim": float((s_out[-1].argmax(-1) == y).mean()),
           "acc_c": float((c_out[-1].argmax(-1) == y).mean()),
           "spikes_per_image": float(s_spk.sum() / len(x)),
           "synops_per_step": synops,
           "ann_macs": sum(r["macs"] for r in layer_table(import_model(load_model(path)).graph))}
    if not fixed:
        scale = float(np.abs(s_out).max())
        res["max_output_error_rel"] = float(np.abs(c_out - s_out).max() / scale)
    # latency, interleaved with onnxruntime
    exe = build_harness(out, len(x), ["-O2"], "o2")
    exe_native = build_harness(out, len(x), ["-O2", "-march=native"], "native")
    sess = ort_session(path)
    xf = x.astype(np.float32)
    time_ort(sess, xf[:50])  # warm-up
    c_us, nat_us, ort_us = [], [], []
    for _ in range(ROUNDS):
        us, cls = time_c(exe, inp, steps)
        assert (cls == c_out[-1].argmax(-1)).all()
        c_us.append(us)
        nat_us.append(time_c(exe_native, inp, steps)[0])
        ort_us.append(time_ort(sess, xf))
    res.update(c_us_per_step=statistics.median(c_us),
               c_native_us_per_step=statistics.median(nat_us),
               ort_us_per_image=statistics.median(ort_us),
               ratio=statistics.median(a / b for a, b in zip(c_us, ort_us)),
               ratio_native=statistics.median(a / b for a, b in zip(nat_us, ort_us)))
    fp = json.loads((out / "c" / "footprint.json").read_text())["total"]
    res["footprint"] = fp
    res["externals"] = externals(out)
    return res


def table(rows: list[dict]) -> str:
    head = ("| model | arith | sim acc | C acc | spike counts identical | outputs identical "
            "| SynOps/step | ANN MACs | C us/step (-O2) | ORT us/image | ratio | "
            "ratio -march=native |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['arith']} | {100 * r['acc_sim']:.1f} | "
            f"{100 * r['acc_c']:.1f} | {100 * r['spikes_identical']:.2f}% | "
            f"{100 * r['outputs_identical']:.2f}% | {r['synops_per_step'] / 1e3:.0f}k | "
            f"{r['ann_macs'] / 1e3:.0f}k | {r['c_us_per_step']:.1f} | "
            f"{r['ort_us_per_image']:.1f} | {r['ratio']:.2f} | {r['ratio_native']:.2f} |")
    lines += ["", "| model | arith | RAM total | neuron state | spike buffers | "
              "current buffers | input, constants, readout | heap (undefined symbols) | "
              "flash weights | Cortex-M4 code | Cortex-M4 weights |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        fp = r["footprint"]
        m4 = fp.get("cortex_m4") or {}
        heap = ("none (" + ", ".join(r["externals"]) + ")"
                if set(r["externals"]) <= ALLOWED_EXTERNALS else
                "CHECK: " + ", ".join(r["externals"]))
        lines.append(
            f"| {r['model']} | {r['arith']} | {fp['ram_ctx_bytes']} | {fp['ram_state_bytes']} "
            f"| {fp['ram_spike_buffer_bytes']} | {fp['ram_current_buffer_bytes']} | "
            f"{fp['ram_other_bytes']} | {heap} | {fp['flash_weights_bytes']} | "
            f"{m4.get('code_bytes', 'n/a')} | {m4.get('weights_bytes', 'n/a')} |")
    return "\n".join(lines)


def checks(rows: list[dict]) -> list[str]:
    out = []
    by = {(r["model"], r["arith"]): r for r in rows}
    for r in rows:
        if r["arith"] == "fixed":
            ok = r["spikes_identical"] == 1.0 and r["outputs_identical"] == 1.0
            out.append(f"- {'PASS' if ok else 'MISS'} {r['model']}: fixed-point C equals the "
                       f"simulator on every image, step and layer "
                       f"({100 * r['spikes_identical']:.2f}% spike counts, "
                       f"{100 * r['outputs_identical']:.2f}% outputs)")
            fl = by.get((r["model"], "float"))
            if fl:
                gap = 100 * (fl["acc_sim"] - r["acc_sim"])
                out.append(f"- {'PASS' if gap <= 0.2 + 1e-9 else 'MISS'} {r['model']}: fixed "
                           f"point {100 * r['acc_sim']:.1f}% vs float simulator "
                           f"{100 * fl['acc_sim']:.1f}% (gap {gap:+.1f} pp, target <= 0.2)")
        ok = r["ratio"] <= 1.0
        out.append(f"- {'PASS' if ok else 'MISS'} {r['model']} {r['arith']}: C per step / ORT "
                   f"per image = {r['ratio']:.2f} at -O2 ({r['ratio_native']:.2f} with "
                   "-march=native; target <= 1.0)")
        if not set(r["externals"]) <= ALLOWED_EXTERNALS:
            out.append(f"- MISS {r['model']} {r['arith']}: externals {r['externals']}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--timesteps", type=int, default=32)
    ap.add_argument("--n", type=int, default=1000, help="test images (default: all 1000)")
    ap.add_argument("--md", type=Path, help="also write the report here (markdown)")
    ap.add_argument("--json", type=Path, default=ROOT / "build" / "bench" / "c_backend.json")
    args = ap.parse_args()
    if shutil.which("gcc") is None:
        print("gcc is required", file=sys.stderr)
        return 2
    names = args.models.split(",")
    paths = ensure_models(names)
    x, y = data("test")
    x, y = x[:args.n], y[:args.n]
    calib = MODELS_DIR / "mnist_calib.npz"
    rows = []
    with tempfile.TemporaryDirectory(prefix="snnc-bench-c-") as tmp:
        for m in names:
            for arith in ("float", "fixed"):
                t0 = time.perf_counter()
                rows.append(measure(m, paths[m], calib, x, y, args.timesteps, arith,
                                    Path(tmp)))
                print(f"[{m} {arith}: {time.perf_counter() - t0:.0f} s]", file=sys.stderr,
                      flush=True)
    cpu = next((ln.split(":", 1)[1].strip() for ln in
                Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    cmd = (f"python tools/bench/c_backend.py --models {args.models} --timesteps "
           f"{args.timesteps} --n {args.n}")
    gcc = subprocess.run(["gcc", "--version"], capture_output=True,
                         text=True).stdout.splitlines()[0]
    text = "\n".join([
        f"# C backend: {len(x)} mnist5k test images, T = {args.timesteps}", "",
        f"Command: `{cmd}` ({cpu}, onnxruntime {ort.__version__}, "
        f"{gcc}).",
        "Times: medians of " + str(ROUNDS) + " interleaved rounds; C = reset + T steps per "
        "image, per step; ORT = the ANN, one image per call, one thread.", "",
        table(rows), "", *checks(rows), "",
        "Reading the latency ratio: a step of the C code costs about its SynOps (every "
        "spike adds a weight column: a load, an add and a store per synapse, 4 floats or "
        "int32 wide with SSE2 at -O2), an image of onnxruntime costs the ANN's MACs in "
        "GEMM kernels that use FMA and the widest vectors the CPU has (dispatched at run "
        "time). A step also updates every neuron, selects every max-pool window and scans "
        "every spike buffer, whatever the activity (measured with perf: about 45% of a "
        "step of cnn_bn_max, 12% of cnn_clip). "
        "The step beats the image where SynOps per step are a small fraction of the MACs "
        "and the neurons few (the MLP); on the CNNs at T = 32 (SynOps per step 24-74% of "
        "the MACs, 11k-19k neurons) it costs about as much as the image or more. Float "
        "outputs are not bit-identical (the C sums in another order than NumPy's BLAS); "
        "the spike-count and accuracy columns show what that changes.", ""])
    print(text)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=1))
    if args.md:
        args.md.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
