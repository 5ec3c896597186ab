"""The spiking graph as a placement engine sees it: populations of neurons (the things
that occupy cores) and the projections between them, with connectivity kept analytic so
that any slice of a population can be asked for its distinct input axons and synapses
without enumerating synapses (VGG-sized networks have billions).

Populations: every IF population, every spiking max-pool (its gate neurons, one per
window output, each reading its window's inputs), the spiking softmax, and the membrane
readout (an `accumulate` of a current: non-spiking integrator neurons). The network
input (`encode`) is the host: a source that occupies no core.

Projections: walking back from a population's input current through the linear ops
(current, affine, add, concat, pad, flatten, reshape, average pool, conv, dense) to the
spike sources. A path through a dense layer connects every neuron of its sources
(all-to-all); other paths are separable per axis of a (C, H, W) value:
  * channels: for every target channel, a range of source channels (conv groups,
    identity through pools, offsets through concat);
  * rows and columns: chains of (stride, offsets, size) stages, source = target * stride
    + offset, kept only inside [0, size) at every stage (padding and pooling edges stay
    exact).
Decision: two paths between the same source and target neurons (a residual identity
beside a conv tap) count as two synapses (an upper bound: some chips store them as one).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from snnc.ir import ops as O
from snnc.ir.errors import SnncError
from snnc.ir.graph import Graph


@dataclass(frozen=True)
class Stage:
    """source = target * stride + offset for offset in offsets, valid in [0, size)."""

    stride: int
    offsets: tuple[int, ...]
    size: int


@dataclass(frozen=True)
class AxisMap:
    """A chain of stages from target coordinates to source coordinates (first stage
    applies first, to the target)."""

    stages: tuple[Stage, ...]
    target_size: int

    def reach(self, lo: int, hi: int) -> np.ndarray:
        """bool mask over source coordinates reached by target coordinates [lo, hi)."""
        cur = np.zeros(self.target_size, bool)
        cur[lo:hi] = True
        for st in self.stages:
            nxt = np.zeros(st.size, bool)
            idx = np.flatnonzero(cur)
            for o in st.offsets:
                s = idx * st.stride + o
                nxt[s[(s >= 0) & (s < st.size)]] = True
            cur = nxt
        return cur

    def per_target(self, lo: int, hi: int) -> np.ndarray:
        """For every target coordinate in [lo, hi): how many distinct source coordinates
        it reaches (int64 array of hi - lo)."""
        return np.array([self.reach(t, t + 1).sum() for t in range(lo, hi)], np.int64)

    def per_source(self, lo: int, hi: int) -> np.ndarray:
        """For every source coordinate: how many target coordinates in [lo, hi) reach it."""
        out = np.zeros(self.source_size, np.int64)
        for t in range(lo, hi):
            out += self.reach(t, t + 1)
        return out

    @property
    def source_size(self) -> int:
        return self.stages[-1].size if self.stages else self.target_size


def identity_axis(size: int) -> AxisMap:
    return AxisMap((), size)


@dataclass(frozen=True)
class ChannelMap:
    """For target channel o: source channels [first[o], first[o] + width[o]) (width 0:
    none)."""

    first: np.ndarray
    width: np.ndarray
    source_size: int

    def reach(self, lo: int, hi: int) -> np.ndarray:
        return self.per_source(lo, hi) > 0

    def per_source(self, lo: int, hi: int) -> np.ndarray:
        """For every source channel: how many target channels in [lo, hi) read it."""
        diff = np.zeros(self.source_size + 1, np.int64)
        f, w = self.first[lo:hi], self.width[lo:hi]
        np.add.at(diff, f[w > 0], 1)
        np.add.at(diff, (f + w)[w > 0], -1)
        return np.cumsum(diff[:-1])


@dataclass
class Projection:
    """Connectivity from a source population into a target population."""

    source: str  # population name ("input" for the host)
    dense: bool  # all-to-all
    chan: ChannelMap | None = None  # separable spatial connectivity (dense False)
    rows: AxisMap | None = None
    cols: AxisMap | None = None
    via: tuple[str, ...] = ()  # the ops on the path, for messages


@dataclass
class Population:
    name: str  # the IR op
    origin: str  # its ONNX node (for messages)
    kind: str  # if, gate, softmax, readout
    shape: tuple[int, ...]  # per sample: (C, H, W) or (N,)
    projections: list[Projection] = field(default_factory=list)
    synaptic: list[str] = field(default_factory=list)  # IR names of its conv/dense ops
    #: "geometry" of its (first) synaptic op: c, f, kernel, out, bias, strides, pads, in;
    #: "dense": it has a dense layer; "pools": average pools on its input paths
    attrs: dict = field(default_factory=dict)

    @property
    def neurons(self) -> int:
        return math.prod(self.shape)

    @property
    def spatial(self) -> bool:
        return len(self.shape) == 3


@dataclass
class NetModel:
    populations: dict[str, Population]  # in graph order
    input_shape: tuple[int, ...]
    outputs: dict[str, list[str]]  # population -> populations it projects to

    def shape_of(self, source: str) -> tuple[int, ...]:
        return self.input_shape if source == "input" else self.populations[source].shape


SOURCES = (O.IFNeuron, O.SpikeMaxPool, O.SpikingSoftmax)


def build(graph: Graph) -> NetModel:
    """The populations and projections of a spiking graph (see the module docstring)."""
    producers = graph.producers()
    pops: dict[str, Population] = {}
    source_of: dict[str, str] = {}  # value -> population (or "input") that emits it
    for op in graph.ops:
        if isinstance(op, O.Encode):
            source_of[op.out] = "input"
    for op in graph.ops:
        kind = None
        if isinstance(op, O.IFNeuron):
            if op.signed:
                raise SnncError("signed neurons (-1 spikes) have no counterpart on the chip "
                                "targets", node=op.origin or op.name,
                                hint="compile without --signed-neurons to place the network")
            kind = "if"
        elif isinstance(op, O.SpikeMaxPool):
            kind = "gate"
        elif isinstance(op, O.SpikingSoftmax):
            kind = "softmax"
        elif isinstance(op, O.Accumulate) and op.x not in source_of:
            kind = "readout"  # integrates a current: neurons on chip
        if kind is None:
            continue
        shape = tuple(graph.shape(op.out))
        pop = Population(op.name, op.where(), kind, shape)
        if kind == "readout":  # name it after the layer it integrates, not "readout"
            feeding = producers.get(op.x)
            while isinstance(feeding, (O.Current, O.Affine)):
                feeding = producers.get(feeding.x)
            if feeding is not None:
                pop.origin = feeding.where()
        if kind == "gate":
            src = source_of.get(op.x)
            if src is None:
                raise op.error("a spiking max-pool must read spikes of one population "
                               "directly to be placed")
            c, h, w = graph.shape(op.x)
            dil = op.dilations
            rows = AxisMap((Stage(op.strides[0], tuple(i * dil[0] - op.pads[0]
                                                        for i in range(op.kernel[0])), h),),
                           shape[1])
            cols = AxisMap((Stage(op.strides[1], tuple(j * dil[1] - op.pads[1]
                                                        for j in range(op.kernel[1])), w),),
                           shape[2])
            pop.projections.append(Projection(src, False, _identity_channels(c), rows, cols,
                                              (op.name,)))
        else:
            pop.projections = _walk(graph, producers, source_of, op.x, pop)
        pops[op.name] = pop
        source_of[op.out] = op.name
    outputs: dict[str, list[str]] = {name: [] for name in pops}
    outputs["input"] = []
    for name, pop in pops.items():
        for p in pop.projections:
            if name not in outputs[p.source]:
                outputs[p.source].append(name)
    inp = tuple(graph.shape(graph.inputs[0]))
    return NetModel(pops, inp, outputs)


def _identity_channels(c: int) -> ChannelMap:
    return ChannelMap(np.arange(c), np.ones(c, np.int64), c)


def _walk(graph: Graph, producers, source_of, value: str, pop: Population
          ) -> list[Projection]:
    """Projections reaching `value` (the input current of `pop`)."""
    shape = tuple(graph.shape(value))
    out: list[Projection] = []

    def visit(v: str, chan: ChannelMap | None, rows: AxisMap | None, cols: AxisMap | None,
              dense: bool, via: tuple[str, ...]) -> None:
        if v in source_of:
            out.append(Projection(source_of[v], dense, None if dense else chan,
                                  None if dense else rows, None if dense else cols, via))
            return
        op = producers.get(v)
        if op is None:
            raise SnncError(f"internal: value {v} has no producer")
        via = via + (op.name,)
        vshape = tuple(graph.shape(op.out))
        if isinstance(op, (O.Current, O.Affine)):
            visit(op.x, chan, rows, cols, dense, via)
        elif isinstance(op, O.Add):
            for x in op.xs:
                visit(x, chan, rows, cols, dense, via)
        elif isinstance(op, O.Dense):
            pop.synaptic.append(op.name)
            w = graph.params[op.weight]
            src = op.x  # the (C, H, W) a flatten made flat, for the layer's geometry
            while isinstance(producers.get(src), (O.Flatten, O.Reshape)):
                src = producers[src].x
            ishape = tuple(graph.shape(src))
            c, k = (ishape[0], ishape[1:]) if len(ishape) == 3 else (math.prod(ishape), (1, 1))
            pop.attrs.setdefault("geometry", {
                "c": int(c), "f": int(w.shape[0]), "kernel": tuple(int(v) for v in k),
                "out": (1, 1), "bias": op.bias is not None, "strides": (1, 1),
                "pads": (0, 0, 0, 0), "in": ishape})
            pop.attrs["dense"] = True
            visit(op.x, None, None, None, True, via)
        elif isinstance(op, (O.Flatten, O.Reshape)):
            if not dense:
                raise op.error("a reshape feeding neurons without a dense layer cannot be "
                               "placed (its connectivity is not separable)")
            visit(op.x, None, None, None, True, via)
        elif dense:  # everything upstream of a dense layer connects all-to-all
            for x in op.inputs():
                visit(x, None, None, None, True, via)
        elif isinstance(op, O.Conv):
            pop.synaptic.append(op.name)
            w = graph.params[op.weight]
            o, cg = w.shape[:2]
            og = o // op.groups
            first = (np.arange(o) // og) * cg
            cm = ChannelMap(first, np.full(o, cg, np.int64), cg * op.groups)
            c_in, h, wd = graph.shape(op.x)
            st_r = Stage(op.strides[0], tuple(a * op.dilations[0] - op.pads[0]
                                              for a in range(w.shape[2])), h)
            st_c = Stage(op.strides[1], tuple(e * op.dilations[1] - op.pads[1]
                                              for e in range(w.shape[3])), wd)
            pop.attrs.setdefault("geometry", {
                "c": int(c_in), "f": int(o), "kernel": tuple(int(v) for v in w.shape[2:]),
                "out": tuple(int(v) for v in vshape[1:]), "bias": op.bias is not None,
                "strides": tuple(op.strides), "pads": tuple(op.pads), "in": (c_in, h, wd),
                "dilations": tuple(op.dilations), "groups": op.groups})
            visit(op.x, _compose_channels(chan, cm, vshape[0]),
                  _extend(rows, st_r, vshape[1]), _extend(cols, st_c, vshape[2]),
                  False, via)
        elif isinstance(op, O.AvgPool):
            c_in, h, wd = graph.shape(op.x)
            st_r = Stage(op.strides[0], tuple(a - op.pads[0] for a in range(op.kernel[0])), h)
            st_c = Stage(op.strides[1], tuple(e - op.pads[1] for e in range(op.kernel[1])), wd)
            pop.attrs.setdefault("pools", []).append(
                {"kernel": tuple(op.kernel), "strides": tuple(op.strides)})
            visit(op.x, chan, _extend(rows, st_r, vshape[1]), _extend(cols, st_c, vshape[2]),
                  False, via)
        elif isinstance(op, O.Pad):
            p = op.pads
            if len(vshape) != 3 or p[0] or p[3]:
                raise op.error("only spatial padding can be placed")
            c_in, h, wd = graph.shape(op.x)
            visit(op.x, chan, _extend(rows, Stage(1, (-p[1],), h), vshape[1]),
                  _extend(cols, Stage(1, (-p[2],), wd), vshape[2]), False, via)
        elif isinstance(op, O.Concat):
            if op.axis != 0:
                raise op.error("only a concatenation of channels can be placed")
            start = 0
            for x in op.xs:
                c = graph.shape(x)[0]
                visit(x, _slice_channels(chan, start, c, vshape[0]), rows, cols, False, via)
                start += c
        else:
            raise op.error(f"op kind '{op.kind}' between neurons cannot be placed")

    if len(shape) == 3:
        visit(value, _identity_channels(shape[0]), identity_axis(shape[1]),
              identity_axis(shape[2]), False, ())
    else:
        visit(value, None, None, None, True, ())
    return out


def _extend(m: AxisMap | None, stage: Stage, size: int) -> AxisMap:
    if m is None:
        return AxisMap((stage,), size)
    return AxisMap(m.stages + (stage,), m.target_size)


def _compose_channels(outer: ChannelMap | None, inner: ChannelMap, size: int) -> ChannelMap:
    """outer: target channel -> mid range; inner: mid channel -> source range."""
    if outer is None:
        return inner
    first = np.zeros(len(outer.first), np.int64)
    width = np.zeros(len(outer.first), np.int64)
    for o in range(len(outer.first)):
        mids = range(outer.first[o], outer.first[o] + outer.width[o])
        if not len(mids):
            continue
        lo = min(inner.first[m] for m in mids)
        hi = max(inner.first[m] + inner.width[m] for m in mids)
        first[o], width[o] = lo, hi - lo
    return ChannelMap(first, width, inner.source_size)


def _slice_channels(outer: ChannelMap | None, start: int, c: int, size: int) -> ChannelMap:
    """Through a concat: the part of outer's ranges that falls in [start, start + c),
    shifted to the operand's channels."""
    if outer is None:
        outer = _identity_channels(size)
    lo = np.clip(outer.first, start, start + c)
    hi = np.clip(outer.first + outer.width, start, start + c)
    return ChannelMap(lo - start, np.maximum(hi - lo, 0), c)
