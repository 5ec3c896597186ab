"""Cross-check snnc's Speck / Xylo resource reports with SynSense's own tools.

Runs sinabs (Speck / DYNAP-CNN core mapping) and rockpool (Xylo Audio 2 mapper)
on ONNX models and prints one JSON object per model and line:
  {"model", "tool", "feasible", "cores", "layer2core", "memory", "error", "notes"}
Standalone: it does not import snnc.

Install (what worked, Python 3.11, CPU torch 2.13.0 in system site-packages):
  python -m venv --system-site-packages /work/venv-vendor
  echo torch==2.13.0 > /tmp/c.txt
  /work/venv-vendor/bin/pip install -c /tmp/c.txt sinabs samna rockpool bitstruct
  # -> sinabs 3.1.3, rockpool 3.1.0, samna 0.48.6, bitstruct 8.24.0, nir 1.0.4,
  #    nirtorch 2.0.2, h5py 3.16.0, pbr 7.1.3 (torch stays 2.13.0+cpu)
  # bitstruct (rockpool's [xylo] extra) is needed to import config_from_specification.
  /work/venv-vendor/bin/pip uninstall -y samna
  # Every samna release on PyPI is a ~7 kB shim whose `import samna` runs
  # `pip install samna==X --index-url <gitlab>`; that index is unreachable here,
  # so the shim is removed. Without real samna this script installs an inert
  # placeholder module so sinabs/rockpool import; everything up to the samna
  # call (sinabs core mapping, rockpool mapper) is the vendors' own Python code,
  # and the samna steps (SpeckConfiguration / XyloConfiguration construction
  # and samna's validate_configuration) are reported as not run in "notes".

Usage:
  /work/venv-vendor/bin/python tools/bench/vendor_check.py --speck M.onnx [...] --xylo M.onnx [...]
  --xylo builtin:16-64-8   builds a random 16->64->8 MLP instead of reading ONNX
  --relax                  Speck only: MaxPool -> SumPool (to see the memory past the refusal)

Verdicts: Speck "feasible" = DynapcnnNetwork accepted the graph and sinabs'
map_layers_to_cores found a core per layer (plus samna's validate_configuration
when real samna is present). Xylo "feasible" = rockpool's mapper raised no
DRCError and emitted no DRCWarning (>16 inputs / >8 outputs only warn there),
plus samna's validate_configuration when present. Xylo "layer2core" lists the
hardware neuron id range of each neuron population (Xylo is a single core).
"""
import argparse
import importlib.abc
import importlib.machinery
import importlib.util
import json
import sys
import types
import warnings

import numpy as np
import onnx
import torch
import torch.nn as nn
from onnx import numpy_helper


# ---------------------------------------------------------------- samna placeholder
class _Missing(types.ModuleType):
    """Any attribute is another placeholder; calling one raises."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Missing(f"{self.__name__}.{name}")

    def __call__(self, *a, **k):
        raise RuntimeError(f"samna not installed: cannot call {self.__name__}")


class _MissingFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("samna", "samnagui"):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)

    def create_module(self, spec):
        return _Missing(spec.name)

    def exec_module(self, module):
        module.__path__ = []


def real_samna_available():
    spec = importlib.util.find_spec("samna")
    if spec is None or spec.origin is None:
        return False
    with open(spec.origin) as f:  # the PyPI shim marks itself, don't import it
        return "PYPI_SAMNA" not in f.read()


SAMNA = real_samna_available()
if not SAMNA:
    sys.meta_path.insert(0, _MissingFinder())


# ---------------------------------------------------------------- ONNX helpers
def load(path):
    m = onnx.load(path)
    inits = {i.name: numpy_helper.to_array(i).copy() for i in m.graph.initializer}
    for n in m.graph.node:  # Constant nodes (Clip bounds) become initializers
        if n.op_type == "Constant":
            inits[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    nodes = [n for n in m.graph.node if n.op_type != "Constant"]
    shp = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim][1:]
    return m.graph.input[0].name, tuple(shp), nodes, inits, m.graph.output[0].name


def attrs(n):
    return {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}


def gemm_weight(n, inits):
    w = inits[n.input[1]]
    return w if attrs(n).get("transB", 0) else w.T  # -> (out, in)


# ---------------------------------------------------------------- Speck / sinabs
class GraphNet(nn.Module):
    """Non-sequential ONNX graph (residual Add) as a torch module."""

    def __init__(self, steps, mods, inp, out):
        super().__init__()
        self.mods, self.steps, self.inp, self.out = nn.ModuleDict(mods), steps, inp, out

    def forward(self, x):
        env = {self.inp: x}
        for key, ins, out in self.steps:
            env[out] = self.mods[key](*[env[i] for i in ins])
        return env[self.out]


def onnx_to_sinabs(path, relax=False):
    """ONNX -> sinabs-ready torch module. Returns (module, input_shape, notes)."""
    import sinabs.layers as sl

    inp, shape, nodes, inits, out = load(path)

    def iaf():
        return sl.IAFSqueeze(batch_size=1, min_v_mem=-1.0)

    env = {inp: torch.zeros(1, *shape)}  # eager dummy pass gives the shapes
    steps, mods, notes, alias, producer = [], {}, [], {}, {}
    for i, n in enumerate(nodes):
        a, op, src = attrs(n), n.op_type, alias.get(n.input[0], n.input[0])
        x = env[src]
        if op == "Conv":
            w = torch.tensor(inits[n.input[1]])
            p = a.get("pads", [0] * 4)
            if p[:2] != p[2:]:
                raise ValueError(f"asymmetric pads {p}")
            m = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2:], a.get("strides", 1),
                          p[:2], bias=len(n.input) > 2)
            m.weight.data = w
            if len(n.input) > 2:
                m.bias.data = torch.tensor(inits[n.input[2]])
        elif op == "Gemm":
            w = torch.tensor(gemm_weight(n, inits))
            m = nn.Linear(w.shape[1], w.shape[0], bias=len(n.input) > 2)
            m.weight.data = w
            if len(n.input) > 2:
                m.bias.data = torch.tensor(inits[n.input[2]])
        elif op == "BatchNormalization":  # sinabs merges BN into the conv itself
            m = nn.BatchNorm2d(x.shape[1], eps=a.get("epsilon", 1e-5)).eval()
            for attr, k in zip(("weight", "bias", "running_mean", "running_var"), n.input[1:]):
                getattr(m, attr).data = torch.tensor(inits[k])
        elif op in ("Relu", "Clip"):
            m = iaf()
            if op == "Clip":
                notes.append("Clip -> IAF (as ReLU)")
        elif op == "AveragePool":
            k = a["kernel_shape"][0]
            m = sl.SumPool2d(k)
            notes.append(f"AveragePool{k} -> SumPool2d{k} (weights not rescaled)")
        elif op == "GlobalAveragePool":
            m = sl.SumPool2d(x.shape[-1])
            notes.append(f"GlobalAveragePool -> SumPool2d{x.shape[-1]}")
        elif op == "MaxPool":
            k = a["kernel_shape"][0]
            m = sl.SumPool2d(k) if relax else nn.MaxPool2d(k)
            if relax:
                notes.append(f"--relax: MaxPool{k} -> SumPool2d{k}")
        elif op == "Flatten":
            m = nn.Flatten()
        elif op == "Add":
            m = sl.Merge()
        elif op == "Softmax":
            alias[n.output[0]] = src
            notes.append("Softmax dropped")
            continue
        else:
            raise NotImplementedError(f"ONNX op {op} not handled by this converter")
        key = f"n{i}_{op}"
        ins = [alias.get(t, t) for t in n.input if t in env or t in alias]
        mods[key], env[n.output[0]] = m, m(*[env[t] for t in ins])
        steps.append((key, ins, n.output[0]))
        producer[n.output[0]] = op
    out = alias.get(out, out)
    if producer[out] in ("Conv", "Gemm", "BatchNormalization"):
        key = "readout_iaf"  # every DYNAP-CNN weight layer needs spiking neurons
        mods[key] = iaf()
        steps.append((key, [out], key))
        out = key
        notes.append("IAF appended after last weight layer (readout)")
    chain = all(s[1] == [p[2]] for s, p in zip(steps[1:], steps)) and steps[0][1] == [inp]
    net = nn.Sequential(*mods.values()) if chain else GraphNet(steps, mods, inp, out)
    return net, shape, list(dict.fromkeys(notes))


def speck_check(path, relax=False):
    import sinabs
    from sinabs.backend.dynapcnn import DynapcnnNetwork

    res = dict(model=path + ("[relaxed]" if relax else ""), tool=f"sinabs {sinabs.__version__}",
               feasible=False, cores=None, layer2core=None, memory=None, error=None, notes=[])
    try:
        snn, shape, res["notes"] = onnx_to_sinabs(path, relax)
        net = DynapcnnNetwork(snn, input_shape=shape, discretize=True, dvs_input=False)
    except Exception as e:  # sinabs refused the network structure
        res["error"] = f"{type(e).__name__}: {e}"
        return res
    mem = {k: {str(layer): int(v) for layer, v in d.items()}
           for k, d in net.memory_summary().items()}
    # per-layer result of sinabs' stand-alone helper (sinabs/utils.py)
    mem["validate_memory_mapping_speck"] = {}
    for idx, lyr in net.dynapcnn_layers.items():
        c = lyr.conv_layer
        try:
            msg = sinabs.utils.validate_memory_mapping_speck(
                c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding,
                lyr.in_shape[1:])
        except Exception as e:  # it raises Exception (or Warning, for the stride)
            msg = f"{type(e).__name__}: {e}"
        mem["validate_memory_mapping_speck"][str(idx)] = msg
    res["memory"] = mem
    try:  # mapping (sinabs mapping.py) runs first, then samna builds + validates
        net.make_config(layer2core_map="auto", device="speck2fmodule")
        res["feasible"] = True
    except RuntimeError as e:
        if SAMNA or net.layer2core_map is None:
            res["error"] = f"{type(e).__name__}: {e}"
        else:  # mapping succeeded; only the samna config step is missing
            res["feasible"] = True
            res["notes"].append("samna unavailable: config build/validate_configuration not run")
    except Exception as e:
        res["error"] = f"{type(e).__name__}: {e}"
    if net.layer2core_map:
        res["layer2core"] = {str(k): int(v) for k, v in net.layer2core_map.items()}
        res["cores"] = len(set(net.layer2core_map.values()))
    return res


# ---------------------------------------------------------------- Xylo / rockpool
def onnx_dense_layers(path):
    """ONNX MLP -> list of (out, in) weight matrices; biases are dropped."""
    if path.startswith("builtin:"):
        dims = [int(d) for d in path.split(":")[1].split("-")]
        rng = np.random.default_rng(0)
        return [rng.normal(0, 0.3, (o, i)) for i, o in zip(dims, dims[1:])], []
    _, _, nodes, inits, _ = load(path)
    ws, notes = [], []
    for n in nodes:
        if n.op_type == "Gemm":
            ws.append(gemm_weight(n, inits))
            if len(n.input) > 2:
                notes.append(f"bias of {n.name} dropped (Xylo weights have no bias)")
        elif n.op_type not in ("Flatten", "Relu", "Softmax"):
            raise NotImplementedError(f"ONNX op {n.op_type}: Xylo takes dense MLPs only")
    return ws, notes


def xylo_check(path):
    import rockpool
    from rockpool.nn.combinators import Sequential
    from rockpool.nn.modules import LIFTorch, LinearTorch

    res = dict(model=path, tool=f"rockpool {rockpool.__version__}", feasible=False,
               cores=None, layer2core=None, memory=None, error=None, notes=[])
    wl = []  # DRCWarnings (I/O channel limits) are warnings, not errors, in rockpool
    try:
        from rockpool.devices.xylo.syns61201 import config_from_specification, mapper
        from rockpool.transform.quantize_methods import channel_quantize

        ws, res["notes"] = onnx_dense_layers(path)
        layers = []
        for w in ws:  # LinearTorch weight is (in, out); LIF neurons after each
            lin = LinearTorch(w.T.shape, has_bias=False)
            lin.weight.data = torch.tensor(w.T, dtype=torch.float32)
            layers += [lin, LIFTorch(w.shape[0], dt=1e-3)]
        net = Sequential(*layers)
        res["memory"] = {"inputs": ws[0].shape[1], "outputs": ws[-1].shape[0],
                         "hidden": int(sum(w.shape[0] for w in ws[:-1]))}
        with warnings.catch_warnings(record=True) as wl:
            warnings.simplefilter("always")
            spec = mapper(net.as_graph(), weight_dtype="float", threshold_dtype="float",
                          dash_dtype="float")
        res["memory"].update({k: list(spec[k].shape) for k in
                              ("weights_in", "weights_rec", "weights_out")})
        g = spec["mapped_graph"]
        res["layer2core"] = {  # hardware neuron ids per neuron population
            f"{type(m).__name__}[{j}]": [int(min(m.hw_ids)), int(max(m.hw_ids))]
            for j, m in enumerate(g.output_nodes[0].source_modules + _hidden_modules(g))}
        spec.update(channel_quantize(**spec))  # 8-bit weights / 16-bit thresholds
        res["feasible"] = True
        try:
            _, ok, msg = config_from_specification(**spec)
            res["feasible"], res["error"] = ok, (msg or None)
        except RuntimeError as e:
            if SAMNA:
                raise
            res["notes"].append("samna unavailable: config_from_specification stopped at "
                                f"XyloConfiguration ({e}); validate_configuration not run")
    except Exception as e:
        res["error"] = f"{type(e).__name__}: {e}"
        if e.__cause__ is not None:
            res["error"] += f" <- {type(e.__cause__).__name__}: {e.__cause__}"
    drc = [str(w.message) for w in wl if "DRC" in type(w.message).__name__]
    if drc:  # hardware limits violated even though rockpool only warns
        res["feasible"] = False
        res["error"] = "; ".join(filter(None, [res["error"]] + drc))
    return res


def _hidden_modules(graph):
    from rockpool.devices.xylo.syns61201 import Xylo2HiddenNeurons
    from rockpool.graph import find_modules_of_subclass

    return list(find_modules_of_subclass(graph, Xylo2HiddenNeurons))


# ---------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--speck", nargs="*", default=[])
    ap.add_argument("--xylo", nargs="*", default=[])
    ap.add_argument("--relax", action="store_true")
    args = ap.parse_args()
    torch.manual_seed(0)
    for p in args.speck:
        print(json.dumps(speck_check(p, args.relax)), flush=True)
    for p in args.xylo:
        print(json.dumps(xylo_check(p)), flush=True)


if __name__ == "__main__":
    main()
