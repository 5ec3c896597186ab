"""NIR round trip: snnc's NIR export run in another simulator, against snnc's own.

For each bench model (build/models: mlp, cnn_avg, cnn_clip, resnet, cnn_bn_max): compile
with snnc (calibration: build/models/mnist_calib.npz), export with the NIR backend, read
the file back with nir.read, run it in norse for T steps on the first N test images
(build/models/mnist_test.npz) and compare with snnc's simulator: per spiking layer the
fraction of neurons (over all images) whose spike counts are identical and the total
spikes of each; the readout's argmax (prediction) agreement and both accuracies.

    python tools/bench/nir_roundtrip.py [--models mlp,resnet] [--n 500] [--timesteps 32]
                                        [--md tools/bench/results_nir.md]

Configurations per model: reset="zero" (the exact export: nir/unsupported.json is empty
unless the model has max-pools) and snnc's default reset="subtract" (exported as IF with
v_reset = 0 and listed), so the table shows what the listed approximation costs. A model
with max-pools is also run with its max-pools (exported as SumPool2d + an IF "OR" gate)
swapped for AvgPool2d and for SumPool2d alone, the candidates the backend's Decision
compares.

The consumer: norse 1.1.0's NIR node mapping (norse.torch.utils.import_nir: IF -> IAFCell,
which adds the input to v, spikes where v - v_th > 0 and sets v = v_reset; Affine, Linear,
Conv2d -> torch layers; SumPool2d -> LPPool2d(1)) executed by nirtorch 2.6's
`nir_to_torch` (a torch.fx graph in topological order that sums every edge entering a
node). Install next to the CPU torch without letting pip touch torch:

    pip install nir && pip install --no-deps nirtorch==2.6 norse==1.1.0

(their dependencies are torch, numpy and nir, already there; norse also declares
torchvision, which it needs only for its datasets: --no-deps keeps pip from pulling a
torchvision that would replace the installed torch). Not norse's own `from_nir`: it runs
nirtorch's deprecated GraphExecutor, which orders nodes depth first (at a residual join
one branch would be read from the previous step) and silently skips nodes it has no
mapping for. Four mappings are added here because norse 1.1.0 has none (or a wrong one)
for them, each per the NIR definition:
  * Flatten: NIR's dims exclude the batch, so start_dim/end_dim >= 0 shift by one (as
    sinabs' from_nir does; norse and nirtorch pass them to torch unshifted, which would
    flatten the batch too);
  * AvgPool2d: nirtorch's default (torch.nn.AvgPool2d);
  * Scale: y = x * scale;
  * I (integrator): v[t] = v[t-1] + r x[t], its output v (NIR's I with dt = 1).
tests/test_nir.py imports `run_consumer` from here.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

#: bench models of the issue and the compile options of both configurations
MODELS = ["mlp", "cnn_avg", "cnn_clip", "resnet", "cnn_bn_max"]
CONFIGS = {"reset=zero": {"reset": "zero"}, "reset=subtract (default)": {},
           # per-channel thresholds and bias-calibration currents (folded into biases)
           "reset=zero, channel:99.9, calibrate-bias": {
               "reset": "zero", "norm": "channel:99.9", "calibrate_bias": True,
               "timesteps": 32}}
NOTES = """Notes:
- reset=zero exports exactly (nir/unsupported.json is empty for models without
  max-pools): every neuron's spike count is identical; the readout differs by float32
  summation order only (torch vs snnc's kernels), far from changing an argmax.
- calibrate-bias: its currents are folded into the conv / dense biases; (Wx + b) + c and
  Wx + (b + c) can differ in the last bit, which may flip a rare spike.
- reset=subtract (snnc's default) is exported as IF with v_reset = 0 and listed: the
  consumer resets to zero, so these rows measure that listed approximation, not a bug.
- max-pool: exported as SumPool2d + an IF gate (an OR of the window's spikes), listed;
  the AvgPool2d and SumPool2d-alone rows are the alternatives the backend's Decision
  rejected. Layers before the first pool stay exact.
- accuracy columns are against the labels. Low accuracies (resnet at T = 32; reset to
  zero loses the charge above threshold) are snnc's own, reproduced by the consumer:
  results_fidelity.md has resnet at 44 % for T = 32 with the default reset by
  subtraction."""


# ------------------------------------------------------------------ the consumer ---------
def consumer_module(graph: Any) -> Any:
    """The NIR graph as a torch module (norse's node mapping in nirtorch.nir_to_torch):
    forward(x, state=None) -> (output, state), one call per time step."""
    import nir
    import nirtorch
    import torch
    from norse.torch.utils.import_nir import _import_norse_module

    class Scale(torch.nn.Module):
        def __init__(self, scale: np.ndarray):
            super().__init__()
            self.register_buffer("scale", torch.from_numpy(np.asarray(scale, np.float32)))

        def forward(self, x: Any) -> Any:
            return x * self.scale

    class Integrator(torch.nn.Module):
        """NIR's I with dt = 1: v[t] = v[t-1] + r x[t]."""

        def __init__(self, r: np.ndarray):
            super().__init__()
            self.register_buffer("r", torch.from_numpy(np.asarray(r, np.float32)))

        def forward(self, x: Any, state: Any = None) -> tuple[Any, Any]:
            v = self.r * x if state is None else state + self.r * x
            return v, v

    def flatten(node: Any) -> Any:
        def shift(d: int) -> int:
            return int(d) + 1 if int(d) >= 0 else int(d)

        return torch.nn.Flatten(shift(node.start_dim), shift(node.end_dim))

    def norse(node: Any) -> Any:
        return _import_norse_module(node, dt=1.0)

    node_map = {nir.Affine: norse, nir.Linear: norse, nir.Conv2d: norse, nir.IF: norse,
                nir.SumPool2d: norse, nir.Flatten: flatten,
                nir.Scale: lambda n: Scale(n.scale), nir.I: lambda n: Integrator(n.r)}
    return nirtorch.nir_to_torch(graph, node_map)


def run_consumer(graph: Any, x: np.ndarray, timesteps: int, *, batch: int = 100
                 ) -> dict[str, Any]:
    """Run the NIR graph in the consumer for `timesteps` steps, x presented at every step
    (analog input): "spikes" {snnc IF op name: (N, ...) spikes per neuron} (from the IF
    nodes' metadata), "readout" (N, ...) the output after the last step, "prediction"."""
    import nir
    import torch

    module = consumer_module(graph)
    module.eval()
    ifs = {name: str(node.metadata.get("snnc_op", name)) for name, node in graph.nodes.items()
           if isinstance(node, nir.IF)}
    step_spikes: dict[str, Any] = {}

    def hook(op_name: str) -> Any:
        def record(_mod: Any, _inp: Any, out: Any) -> None:
            step_spikes[op_name] = out[0]
        return record

    for name, op_name in ifs.items():
        module.get_submodule(name).register_forward_hook(hook(op_name))
    spikes: dict[str, list[np.ndarray]] = {op: [] for op in ifs.values()}
    readouts = []
    with torch.no_grad():
        for s0 in range(0, len(x), batch):
            xb = torch.from_numpy(np.ascontiguousarray(x[s0:s0 + batch], np.float32))
            state = None
            counts = {op: torch.zeros(()) for op in ifs.values()}
            out = None
            for _ in range(timesteps):
                out, state = module(xb, state)
                for op in counts:
                    counts[op] = counts[op] + step_spikes[op]
            for op, c in counts.items():
                spikes[op].append(c.numpy().astype(np.float64))
            readouts.append(out.numpy())
    readout = np.concatenate(readouts)
    return {"spikes": {k: np.concatenate(v) for k, v in spikes.items()}, "readout": readout,
            "prediction": readout.reshape(len(x), -1).argmax(axis=1)}


def agreement(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray]
              ) -> list[dict[str, Any]]:
    """Per spiking layer: neurons (over all images), the fraction with identical spike
    counts and how many differ, the total spikes of each simulator."""
    rows = []
    for layer, a in ours.items():
        b = theirs[layer]
        rows.append({"layer": layer, "neurons": int(a.size),
                     "identical": float((a == b).mean()), "differing": int((a != b).sum()),
                     "spikes_snnc": int(a.sum()), "spikes_consumer": int(b.sum())})
    return rows


# ------------------------------------------------------------------ the bench ------------
def pool_variant(graph: Any, how: str) -> Any:
    """The same NIR graph with each max-pool (SumPool2d + IF gate) exported the other ways
    the backend's Decision compares: "avg" AvgPool2d, "sum" SumPool2d alone."""
    import nir

    gates = {k for k, n in graph.nodes.items() if isinstance(n, nir.IF)
             and str(n.metadata.get("snnc_role", "")).startswith("max-pool gate")}
    pool_of = {dst: src for src, dst in graph.edges if dst in gates}
    nodes = {}
    for k, n in graph.nodes.items():
        if k in gates:
            continue
        if isinstance(n, nir.SumPool2d) and how == "avg":
            n = nir.AvgPool2d(kernel_size=n.kernel_size, stride=n.stride, padding=n.padding,
                              metadata=n.metadata)
        nodes[k] = n
    edges = [(pool_of.get(a, a), b) for a, b in graph.edges if b not in gates]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=graph.metadata)


def bench(models: list[str], n: int, timesteps: int) -> list[str]:
    import io

    import nir
    import snnc
    import torch
    from common import MODELS_DIR, data, ensure_models
    from snnc.backends.nir import MODEL_FILE, NirBackend

    torch.set_num_threads(2)
    paths = ensure_models(models)
    with np.load(MODELS_DIR / "mnist_calib.npz") as z:
        calib = z["x"]
    x, y = data("test")
    x, y = x[:n], y[:n]
    lines = [f"T = {timesteps}, {n} test images (build/models/mnist_test.npz), analog input; "
             "consumer: norse 1.1.0 node mapping in nirtorch 2.6 nir_to_torch, torch "
             f"{torch.__version__}, nir {nir.version}", ""]
    head = ("| model | config | layer | neurons | identical counts | neurons differing | "
            "spikes snnc | spikes consumer |")
    summary = ["| model | config | listed approximations | prediction agreement | "
               "readout max abs diff | accuracy snnc | accuracy consumer |",
               "|---|---|---|---|---|---|---|"]
    layers = [head, "|---|---|---|---|---|---|---|---|"]
    for m in models:
        for cname, opts in CONFIGS.items():
            net = snnc.compile_model(paths[m], calib=calib, **opts)
            backend = NirBackend()
            files = backend.emit(net.graph)
            graph = nir.read(io.BytesIO(files[MODEL_FILE]))
            ref = net.simulate(x, timesteps)
            variants = [("", graph)]
            if any(isinstance(v, nir.SumPool2d) for v in graph.nodes.values()):
                variants += [(", max-pool as AvgPool2d", pool_variant(graph, "avg")),
                             (", max-pool as SumPool2d alone", pool_variant(graph, "sum"))]
            for suffix, g in variants:
                got = run_consumer(g, x, timesteps)
                label = cname + suffix
                listed = sorted({u["feature"].split(" (")[0] for u in backend.unsupported})
                for r in agreement(ref["spikes"], got["spikes"]):
                    layers.append(f"| {m} | {label} | {r['layer']} | {r['neurons']} | "
                                  f"{100 * r['identical']:.4f} % | {r['differing']} | "
                                  f"{r['spikes_snnc']} | {r['spikes_consumer']} |")
                diff = float(np.abs(ref["readout"][-1] - got["readout"]).max())
                summary.append(
                    f"| {m} | {label} | {'; '.join(listed) or 'none'} | "
                    f"{100 * (ref['prediction'] == got['prediction']).mean():.1f} % | "
                    f"{diff:.3g} | {100 * (ref['prediction'] == y).mean():.1f} % | "
                    f"{100 * (got['prediction'] == y).mean():.1f} % |")
                print(summary[-1], flush=True)
    return (lines + summary + ["", NOTES, "", "Per spiking layer (all neurons of all images):",
                               ""] + layers)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--timesteps", type=int, default=32)
    ap.add_argument("--md", help="write the tables (and the command) to this file")
    args = ap.parse_args(argv)
    lines = bench(args.models.split(","), args.n, args.timesteps)
    text = "\n".join(lines)
    print(text)
    if args.md:
        cmd = "python tools/bench/nir_roundtrip.py " + " ".join(argv or sys.argv[1:])
        Path(args.md).write_text(f"# NIR round trip\n\n`{cmd.strip()}`\n\n{text}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
