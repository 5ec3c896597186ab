"""The NIR backend: a rate-coded spiking IR graph as a NIR graph (Neuromorphic Intermediate
Representation, the `nir` package), for other SNN simulators and neuromorphic toolchains.

`NirBackend().emit(graph)` writes
  nir/model.nir         the NIRGraph in NIR's HDF5 format (`nir.write`; `nir.read` loads it)
  nir/unsupported.json  every feature of this network that NIR cannot express and that was
                        exported as an approximation: a list of {"node", "feature",
                        "exported_as"} ([] when the export is exact)
`nir_graph(graph)` returns the same NIRGraph and list in memory. `nir` is an optional
dependency (`pip install 'snnc[nir]'`), imported only when an export runs.

IR op -> NIR node (shapes per sample, without the batch axis, as NIR's types are):
  graph input + encode   Input (the caller presents the input to it at every step)
  conv                   Conv2d (input_shape, stride, symmetric padding, dilation, groups;
                         a zero bias when the op has none)
  dense                  Affine (Linear when the op has no bias)
  if                     IF: r = 1, v_threshold = the threshold (see below), v_reset = 0
  avgpool                AvgPool2d (unpadded windows only)
  spikemaxpool           SumPool2d + an IF gate (approximation, listed)
  flatten, reshape to 1-D  Flatten(start_dim=0, end_dim=-1) over the per-sample shape
  affine (scale only)    Scale, the scale broadcast to the full per-sample shape
  add                    no node: NIR sums every edge that enters a node, so each operand's
                         node gets an edge to each consumer of the sum
  current, affine shift  no node: folded into the bias of the Conv2d / Affine that feeds it
  accumulate             I (integrator, r = 1): v[t] = v[t-1] + x[t], the membrane readout
  spikesoftmax           I (approximation, listed)
  graph output           Output
Every node's metadata names the IR op ("snnc_op") and its ONNX node ("onnx_node"); the
graph's metadata holds dt, the compile-time length and the input coding.

Decision: dt = 1. One NIR time unit is one simulator step: IF integrates
v[t] = v[t-1] + dt * r * x[t] with dt = r = 1, exactly snnc's V += I. NIR nodes carry no
dt of their own (NIR is continuous-time), so dt is in the graph's and every neuron's
metadata; a consumer must run with a time step of 1 (norse ignores dt for IF; its
from_nir default dt=0.001 matters only for leaky models, which snnc does not emit).
Decision: the firing condition. snnc fires where V >= theta; NIR's IF fires where
v > v_threshold. v_threshold is therefore the largest float32 below theta
(np.nextafter), which makes v > v_threshold and v >= theta the same test for every
float32 membrane (the arithmetic NIR consumers use); the exact theta is kept in the
metadata ("snnc_threshold"). Per-layer and per-channel thresholds are broadcast to one
value per neuron (NIR's IF parameters have the population's shape).
Decision: reset. snnc's default reset by subtraction (V -= theta) has no NIR parameter:
NIR's IF resets to v_reset (NIR's maintainers note that subtraction and reset-to-zero
coincide only in continuous time, and leave the discrete choice to consumers, which
disagree: norse's IAF sets v = v_reset; sinabs' from_nir builds a subtracting IAF that may
fire several spikes per step and clips v at -theta; snntorch 1.0.0 builds a leaky neuron,
beta 0.9, fixed upstream later). A `reset="subtract"` population is exported as IF with
v_reset = 0 and listed: a consumer that resets to zero loses the charge above the
threshold (fewer spikes, most at short T; on the bench models at T = 32 the predictions
still agree with snnc's on 62-99.6 % of images). `reset="zero"` is exact: compile with
reset="zero" (`--reset zero`) for an exact NIR export. (Subtraction could be written as
I + Threshold + a recurrent Scale(-theta) edge, but that relies on a one-step delay on
recurrent edges that NIR does not define, and consumers map neither I nor Threshold next
to IF; so no.) The reset mode is in the node's metadata ("snnc_reset").
Decision: v_init (initial membrane as a fraction of theta): NIR has no initial state;
exported as the consumer's default (v = v_reset = 0), listed, and kept in the node's
metadata ("snnc_v_init") for consumers that can set it.
Decision: spiking max-pool (the input with the highest running count passes its spikes)
needs per-window state NIR cannot express. Exported as SumPool2d over the same windows
followed by an IF gate (threshold 0.5, reset to 0, one per output): the window's spike sum
is an integer, so the gate spikes exactly in the steps where any input of the window
spiked (an OR) and keeps no charge; listed. Like snnc's gate it passes at most one spike
per step; it is exact when one input of a window is active (or all fire in the same
steps) and spikes more than the maximum when several inputs fire in different steps.
Measured on the trained max-pool CNN (tools/bench/results_nir.md: cnn_bn_max, reset zero,
500 test images, T = 32): prediction agreement with snnc 97.8 %, against 89.4 % for
AvgPool2d and 63.4 % for SumPool2d alone (the bench runs all three). Only standard
primitives are used (neuromorphic hardware pools by summing: Speck has sum-pooling and
IAF neurons, no max-pool).
Decision: a constant current (the current op of bias calibration, the shift of shift-bias
inserted as an affine after a residual join) has no NIR node; it is added to the bias of
the Conv2d / Affine that feeds it, found backwards through joins and other folded
currents when that synaptic op feeds nothing else, and the current must be constant over
each channel (conv) or per output (dense). Exact in real arithmetic; in float32,
(Wx + b) + c and Wx + (b + c) may differ in the last bit (measured with bias calibration on
the bench models: at most 0.003 % of a layer's neurons change their spike count, the
predictions are identical). When there is no such op, or the current varies inside a
channel, the export is refused naming the op.
Decision: finite input time (--fit T1:T2) gates the input and every bias to the first T1
steps and caps bounded neurons at T1 spikes; NIR has neither time-gated currents nor spike
budgets. Exported and listed: the input as an ordinary Input (the caller must present x for
T1 steps and zeros after, which reproduces the gated input exactly), gated biases as
constant biases (they keep flowing in the drain steps), max_spikes dropped (a bounded
neuron can spike more than T1 times).
Decision: Poisson input coding: NIR has no random source. The Input then carries spike
trains the caller generates, listed (snnc's draws come from a seeded counter-based
generator, ir/semantics.poisson_uniform; a consumer's own draws differ spike by spike).
Decision: readouts. accumulate (the membrane readout, or spike counts with readout
"spikes") is NIR's integrator I with r = 1: exact. The spiking softmax (a Poisson clock
and a categorical draw over softmax(V)) is exported as I over its input and listed: the
consumer reads argmax V, the outcome the draws converge to.
Decision: refused (SnncError naming the op and its ONNX node): temporal coding (TTFS
ops: leak, inhibition windows, fire-once neurons and ticking inputs have no NIR form; use
--coding rate), fixed-point graphs (int32 membranes with saturation, window-sum pools and
integer input quantization are not float32 NIR; use --arith float), concat, pad, reshape to
anything but 1-D, asymmetric convolution padding, padded or ceil-mode or dilated pools,
dense over a rank > 1 input, affine with both scale and shift, an add of one value to
itself, ANN-level ops (not converted). REFUSED lists every op kind without a NIR form with
its reason; NIR_ATTRS lists, per exported kind, the attributes the export implements or
lists, and an op with any other attribute set is refused (as the C backend does with
ir/semantics.HANDLED_ATTRS), so that a new IR feature is never dropped silently.
Decision: node names are the IR op names made safe as identifiers ([A-Za-z0-9_], starting
with a letter; consumers such as nirtorch turn them into module names), made unique; the
original names are in the metadata.
Decision: deterministic bytes. The file is written by nir.write (NIR's own writer, so the
format is the reference one) into memory. h5py >= 3.5 writes no object timestamps by
default (datasets since 3.5; groups get v1 headers without times unless track_order is
on, which nir.write does not ask for) and gzip is deterministic, so the same graph gives
the same bytes (tests/test_nir.py writes twice, more than a second apart).
Decision: strict=True turns every listed approximation into a refusal, for users who want
an exact export or none.
"""
from __future__ import annotations

import io
import json
import keyword
import re
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

import numpy as np
from snnc.ir import ops as O
from snnc.ir.errors import SnncError
from snnc.ir.graph import Graph
from snnc.ir.semantics import SIMULATOR_ONLY_ATTRS, spatial_out

OUT_DIR = "nir"
MODEL_FILE = f"{OUT_DIR}/model.nir"
UNSUPPORTED_FILE = f"{OUT_DIR}/unsupported.json"
#: one NIR time unit is one simulator step
DT = 1.0
INSTALL_HINT = "pip install 'snnc[nir]'"
_TTFS = ("temporal coding (time-to-first-spike) has no NIR form: NIR has no fire-once "
         "neurons, inhibition windows or ticking inputs", "compile with --coding rate for "
         "--emit nir")
_ANN = ("ANN-level op in a spiking graph: the NIR export needs it converted",
        "run the rate pipeline (convert-to-snn) first")
#: op kind -> (why the NIR backend refuses it, what to do); every other kind of
#: ir.ops.OPS has a handler (_Builder.op_<kind>); tests/test_nir.py checks that each kind
#: is in exactly one of the two
REFUSED: dict[str, tuple[str, str]] = {
    **{k: _TTFS for k in ("ttfsencode", "ttfsneuron", "ttfsmaxpool", "ttfsreadout")},
    **{k: _ANN for k in ("batchnorm", "relu", "clip", "maxpool", "softmax", "ttfsgate")},
    "concat": ("NIR has no concatenation node", "export a network without Concat"),
    "pad": ("NIR has no padding node (only a convolution's symmetric padding)",
            "fold the padding into the convolution"),
}
#: op kind -> the attributes whose meaning the export implements (or lists); an op that
#: sets any other attribute to a non-default value is refused, so that a new IR feature
#: is never dropped silently (the same rule as ir/semantics.HANDLED_ATTRS)
NIR_ATTRS: dict[str, frozenset[str]] = {k: frozenset(v) for k, v in {
    # if.bounded, if.shift, current.compensation: informational, nothing to express
    "encode": ("coding", "seed", "steps"), "current": ("steps", "compensation"),
    "if": ("reset", "v_init", "bounded", "shift", "max_spikes"),
    "conv": ("strides", "pads", "dilations", "groups"), "dense": (), "affine": (),
    "avgpool": ("kernel", "strides", "pads", "count_include_pad", "ceil_mode"),
    "spikemaxpool": ("kernel", "strides", "pads", "dilations", "ceil_mode"),
    "add": (), "flatten": (), "reshape": ("shape",), "accumulate": (),
    "spikesoftmax": ("rate", "seed"),
}.items()}

__all__ = ["DT", "MODEL_FILE", "NIR_ATTRS", "REFUSED", "UNSUPPORTED_FILE", "NirBackend",
           "nir_graph"]


def _import_nir() -> Any:
    try:
        import nir
    except ImportError:
        raise SnncError("the NIR backend needs the 'nir' package, which is not installed",
                        hint=INSTALL_HINT) from None
    return nir


class NirBackend:
    """Writes OUT/nir/ (see the module docstring). After emit(), `unsupported` holds the
    list written to nir/unsupported.json."""

    name = "nir"
    requires = frozenset({"spiking"})

    def __init__(self, *, strict: bool = False):
        self.strict = strict
        self.unsupported: list[dict[str, str]] = []

    def emit(self, graph: Graph) -> dict[str, bytes]:
        nir = _import_nir()
        g, unsupported = nir_graph(graph, strict=self.strict)
        buf = io.BytesIO()
        nir.write(buf, g)
        self.unsupported = unsupported
        return {MODEL_FILE: buf.getvalue(),
                UNSUPPORTED_FILE: (json.dumps(unsupported, indent=1) + "\n").encode()}


# ------------------------------------------------------------------ building -------------
@dataclass
class _Node:
    """A NIR node before it is built: its NIR class name and constructor arguments (biases
    of synaptic nodes may still change as currents are folded into them)."""

    kind: str
    args: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Builder:
    """One export: walks the IR ops in order, collecting NIR nodes, edges and the listed
    approximations."""

    graph: Graph
    strict: bool
    nodes: dict[str, _Node] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)
    #: IR value -> the NIR nodes whose outputs sum to it
    sources: dict[str, list[str]] = field(default_factory=dict)
    #: IR value -> the NIR node of the synaptic op that produced it (for bias folding)
    synaptic: dict[str, str] = field(default_factory=dict)
    unsupported: list[dict[str, str]] = field(default_factory=list)
    taken: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.producers = self.graph.producers()
        self.users = self.graph.consumers()
        self.spikes = self.graph.spike_values()

    # ---- helpers ------------------------------------------------------------------------
    def name_for(self, base: str, kind: str) -> str:
        s = re.sub(r"[^A-Za-z0-9]+", "_", base).strip("_")
        if not s or not s[0].isalpha():
            s = f"{kind.lower()}_{s}" if s else kind.lower()
        if keyword.iskeyword(s):
            s += "_"
        name, i = s, 2
        while name in self.taken:
            name, i = f"{s}_{i}", i + 1
        self.taken.add(name)
        return name

    def add(self, op: O.Op | None, base: str, kind: str, args: dict[str, Any],
            inputs: list[str], meta: dict[str, Any] | None = None) -> str:
        name = self.name_for(base, kind)
        info = {} if op is None else {"snnc_op": op.name, "onnx_node": op.origin or ""}
        self.nodes[name] = _Node(kind, args, {**info, **(meta or {})})
        for src in inputs:
            self.edges.append((src, name))
        return name

    def approx(self, op: O.Op, feature: str, exported_as: str, hint: str) -> None:
        if self.strict:
            raise op.error(f"NIR cannot express {feature}", hint=hint)
        self.unsupported.append({"node": op.where(), "feature": feature,
                                 "exported_as": exported_as})

    def shape(self, value: str) -> tuple[int, ...]:
        return tuple(int(d) for d in self.graph.shape(value))

    def full(self, op: O.Op, param: str, shape: tuple[int, ...]) -> np.ndarray:
        a = np.asarray(self.graph.params[param], np.float32)
        try:
            return np.ascontiguousarray(np.broadcast_to(a, shape), np.float32)
        except ValueError:
            raise op.error(f"{param} {list(a.shape)} does not broadcast to "
                           f"{list(shape)}") from None

    # ---- ops ----------------------------------------------------------------------------
    def run(self) -> None:
        g = self.graph
        if "fixed-point" in g.facts:
            raise SnncError("a fixed-point graph (--arith fixed) has no NIR form: NIR carries "
                            "float32 parameters, not int32 membranes with saturation, "
                            "window-sum pools and an integer input",
                            hint="compile with --arith float for --emit nir")
        if "spiking" not in g.facts:
            raise SnncError("the NIR backend needs a spiking graph (run convert-to-snn)")
        for v in g.inputs:
            base = "input" if len(g.inputs) == 1 else f"input_{v}"
            self.sources[v] = [self.add(None, base, "Input", {"input_type": self.shape(v)}, [],
                                        {"snnc_value": v})]
        for op in g.ops:
            handler = getattr(self, f"op_{op.kind}", None)
            if op.kind in REFUSED or handler is None:
                why, hint = REFUSED.get(op.kind, ("has no NIR mapping", "export a network "
                                                  "without this op"))
                raise op.error(why, hint=hint)
            self.check_attrs(op)
            handler(op)
        for v in g.outputs:
            if v not in self.sources:
                raise SnncError(f"internal: output {v} has no NIR source")
            base = "output" if len(g.outputs) == 1 else f"output_{v}"
            self.add(None, base, "Output", {"output_type": self.shape(v)}, self.sources[v],
                     {"snnc_value": v})

    def check_attrs(self, op: O.Op) -> None:
        handled = NIR_ATTRS.get(op.kind, frozenset())
        for f in fields(op):
            if f.metadata.get("role") != "attr" or f.name in handled:
                continue
            if f.default is MISSING or getattr(op, f.name) != f.default:
                why = SIMULATOR_ONLY_ATTRS.get(op.kind, {}).get(f.name)
                raise op.error(f"the NIR backend does not implement attribute "
                               f"{f.name}={getattr(op, f.name)!r}"
                               + (f": {why}" if why else ""),
                               hint="export a network without it")

    def op_encode(self, op: O.Encode) -> None:
        self.sources[op.out] = list(self.sources[op.x])
        if op.coding == "poisson":
            self.approx(op, "Poisson input coding (seeded counter-based generator)",
                        "Input: the caller feeds spike trains it draws itself (clip(x, 0, 1) "
                        "per step); its draws differ from snnc's",
                        "use --input-coding analog for an exact NIR export")
        if op.steps:
            self.approx(op, f"input presented for the first {op.steps} steps only "
                            "(finite input time)",
                        f"Input: the caller must present x for steps 0..{op.steps - 1} "
                        "and zeros after", "drop --fit for an exact NIR export")
        for n in self.sources[op.out]:
            self.nodes[n].meta.update(coding=op.coding, input_steps=int(op.steps))

    def op_conv(self, op: O.Conv) -> None:
        p = self.graph.params
        w = np.asarray(p[op.weight], np.float32)
        pt, pl, pb, pr = op.pads
        if (pt, pl) != (pb, pr):
            raise op.error(f"asymmetric padding {list(op.pads)} (top, left, bottom, right): "
                           "NIR's Conv2d pads both sides equally",
                           hint="pad symmetrically in the model")
        bias = (np.asarray(p[op.bias], np.float32) if op.bias is not None
                else np.zeros(w.shape[0], np.float32))
        shape = self.shape(op.x)
        name = self.add(op, op.name, "Conv2d", {
            "input_shape": (shape[1], shape[2]), "weight": w,
            "stride": tuple(int(s) for s in op.strides), "padding": (int(pt), int(pl)),
            "dilation": tuple(int(d) for d in op.dilations), "groups": int(op.groups),
            "bias": bias.copy()}, self.sources[op.x])
        self.sources[op.out] = [name]
        self.synaptic[op.out] = name

    def op_dense(self, op: O.Dense) -> None:
        if len(self.shape(op.x)) != 1:
            raise op.error(f"dense over a per-sample input of shape {list(self.shape(op.x))}: "
                           "NIR's Affine maps vectors", hint="flatten before the dense layer")
        p = self.graph.params
        w = np.asarray(p[op.weight], np.float32)
        if op.bias is None:
            name = self.add(op, op.name, "Linear", {"weight": w}, self.sources[op.x])
        else:
            name = self.add(op, op.name, "Affine",
                            {"weight": w, "bias": np.asarray(p[op.bias], np.float32).copy()},
                            self.sources[op.x])
        self.sources[op.out] = [name]
        self.synaptic[op.out] = name

    def op_if(self, op: O.IFNeuron) -> None:
        shape = self.shape(op.out)
        theta = self.full(op, op.threshold, shape)
        below = np.nextafter(theta, np.float32(0), dtype=np.float32)
        meta = {"dt": DT, "snnc_reset": op.reset, "snnc_v_init": float(op.v_init),
                "snnc_threshold": theta,
                "fires_where": "v >= snnc_threshold, i.e. v > v_threshold in float32"}
        name = self.add(op, op.name, "IF", {
            "r": np.ones(shape, np.float32), "v_threshold": below,
            "v_reset": np.zeros(shape, np.float32)}, self.sources[op.x], meta)
        self.sources[op.out] = [name]
        if op.reset == "subtract":
            self.approx(op, "reset by subtraction (V -= threshold)",
                        "IF with v_reset = 0: consumers reset to zero, losing the charge "
                        "above the threshold", "compile with --reset zero for an exact "
                        "NIR export")
        if op.v_init:
            self.approx(op, f"initial membrane v_init = {op.v_init:g} x threshold",
                        "IF starting at v = 0 (v_init kept in the node's metadata)",
                        "compile with --v-init 0 for an exact NIR export")
        if op.max_spikes:
            self.approx(op, f"spike budget of {op.max_spikes} spikes per neuron "
                            "(finite input time)", "IF without a budget",
                        "drop --fit for an exact NIR export")

    def _pool_args(self, op: O.Op, what: str) -> dict[str, Any]:
        a = {k: getattr(op, k, (1, 1)) for k in ("kernel", "strides", "pads", "dilations")}
        a["ceil_mode"] = op.ceil_mode
        hw = self.shape(op.x)[1:]
        if any(a["pads"]) or tuple(a["dilations"]) != (1, 1):
            raise op.error(f"{what} with padding {list(a['pads'])} or dilation "
                           f"{list(a['dilations'])}: NIR's pools have neither "
                           "a divisor rule for padding nor dilation",
                           hint="use unpadded, undilated pooling windows")
        if a["ceil_mode"] and any(
                spatial_out(hw[i], a["kernel"][i], a["strides"][i], 0, 0, 1, True)
                != spatial_out(hw[i], a["kernel"][i], a["strides"][i], 0, 0, 1, False)
                for i in range(2)):
            raise op.error(f"{what} with ceil_mode, which adds a partial window here: NIR's "
                           "pools have no ceil mode", hint="use ceil_mode=0")
        return {"kernel_size": np.asarray(a["kernel"], np.int64),
                "stride": np.asarray(a["strides"], np.int64),
                "padding": np.zeros(2, np.int64)}

    def op_avgpool(self, op: O.AvgPool) -> None:
        name = self.add(op, op.name, "AvgPool2d", self._pool_args(op, "average pool"),
                        self.sources[op.x])
        self.sources[op.out] = [name]

    def op_spikemaxpool(self, op: O.SpikeMaxPool) -> None:
        if op.x not in self.spikes:
            raise op.error("spiking max-pool over a value that is not spikes: its NIR "
                           "approximation (an OR of the window's spikes) needs spikes",
                           hint="pool after a spiking layer")
        pool = self.add(op, op.name, "SumPool2d", self._pool_args(op, "max pool"),
                        self.sources[op.x], {"snnc_role": "max-pool window sum"})
        shape = self.shape(op.out)
        gate = self.add(op, f"{op.name}_gate", "IF", {
            "r": np.ones(shape, np.float32), "v_threshold": np.full(shape, 0.5, np.float32),
            "v_reset": np.zeros(shape, np.float32)}, [pool],
            {"dt": DT, "snnc_role": "max-pool gate: spikes where any input of the window "
                                    "spiked (OR)"})
        self.sources[op.out] = [gate]
        self.approx(op, "spiking max-pool (the most active input of each window passes its "
                        "spikes)", "SumPool2d + IF gate (threshold 0.5, reset to 0): a spike "
                        "where any input of the window spiked in that step (OR); exact when "
                        "one input is active, more spikes when several fire in different "
                        "steps", "use average pooling in the model for an exact NIR export")

    def op_flatten(self, op: O.Op) -> None:
        shape = self.shape(op.x)
        if len(shape) == 1:  # nothing to flatten
            self.sources[op.out] = list(self.sources[op.x])
            return
        name = self.add(op, op.name, "Flatten", {"input_type": {"input": np.asarray(shape)},
                                                 "start_dim": 0, "end_dim": -1},
                        self.sources[op.x])
        self.sources[op.out] = [name]

    def op_reshape(self, op: O.Reshape) -> None:
        if len(self.shape(op.out)) != 1:
            raise op.error(f"reshape to {list(self.shape(op.out))}: NIR has only Flatten",
                           hint="reshape to one axis (flatten) only")
        self.op_flatten(op)

    def op_add(self, op: O.Add) -> None:
        srcs = [s for x in op.xs for s in self.sources[x]]
        if len(set(srcs)) != len(srcs):
            raise op.error("adds the same value more than once: NIR sums distinct edges only",
                           hint="write x + x as a scale by 2")
        self.sources[op.out] = srcs

    def op_affine(self, op: O.Affine) -> None:
        shape = self.shape(op.out)
        if op.scale is not None and op.shift is not None:
            raise op.error("affine with both a scale and a shift has no NIR node",
                           hint="fold the scale into the layer before it")
        if op.scale is not None:
            name = self.add(op, op.name, "Scale", {"scale": self.full(op, op.scale, shape)},
                            self.sources[op.x])
            self.sources[op.out] = [name]
            return
        self.sources[op.out] = list(self.sources[op.x])
        if op.shift is not None:
            self.fold(op, op.x, self.full(op, op.shift, shape))

    def op_current(self, op: O.Current) -> None:
        shape = self.shape(op.out)
        self.sources[op.out] = list(self.sources[op.x])
        self.fold(op, op.x, self.full(op, op.bias, shape))
        if op.steps:
            self.approx(op, f"bias current for the first {op.steps} steps only (finite input "
                            "time)", "a constant bias (every step) of the layer feeding it",
                        "drop --fit for an exact NIR export")

    def fold(self, op: O.Op, value: str, current: np.ndarray) -> None:
        """Add a constant current to the bias of the synaptic node that alone feeds
        `value` (through joins and other folded currents)."""
        target = self._private_synaptic(value)
        if target is None:
            raise op.error("a constant current on a value that no conv / dense layer feeds "
                           "alone has no NIR node",
                           hint="put the bias on the layer before it")
        node = self.nodes[target]
        if node.kind == "Conv2d":
            per_channel = current.reshape(current.shape[0], -1)
            if not (per_channel == per_channel[:, :1]).all():
                raise op.error("a current that varies inside a channel cannot be folded into "
                               "a convolution's bias (NIR has no bias-only node)",
                               hint="use per-channel biases")
            add = per_channel[:, 0]
        else:
            add = current.reshape(-1)
        if node.kind == "Linear":
            node.kind = "Affine"
            node.args["bias"] = np.zeros(node.args["weight"].shape[0], np.float32)
        node.args["bias"] = (node.args["bias"] + add).astype(np.float32)
        node.meta.setdefault("snnc_folded", []).append(op.name)

    def _private_synaptic(self, value: str) -> str | None:
        """The NIR node of a conv / dense whose output reaches `value` and nothing else."""
        g = self.graph
        if len(self.users.get(value, [])) != 1 or value in g.outputs:
            return None
        if value in self.synaptic:
            return self.synaptic[value]
        src = self.producers.get(value)
        if isinstance(src, O.Add):
            for x in src.xs:
                hit = self._private_synaptic(x)
                if hit is not None:
                    return hit
        elif isinstance(src, O.Current) or (isinstance(src, O.Affine) and src.scale is None):
            return self._private_synaptic(src.x)
        return None

    def op_accumulate(self, op: O.Accumulate) -> None:
        shape = self.shape(op.out)
        name = self.add(op, op.name, "I", {"r": np.ones(shape, np.float32)},
                        self.sources[op.x], {"dt": DT, "readout": str(
                            self.graph.meta.get("readout", "membrane"))})
        self.sources[op.out] = [name]

    def op_spikesoftmax(self, op: O.SpikingSoftmax) -> None:
        self.op_accumulate(op)  # an integrator of the same input
        self.approx(op, "spiking softmax readout (Poisson clock, one categorical draw over "
                        "softmax(V) per clock spike)",
                    "I (integrator) of its input: read argmax V", "use --readout membrane "
                    "for an exact NIR export")

    # ---- result -------------------------------------------------------------------------
    def build(self) -> Any:
        nir = _import_nir()
        nodes = {}
        for name, n in self.nodes.items():
            meta = {k: (v if not isinstance(v, list) else ",".join(v))
                    for k, v in n.meta.items()}
            nodes[name] = getattr(nir, n.kind)(**n.args, metadata=meta)
        g = self.graph
        meta = {"producer": "snnc", "dt": DT,
                "time_unit": "one simulator step (run consumers with dt = 1)",
                "timesteps": int(g.meta.get("timesteps", 0)),
                "coding": str(g.meta.get("coding", "rate")),
                "input_coding": str(g.meta.get("input_coding", "analog")),
                "readout": str(g.meta.get("readout", "membrane")),
                "approximations": len(self.unsupported)}
        try:
            return nir.NIRGraph(nodes=nodes, edges=list(self.edges), metadata=meta)
        except (ValueError, AssertionError) as e:
            raise SnncError(f"internal: the NIR graph does not type-check: {e}") from None


def nir_graph(graph: Graph, *, strict: bool = False) -> tuple[Any, list[dict[str, str]]]:
    """The NIR graph of a rate-coded spiking graph and the features it approximates, each
    {"node": ONNX node (or op) name, "feature": what NIR cannot express, "exported_as":
    what the graph holds instead}. strict: refuse (SnncError) instead of approximating.
    Raises SnncError naming the op for anything NIR cannot express at all."""
    _import_nir()
    b = _Builder(graph, strict)
    b.run()
    return b.build(), b.unsupported
