"""Time-to-first-spike coding (TDSNN, METHODS 9): the passes that lower an ANN-level graph
to a temporally coded spiking graph, in pipeline order:

  (normalize            every layer's calibrated maximum scaled to 1, as for rate coding)
  convert-to-ttfs      every input becomes a reverse-coded encoder (ttfsencode), every
                       ReLU a layer of fire-once LIF neurons (ttfsneuron), every max-pool
                       a temporal max-pool, every output a leaky readout; the biases of
                       the linear ops between two spike sources move into the neuron as
                       the synapse of a bias neuron (an input of value 1, so it spikes at
                       T(1) and carries G(1): weight b / G(1));
  offset-compensation  (networks trained with plain ReLU) folds the W @ 1 term into that
                       bias (below);
  ttfs-schedule        the time base: per spike source a window (how late its spikes
                       can come), from which every layer's release step, deadline and
                       ticking weight follow, pipelined as in the paper's Figure 3;
  negate-weights       negates the synaptic weights and bias of every layer but the
                       output, so that a larger ANN value means a more negative potential
                       and a later spike.

Notation: a value a >= 0 of a layer travels as one spike k = T(a) = ceil(L ln(a + 1))
steps after the layer's reference step; the next synaptic layer reads G(a) = exp(k/L).
A layer whose inputs have reference step R and spike by R + W (its window) releases at
R + W; its potential then is -exp(-W/L) (sum_i W_i G(a_i) + b), and with the ticking
weight (1 - exp(-1/L)) exp(-W/L) it spikes T(A) steps after release for
A = sum_i W_i G(a_i) + b >= 0, at once for A < 0 (ReLU). Its own reference step is its
release.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from snnc.ir import ops as O
from snnc.ir.errors import SnncError
from snnc.ir.graph import Graph, Value
from snnc.ir.semantics import MOVES_DATA, ttfs_g, ttfs_time
from snnc.passes.base import Pass, PassContext

#: ops that emit spikes in a temporally coded graph
SOURCES = (O.TTFSEncode, O.TTFSNeuron, O.TTFSMaxPool)
#: ops that read a layer's input current
LAYERS = (O.TTFSNeuron, O.TTFSReadout)


def leak_of(graph: Graph) -> float:
    return float(graph.meta["ttfs_leak"])


def shift_of(graph: Graph) -> float:
    return float(graph.meta.get("ttfs_shift", 0.0))


#: spike-time rounding -> the shift of ceil(L ln(a + 1) - shift)
TIMING = {"ceil": 0.0, "round": 0.5}


def path(graph: Graph, layer: O.Op) -> tuple[list[O.Op], list[str]]:
    """The linear ops between a layer (ttfsneuron / ttfsreadout) and its spike sources
    (in graph order) and the source values."""
    prod = graph.producers()
    spikes = {op.out for op in graph.ops if isinstance(op, SOURCES)}
    seen: dict[str, O.Op] = {}
    sources: list[str] = []
    stack = [layer.x]
    while stack:
        v = stack.pop()
        if v in spikes:
            if v not in sources:
                sources.append(v)
            continue
        op = prod.get(v)
        if op is None:
            raise layer.error("the input of this layer does not come from spikes")
        if op.name not in seen:
            seen[op.name] = op
            stack.extend(op.inputs())
    order = {op.name: i for i, op in enumerate(graph.ops)}
    return sorted(seen.values(), key=lambda o: order[o.name]), sources


def _one_source(graph: Graph, layer: O.Op) -> tuple[list[O.Op], str]:
    ops, sources = path(graph, layer)
    if len(sources) != 1:
        raise layer.error(f"this layer reads {len(sources)} spiking layers (a residual or "
                          "concatenation join); temporal coding handles layers that read "
                          "one", hint="use --coding rate for this network")
    users = graph.consumers()
    mine = {op.out for op in ops} | {layer.x}
    for op in ops:
        if any(u.name != layer.name and u.out not in mine for u in users.get(op.out, [])):
            raise op.error("this op feeds two spiking layers; temporal coding needs a "
                           "separate path per layer", hint="use --coding rate")
    return ops, sources[0]


def _evaluate(graph: Graph, ctx: PassContext, ops: list[O.Op], src: str, out: str,
              value: float) -> np.ndarray:
    """The path ops on a constant input (per sample), through the simulator's ANN mode."""
    if ctx.simulator is None:
        raise SnncError("internal: temporal coding passes need the simulator")
    sub = Graph(inputs=[src], outputs=[out], params=graph.params,
                values={src: Value(src, graph.shape(src))})
    sub = sub.rebuild(ops)
    x = np.full((1,) + tuple(graph.shape(src)), value, np.float32)
    return np.asarray(ctx.simulator.run_ann(sub, {src: x}, [out])[out][0], np.float64)


def _check_gated(graph: Graph, leak: float) -> None:
    """A retrained network reads every spiking value through a gate G(x) of leak L: no
    weight, pool or join may read a rectifier (or the input) directly, and the gates
    read nothing but those values (through data-moving ops)."""
    raw: set[str] = set(graph.inputs)  # values a spike would carry as G(value)
    for op in graph.ops:
        ins = op.inputs()
        if isinstance(op, O.TTFSGate):
            if abs(op.leak - leak) > 1e-6 * leak:
                raise op.error(f"G(x) with L = {op.leak:g} where the network's other gates "
                               f"have L = {leak:g}")
            if not all(v in raw for v in ins):
                raise op.error("G(x) must read a ReLU, a max-pool of one, or the input")
        elif isinstance(op, (O.Relu, O.MaxPool)) or (op.kind in MOVES_DATA and ins and all(
                v in raw for v in ins)):
            raw.add(op.out)
        elif any(v in raw for v in ins):
            raise op.error(f"this {op.kind} reads a value that did not pass G(x): the "
                           "network mixes gated and plain layers",
                           hint="put G(x) in front of every synaptic layer when retraining, "
                                "or train without it and convert with offset compensation")


def _strip_biases(op: O.Op) -> O.Op:
    if isinstance(op, (O.Conv, O.Dense)) and op.bias is not None:
        return _replace(op, bias=None)
    if isinstance(op, O.Affine) and op.shift is not None:
        return _replace(op, shift=None)
    if isinstance(op, (O.Current, O.BatchNorm)):
        raise op.error(f"a {op.kind} op between spiking layers is not supported with "
                       "temporal coding")
    return op


def _replace(op: O.Op, **changes) -> O.Op:
    import dataclasses

    return dataclasses.replace(op, **changes)


@dataclass(frozen=True)
class ConvertToTtfs(Pass):
    """Lower to temporal coding (module docstring), from a graph that `normalize` scaled
    so that every layer's calibrated maximum (p99.9) is 1. The encoder's offset is the
    most negative calibration input (0 when none is negative): inputs are coded as
    range * (x - offset) >= 0, biases are multiplied by `range`, so that every layer's
    values are `range` times its normalized ANN values (ReLU networks are positively
    homogeneous), and the readout divides by `range` again; offset compensation accounts
    for the offset.
    Decision: range 20 by default, about three time constants (exp(3) - 1): coding is
    relative (a value is read within exp(+-1/2L) of itself) except near 0, where the
    smallest nonzero value a spike can carry is exp(1/2L) - 1 (0.105 at L = 5); at range
    20 that is half a percent of a layer's maximum. Each layer's window then spans about
    L ln(range + 1) + 1 steps (16 at L = 5).
    timing "round" (default) or "ceil" (the paper's): spikes at ceil(L ln(a + 1) - 1/2)
    or ceil(L ln(a + 1)).
    Decision: rounding by default. With ceil, a spike carries G(a) in [a + 1, (a + 1)
    exp(1/L)): every value is read 1.11 times too large on average at L = 5 (L (exp(1/L)
    - 1)), an error an ANN retrained with G(x) has learned but a plain ReLU network has
    not; with rounding G(a) / (a + 1) lies in [exp(-1/2L), exp(1/2L)), unbiased, and a
    zero still spikes at once and reads exactly 1. It costs nothing: the neuron's
    threshold becomes (1 - exp(1/2L)) exp(-span/L) instead of 0 (semantics.ttfs_threshold)
    and the encoder subtracts 1/2 step.
    Decision: a bias is the synapse of a bias neuron of value 1 (the paper's choice),
    weight b / G(1) so that it adds exactly b; the constant part of the linear path (the
    biases, through pooling and padding) is computed by running the path on zeros, so a
    bias before an average pool or under padding lands where the ANN has it."""

    leak: float = 5.0
    timing: str = "round"
    range: float = 20.0
    #: the ANN was retrained with G(x) gates (ttfsgate) in front of its synaptic layers
    gated: bool = False
    name: ClassVar[str] = "convert-to-ttfs"
    requires: ClassVar[frozenset[str]] = frozenset({"no-batchnorm"})
    establishes: ClassVar[frozenset[str]] = frozenset({"spiking", "ttfs"})

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        if self.leak <= 0:
            raise SnncError(f"the leak constant must be > 0, got {self.leak}")
        if self.timing not in TIMING:
            raise SnncError(f"unknown spike timing '{self.timing}'", hint="use round or ceil")
        shift = TIMING[self.timing]
        if self.gated:
            _check_gated(graph, self.leak)
            if shift or self.range != 1.0:
                raise SnncError("a network retrained with G(x) converts exactly only with "
                                "ceil spike times and its own value range",
                                hint="drop --spike-time")
        elif "normalized" not in graph.facts:
            raise SnncError("convert-to-ttfs needs a normalized graph (or a network retrained "
                            "with G(x) gates)", hint="run normalize before it")
        g = graph.copy()
        users = g.consumers()
        fresh = g.name_reserver()
        offset = 0.0
        if ctx.calibration is not None:
            offset = min(0.0, float(np.min(ctx.calibration.x)))
        ops: list[O.Op] = []
        rename: dict[str, str] = {}
        spikes: set[str] = set()
        for v in g.inputs:
            enc = fresh(f"{v}.encoded")
            ops.append(O.TTFSEncode(name=fresh(f"encode.{v}"), out=enc, origin=v, x=v,
                                    leak=self.leak, offset=offset, shift=shift,
                                    scale=self.range))
            rename[v] = enc
            spikes.add(enc)
        for op in g.ops:
            op = g.remap(op, rename)
            if op.kind in MOVES_DATA and all(v in spikes for v in op.inputs()):
                spikes.add(op.out)
            if isinstance(op, O.Relu):
                spikes.add(op.out)
                ops.append(O.TTFSNeuron(name=op.name, out=op.out, origin=op.origin, x=op.x,
                                        leak=self.leak, shift=shift))
            elif isinstance(op, O.Clip):
                raise op.error(f"Clip({op.lo}, {op.hi}) has no temporally coded equivalent "
                               "yet", hint="use --coding rate, or train with ReLU")
            elif isinstance(op, O.MaxPool):
                if op.x not in spikes:
                    raise op.error("a max-pool of values that are not spikes has no "
                                   "temporally coded equivalent",
                                   hint="make a ReLU the op right before the max-pool")
                ops.append(O.TTFSMaxPool(name=op.name, out=op.out, origin=op.origin, x=op.x,
                                         **op.pool_window()))
                spikes.add(op.out)
            elif isinstance(op, O.Softmax):
                if op.out not in g.outputs or users.get(op.out):
                    raise op.error("softmax is only supported as the final op")
                rename[op.out] = op.x
            elif isinstance(op, O.TTFSGate):  # what the spike of its input already carries
                rename[op.out] = op.x
                if op.x in spikes:
                    spikes.add(op.out)
            else:
                ops.append(op)
        outputs = []
        for v in g.outputs:
            src = rename.get(v, v)
            out = fresh(f"{v}.readout")
            ops.append(O.TTFSReadout(name=out, out=out, origin="readout", x=src,
                                     leak=self.leak, scale=1.0 / self.range))
            outputs.append(out)
        g.outputs = outputs
        g = g.rebuild(ops)
        g1 = float(ttfs_g(1.0, self.leak, shift))
        new_ops = list(g.ops)
        index = {op.name: i for i, op in enumerate(new_ops)}
        for layer in [op for op in g.ops if isinstance(op, LAYERS)]:
            pops, src = _one_source(g, layer)
            if pops and not any(isinstance(o, (O.Conv, O.Dense)) for o in pops):
                raise layer.error("no weights (conv or dense) between this layer and the "
                                  "spikes it reads", hint="use --coding rate")
            if not pops:
                raise layer.error("this layer reads spikes directly, without weights")
            const = _evaluate(g, ctx, pops, src, layer.x, 0.0) * self.range
            for op in pops:
                new_ops[index[op.name]] = _strip_biases(op)
            if np.any(const):
                name = g.add_param(f"{layer.name}.bias", (const / g1).astype(np.float32))
                new_ops[index[layer.name]] = _replace(layer, bias=name)
        g = g.rebuild(new_ops)
        g.meta.update({"coding": "ttfs", "ttfs_leak": self.leak, "ttfs_shift": shift,
                       "ttfs_range": self.range, "readout": "membrane"})
        return g


@dataclass(frozen=True)
class OffsetCompensation(Pass):
    """Fold the W @ 1 term into the bias, for networks trained with plain ReLU.

    Decision (not in the paper, which retrains the ANN with G(x) in front of every
    synaptic layer): a spike carries G(a) = exp(ceil(L ln(a + 1)) / L), and
    a + 1 <= G(a) < (a + 1) exp(1/L), so a layer computes f(G(a)) = f(a + 1) + e with
    f its linear path (weights, pooling, padding; no bias) and e the coding error. An ANN
    trained with ReLU computes f(a) + b; f is linear, so f(a + 1) = f(a) + f(1), and the
    layer matches the ANN up to e when its bias becomes b - f(1). f(1) is f on an input
    of ones (per output position: under zero padding a border neuron sums fewer weights).
    The encoder codes x - offset, so for the first layer the constant is 1 - offset."""

    name: ClassVar[str] = "offset-compensation"
    requires: ClassVar[frozenset[str]] = frozenset({"ttfs"})

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        g = graph.copy()
        g1 = float(ttfs_g(1.0, leak_of(g), shift_of(g)))
        enc = {op.out: op for op in g.ops if isinstance(op, O.TTFSEncode)}
        new_ops = []
        notes = {}
        for op in g.ops:
            if isinstance(op, LAYERS):
                pops, src = _one_source(g, op)
                c = 1.0 - enc[src].scale * enc[src].offset if src in enc else 1.0
                comp = _evaluate(g, ctx, pops, src, op.x, c)
                bias = -comp if op.bias is None else g.params[op.bias] * g1 - comp
                op = _replace(op, bias=g.add_param(f"{op.name}.bias", (bias / g1).astype(
                    np.float32)))
                notes[op.origin or op.name] = float(np.abs(comp).max())
            new_ops.append(op)
        ctx.notes["offset_compensation"] = notes
        return g.rebuild(new_ops)


@dataclass(frozen=True)
class TtfsSchedule(Pass):
    """The time base. Per spike source a window W: T(a_max) + 1 steps, a_max the largest
    value it carries on the calibration data (onnxruntime's activations of the ReLU it
    replaces, in the coded range; the encoder's coded input), at least T(1) + 1 so that
    the bias neuron's spike lands inside it; a max-pool has its source's window and
    reference step. A layer
    whose inputs have reference step R releases at R + W (span W, ticking weight
    (1 - exp(-1/L)) exp(-W/L)), its bias neuron spikes at R + T(1), and it must fire by
    the window its own readers give it. The readout releases at R + W: the decision.
    Decision: the +1 step covers the coding error of the layers before (a spike may carry
    up to exp(1/L) times the value); a value past its window is clipped to the window's
    end, like saturation in rate coding."""

    name: ClassVar[str] = "ttfs-schedule"
    requires: ClassVar[frozenset[str]] = frozenset({"ttfs"})
    establishes: ClassVar[frozenset[str]] = frozenset({"ttfs-scheduled"})

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        g = graph.copy()
        L, shift = leak_of(g), shift_of(g)
        t1 = int(ttfs_time(1.0, L, shift))
        if ctx.calibration is None and not ctx.structure_only:
            raise SnncError("temporal coding needs calibration data to schedule its layers",
                            hint="pass --calib CALIB.npz (a few hundred training inputs)")
        neurons = [op for op in g.ops if isinstance(op, O.TTFSNeuron)]
        acts = ({} if ctx.calibration is None else
                ctx.calibration.activations([op.out for op in neurons]))
        window: dict[str, int] = {}
        for op in g.ops:
            if ctx.calibration is None:  # structure only (snnc check): any window
                a = 1.0 if isinstance(op, (O.TTFSEncode, O.TTFSNeuron)) else None
                if a is None:
                    continue
            elif isinstance(op, O.TTFSEncode):
                a = op.scale * (float(np.max(ctx.calibration.x)) - op.offset)
            elif isinstance(op, O.TTFSNeuron):
                lam = np.asarray(g.meta.get("lambda", {}).get(op.name, 1.0), np.float64)
                act = acts[op.out]
                if lam.ndim:  # one lambda per channel
                    lam = lam.reshape((-1,) + (1,) * (act.ndim - 2))
                a = float(np.max(act / lam)) * float(g.meta.get("ttfs_range", 1.0))
            else:
                continue
            window[op.out] = max(int(ttfs_time(max(a, 0.0), L, shift)), t1) + 1
        ref: dict[str, int] = {}
        new_ops = []
        layers = []
        for op in g.ops:
            if isinstance(op, O.TTFSEncode):
                ref[op.out] = 0
                op = _replace(op, deadline=window[op.out])
            elif isinstance(op, O.TTFSMaxPool):
                ref[op.out], window[op.out] = ref[op.x], window[op.x]
            elif isinstance(op, LAYERS):
                _, src = _one_source(g, op)
                r, w = ref[src], window[src]
                if isinstance(op, O.TTFSNeuron):
                    op = _replace(op, release=r + w, span=w, deadline=window[op.out],
                                  bias_at=r + t1)
                    ref[op.out] = r + w
                else:
                    op = _replace(op, ref=r, release=r + w, bias_at=r + t1)
                layers.append({"layer": op.origin or op.name, "release": r + w,
                               "window": window.get(op.out)})
            elif op.kind in MOVES_DATA and len(op.inputs()) == 1 and op.inputs()[0] in ref:
                v = op.inputs()[0]  # spikes moved (a flatten before a max-pool): same time
                ref[op.out], window[op.out] = ref[v], window[v]
            new_ops.append(op)
        g = g.rebuild(new_ops)
        end = max(op.release for op in g.ops if isinstance(op, O.TTFSReadout))
        g.meta["timesteps"] = end + 1
        g.meta["ttfs_schedule"] = layers
        ctx.notes["ttfs_schedule"] = layers
        return g


@dataclass(frozen=True)
class NegateWeights(Pass):
    """Negate every synaptic layer but the output (TDSNN): the last conv / dense op on
    the path into each fire-once layer, and its bias neuron's weight."""

    name: ClassVar[str] = "negate-weights"
    requires: ClassVar[frozenset[str]] = frozenset({"ttfs"})
    establishes: ClassVar[frozenset[str]] = frozenset({"ttfs-negated"})

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        g = graph.copy()
        new_ops = list(g.ops)
        index = {op.name: i for i, op in enumerate(new_ops)}
        for layer in [op for op in g.ops if isinstance(op, O.TTFSNeuron)]:
            pops, _ = _one_source(g, layer)
            syn = [op for op in pops if isinstance(op, (O.Conv, O.Dense))][-1]
            new_ops[index[syn.name]] = _replace(
                syn, weight=g.add_param(f"{syn.name}.negated", -g.params[syn.weight]))
            if layer.bias is not None:
                new_ops[index[layer.name]] = _replace(
                    layer, bias=g.add_param(f"{layer.name}.bias", -g.params[layer.bias]))
        return g.rebuild(new_ops)
