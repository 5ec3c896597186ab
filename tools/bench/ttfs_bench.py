"""Temporal coding (issue 17): accuracy of TTFS conversion against the ANN for several
leak constants L, and the operation counts of TDSNN's Table 2 next to the rate-coded
SNN's SynOps.

    python tools/bench/ttfs_bench.py [--models mlp,cnn_avg,cnn_bn_max,lenet,lenet_g5]
                                     [--leaks 2,3,5,8,16] [--md FILE]

Networks: the mnist5k models of tools/train_mnist.py. mlp, cnn_avg, cnn_bn_max and lenet
are trained with plain ReLU and converted with `snnc M.onnx -o OUT --calib
mnist_calib.npz --coding ttfs --leak L` (offset compensation, default flags) for every
L; lenet_g5 is the same LeNet retrained with G(x) gates (L = 5, the paper's recipe) and
converted at its own L. Each is evaluated by `snnc eval` on the test split (1,000
digits) at the network's own length (its decision step); the ANN accuracy is
onnxruntime's on the ONNX model (for lenet_g5: the network with its gates).

Operation counts per inference, counted as TDSNN's Table 2 does:
  ANN: multiplications = MACs; additions = MACs (accumulations) + max-pool comparisons
       (window - 1 per output).
  SNN: additions = every spike times its fan-out (SynOps, the encoder's spikes included)
       + one tick per neuron per step between its release and its spike + one bias
       addition per neuron with a bias + the temporal max-pool's counting (one per input
       of each window); multiplications = the leak, one per neuron per step from the
       first step an input can reach it to its spike (the readout: to the decision).
The rate-coded SNN (default flags) is compiled too, and its SynOps are given at the
smallest T in 8..256 where it is within 0.1 pp of the ANN.
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import MODELS_DIR, ensure_models  # noqa: E402

RATE_T = [8, 16, 32, 64, 128, 256]


def ann_ops(model_path: Path) -> tuple[int, int]:
    """(multiplications, additions) of one ANN inference."""
    from snnc.frontend import import_model, load_model
    from snnc.ir import ops as O
    from snnc.report import layer_table

    g = import_model(load_model(model_path)).graph
    macs = sum(r["macs"] for r in layer_table(g))
    comps = sum(math.prod(g.shape(op.out)) * (op.kernel[0] * op.kernel[1] - 1)
                for op in g.ops if isinstance(op, O.MaxPool))
    return macs, macs + comps


def snn_ops(out: Path, res: dict) -> tuple[float, float]:
    """(multiplications, additions) per inference of a TTFS network from its eval."""
    from snnc.driver import load_graph
    from snnc.ir import ops as O

    g = load_graph(out)
    row = res["snn"][-1]
    by = {la["layer"]: la for la in res["ttfs"]["layers"]}
    add, mult = float(row["synops_per_sample"]), 0.0
    for op in g.ops:
        if isinstance(op, O.TTFSNeuron):
            la, n = by[op.name], math.prod(g.shape(op.out))
            mean = la["mean_spike_step"]
            mult += n * (mean - la["inputs_from_step"] + 1)  # leak per active step
            add += n * max(0.0, mean - op.release)  # ticks after release
            add += n if op.bias is not None else 0
        elif isinstance(op, O.TTFSMaxPool):
            add += math.prod(g.shape(op.out)) * op.kernel[0] * op.kernel[1]
        elif isinstance(op, O.TTFSReadout):
            n = math.prod(g.shape(op.out))
            mult += n * (op.release - op.ref + 1)
            add += n if op.bias is not None else 0
    return mult, add


def main() -> int:
    from snnc.driver import Options, compile_model, evaluate, load_graph

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="mlp,cnn_avg,cnn_bn_max,lenet,lenet_g5")
    ap.add_argument("--leaks", default="2,3,5,8,16")
    ap.add_argument("--md", metavar="FILE", help="also write the tables as markdown")
    args = ap.parse_args()
    models = [m for m in args.models.split(",") if m]
    leaks = [float(v) for v in args.leaks.split(",")]
    paths = ensure_models(models)
    calib, test = MODELS_DIR / "mnist_calib.npz", MODELS_DIR / "mnist_test.npz"
    acc_rows, op_rows = [], []
    with tempfile.TemporaryDirectory() as tmpd:
        tmp = Path(tmpd)
        for m in models:
            gated = any(n.op_type == "Ceil" for n in onnx.load(paths[m]).graph.node)
            for L in ([5.0] if gated else leaks):  # a gated network runs at its own L
                out = tmp / f"{m}_{L}"
                compile_model(paths[m], out, calib=calib, options=Options(coding="ttfs",
                                                                          leak=L))
                steps = int(load_graph(out).meta["timesteps"])
                res = evaluate(out, test, [steps], diagnose=False)
                r = res["snn"][0]
                acc_rows.append([m, f"{L:g}", f"{100 * res['ann_accuracy']:.2f}",
                                 f"{100 * r['accuracy']:.2f}",
                                 f"{100 * (res['ann_accuracy'] - r['accuracy']):+.2f}",
                                 steps, f"{r['spikes_per_sample']:.0f}",
                                 f"{r['spikes_per_neuron']:g}"])
                print(" ".join(map(str, acc_rows[-1])), flush=True)
                if L == 5.0:
                    am, aa = ann_ops(paths[m])
                    sm, sa = snn_ops(out, res)
                    rr = hit = None
                    if not gated:  # G(x) has no rate-coded form
                        rate_out = tmp / f"{m}_rate"
                        compile_model(paths[m], rate_out, calib=calib)
                        rr = evaluate(rate_out, test, RATE_T, diagnose=False)
                        hit = next((e for e in rr["snn"]
                                    if e["accuracy"] >= rr["ann_accuracy"] - 0.001), None)
                    op_rows.append([
                        m, f"{am / 1e3:.0f}k", f"{aa / 1e3:.0f}k", f"{sm / 1e3:.0f}k",
                        f"{sa / 1e3:.0f}k", f"{am / sm:.2f}x", f"{aa / sa:.2f}x",
                        f"{(am + aa) / (sm + sa):.2f}x",
                        "- (G(x) has no rate form)" if rr is None else
                        f"T={hit['timesteps']}: {hit['synops_per_sample'] / 1e3:.0f}k"
                        if hit else
                        f"not by T={RATE_T[-1]} ({100 * rr['snn'][-1]['accuracy']:.2f} %: "
                        f"{rr['snn'][-1]['synops_per_sample'] / 1e3:.0f}k)"])
                    print(" ".join(map(str, op_rows[-1])), flush=True)
    from snnc.report import format_table

    head_a = ["model", "L", "ANN %", "TTFS %", "loss pp", "decision steps",
              "spikes/sample", "spikes/neuron (max)"]
    head_o = ["model", "ANN mult", "ANN add", "SNN mult", "SNN add", "mult ANN/SNN",
              "add ANN/SNN", "total ANN/SNN", "rate SNN SynOps within 0.1 pp"]
    print(format_table(head_a, acc_rows))
    print()
    print(format_table(head_o, op_rows))
    if args.md:
        def md(head, rows):
            return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
                             + ["| " + " | ".join(map(str, r)) + " |" for r in rows])
        Path(args.md).write_text(md(head_a, acc_rows) + "\n\n" + md(head_o, op_rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
