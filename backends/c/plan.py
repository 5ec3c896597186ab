"""Planning of the generated C: every size, offset, loop bound, buffer and constant array.

The templates (templates/*.j2) only format what this module decides. The plan walks the
spiking graph once, in its topological order, and for every value decides:
  * where it lives: a member of the caller's context struct (neuron state, spike and
    current buffers), an alias of another value's buffer (flatten, reshape, analog
    encode = the input copy) or nothing;
  * its C type: uint8_t for binary spikes; float (float variant) or int32_t (fixed) for
    currents; float or int64_t for the readout; float or int16_t for the input;
  * whether it is constant in time. Mirroring the simulator's "const" signals, the analog
    input current and whatever linear ops compute from it are computed once per input
    (in <name>_reset), not every step. A constant presented for the first `steps` steps
    only (finite input time) carries that gate: its consumers add it while t < steps.
Synaptic ops (conv, dense) fed by binary spikes are event-driven: every spike adds its
weight column (weights are stored column-major for that: [in][out]); others are the usual
gather loops with a wide accumulator (int64 in fixed point, saturated to int32 on store).

Decision: a spike buffer is a byte per neuron, scanned by the consumer, instead of an
index list: the scan costs what the neuron update already costs per step (one pass over
the population), and spikes then flow through pad / concat / flatten / max-pool without
any list bookkeeping.
Decision: values that live within one step (spikes, currents, scatter sums) share
memory. Each gets a live range [producing op, last consuming op] in graph order (aliases
extend their source's range) and a first-fit offset, largest buffer first, in an arena of
its own C type (one arena per type: no pointer ever reads memory as a type other than
the one it was declared with). What persists across steps has its own member: neuron state
(membranes, max-pool spike counts, spike budgets), the readout's running sum, the input
copy and currents computed once per input, and padded values (their border is written
once, at the reset). The RAM is then neuron state + the peak of the step buffers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from snnc.backends.c.names import Namer, c_float, c_int, c_string, comment
from snnc.ir import ops as O
from snnc.ir.errors import SnncError
from snnc.ir.graph import Graph
from snnc.ir.semantics import HANDLED_ATTRS, avgpool_counts, check_attrs, fixed_v_init

SIZES = {"uint8_t": 1, "int16_t": 2, "uint16_t": 2, "int32_t": 4, "uint32_t": 4, "float": 4,
         "int64_t": 8}


@dataclass
class Member:
    """A member of the context struct (RAM)."""

    ident: str
    ctype: str
    size: int
    owner: str
    what: str

    @property
    def nbytes(self) -> int:
        return SIZES[self.ctype] * self.size


@dataclass(eq=False)
class StepBuffer:
    """A buffer that lives within one step, placed in its type's arena by `_place`; it
    renders as the pointer expression the templates index."""

    ctype: str
    size: int
    owner: str
    what: str
    first: int
    last: int
    offset: int = -1
    arena: str = ""

    def __str__(self) -> str:
        assert self.offset >= 0, "internal: a step buffer was rendered before placement"
        return f"(ctx->{self.arena} + {self.offset})"

    @property
    def nbytes(self) -> int:
        return SIZES[self.ctype] * self.size


#: owners of the members that belong to no op (op names are arbitrary ONNX strings)
INPUT_OWNER, STEP_OWNER = "\0input", "\0step buffers"

ARENAS = {"uint8_t": "step_spikes", "float": "step_f32", "int32_t": "step_i32",
          "int64_t": "step_i64", "int16_t": "step_i16", "uint32_t": "step_u32",
          "uint16_t": "step_u16"}


@dataclass
class Array:
    """A const array in <name>_weights.c (flash)."""

    symbol: str
    ctype: str
    values: np.ndarray
    owner: str
    what: str

    @property
    def nbytes(self) -> int:
        return SIZES[self.ctype] * int(self.values.size)


@dataclass
class Plan:
    name: str
    fixed: bool
    input_bits: int
    input_size: int
    input_shape: tuple[int, ...]
    output_size: int
    output_shape: tuple[int, ...]
    output_scale: float
    timesteps: int
    members: list[Member] = field(default_factory=list)
    step_buffers: list[StepBuffer] = field(default_factory=list)
    arrays: list[Array] = field(default_factory=list)
    #: per op, in graph order: the template's variables
    ops: list[dict[str, Any]] = field(default_factory=list)
    spike_layers: list[str] = field(default_factory=list)
    output_ptr: str = ""
    uses_poisson: bool = False
    types: dict[str, str] = field(default_factory=dict)
    layers: list[dict[str, Any]] = field(default_factory=list)


def _literal(v: Any, fixed: bool) -> str:
    return c_int(int(v)) if fixed else c_float(float(v))


class Planner:
    def __init__(self, graph: Graph, name: str):
        self.g = graph
        self.name = name
        self.fixed = "fixed-point" in graph.facts
        fx = graph.meta.get("fixed_point", {})
        self.input_bits = int(fx.get("input_bits", 0))
        self.t = {"spike": "uint8_t", "cur": "int32_t" if self.fixed else "float",
                  "wide": "int64_t" if self.fixed else "float",
                  "readout": "int64_t" if self.fixed else "float",
                  "input": "int16_t" if self.fixed else "float",
                  "weight": "int32_t" if self.fixed else "float"}
        self.members = Namer()
        self.symbols = Namer()
        self.spikes = graph.spike_values()
        self.bound: dict[str, float] = {graph.inputs[0]: 2 ** 15}
        self.sparse: set[str] = set()
        self.values: dict[str, dict[str, Any]] = {}
        inp = graph.inputs[0]
        shape = graph.shape(inp)
        outs = graph.outputs
        if len(graph.inputs) != 1 or len(outs) != 1:
            raise SnncError("the C backend supports networks with one input and one output")
        self.plan = Plan(name=name, fixed=self.fixed, input_bits=self.input_bits,
                         input_size=math.prod(shape), input_shape=tuple(shape),
                         output_size=math.prod(graph.shape(outs[0])),
                         output_shape=tuple(graph.shape(outs[0])),
                         output_scale=float(fx.get("output_scales", [1.0])[0]),
                         timesteps=int(graph.meta.get("timesteps", 64)), types=self.t)
        self.plan.members.append(Member("x", self.t["input"], self.plan.input_size, INPUT_OWNER,
                                        "input copy"))
        self.members.used.update({"x", "t", "sample", "spikes", *ARENAS.values()})
        self.values[inp] = {"ptr": "ctx->x", "ctype": self.t["input"], "binary": False,
                            "const": True, "gate": 0, "size": self.plan.input_size}

    # ------------------------------------------------------------------ helpers ---------
    def member(self, op: O.Op, idx: int, what: str, ctype: str, size: int, tag: str) -> str:
        ident = self.members(f"{tag}{idx}_{op.name}")
        self.plan.members.append(Member(ident, ctype, size, op.name, what))
        return f"ctx->{ident}"

    def step_buffer(self, op: O.Op, idx: int, what: str, ctype: str, size: int
                    ) -> StepBuffer:
        """A buffer written by op `idx` and read within the same step (its range grows
        as consumers read it; see `run`)."""
        b = StepBuffer(ctype, size, op.name, what, idx, idx)
        self.plan.step_buffers.append(b)
        return b

    def array(self, op: O.Op, idx: int, what: str, ctype: str, values: np.ndarray,
              tag: str) -> str:
        sym = f"{self.name}_{self.symbols(f'{tag}{idx}_{op.name}')}"
        self.plan.arrays.append(Array(sym, ctype, np.ascontiguousarray(values).reshape(-1),
                                      op.name, what))
        return sym

    def bcast(self, op: O.Op, idx: int, arr: np.ndarray, shape: tuple[int, ...], tag: str,
              what: str, ctype: str) -> dict[str, Any]:
        """How a constant broadcast over a value is read: one literal, one entry per
        channel (axis 0) or one per element."""
        a = np.asarray(arr)
        full = np.broadcast_to(a, shape)
        if full.size == 0 or (full == full.flat[0]).all():
            return {"mode": "scalar", "lit": _literal(full.flat[0] if full.size else 0,
                                                      self.fixed)}
        padded = a.reshape((1,) * (len(shape) - a.ndim) + a.shape)
        if len(shape) >= 1 and all(d == 1 for d in padded.shape[1:]):
            vals = full.reshape(shape[0], -1)[:, 0]
            return {"mode": "channel", "sym": self.array(op, idx, what, ctype, vals, tag)}
        return {"mode": "full", "sym": self.array(op, idx, what, ctype, full, tag)}

    def gated(self, info: dict[str, Any], consumer_const: bool) -> dict[str, Any]:
        """An input as a template sees it: its pointer, type and the condition under
        which it is live (a gated constant read by a per-step op)."""
        live = ""
        if info["const"] and info["gate"] and not consumer_const:
            live = f"ctx->t < {info['gate']}u"
        return {**info, "live": live}

    # ------------------------------------------------------------------ main ------------
    def run(self) -> Plan:
        g = self.g
        n_if = 0
        for idx, op in enumerate(g.ops):
            ins = [self.values[v] for v in op.inputs()]
            for i in ins:  # a read extends the live range of a step buffer
                if isinstance(i["ptr"], StepBuffer):
                    i["ptr"].last = max(i["ptr"].last, idx)
            shape = tuple(g.shape(op.out))
            size = math.prod(shape)
            p: dict[str, Any] = {"kind": op.kind, "idx": idx, "name": comment(op.name),
                                 "origin": comment(op.origin), "fixed": self.fixed,
                                 "store": f"{self.name}_sat32" if self.fixed else "",
                                 "sat_add": f"{self.name}_sat_add" if self.fixed else "",
                                 "acc": self.t["cur"], "wide": self.t["wide"],
                                 "N": size, "shape": list(shape), "alias": False}
            ch = shape[0] if shape else 1
            p["CH"], p["INNER"] = ch, size // max(ch, 1)
            const = all(i["const"] for i in ins) and op.kind not in (
                "if", "spikemaxpool", "accumulate", "spikesoftmax", "encode", "current")
            gates = {i["gate"] for i in ins if i["const"]}
            gate = 0
            if const:
                if len(gates) > 1:
                    raise SnncError(f"internal: constant operands of '{op.name}' have "
                                    f"different input times {sorted(gates)}", node=op.where())
                gate = gates.pop() if gates else 0
            binary = op.out in self.spikes
            self._track(op, binary)
            out_type = (self.t["spike"] if binary else
                        self.t["readout"] if op.kind == "accumulate" else self.t["cur"])
            if op.kind in HANDLED_ATTRS:
                check_attrs(op, "the C backend", "use the sim backend for this network")
            handler = getattr(self, f"_op_{op.kind}", None)
            if handler is None:
                from snnc.backends.c import UNSUPPORTED

                reason = UNSUPPORTED.get(op.kind, "no C template")
                raise op.error(f"the C backend cannot generate '{op.kind}': {reason}",
                               hint="use the sim backend (the default) for this network")
            y = {"ctype": out_type, "binary": binary, "const": const, "gate": gate,
                 "size": size, "ptr": ""}
            p["x"] = self.gated(ins[0], const) if ins else None
            p["xs"] = [self.gated(i, const) for i in ins]
            p["y"] = y
            if op.kind == "if":
                p["k"] = n_if
                n_if += 1
                self.plan.spike_layers.append(op.origin or op.name)
            handler(op, idx, p, ins, shape)
            if not y["ptr"]:
                if y["const"] or op.kind in ("accumulate", "pad"):
                    y["ptr"] = self.member(op, idx, "output", out_type, size, "v")
                else:
                    y["ptr"] = self.step_buffer(op, idx, "output", out_type, size)
            p["const"] = const
            self.values[op.out] = y
            self.plan.ops.append(p)
        out = self.values[g.outputs[0]]
        if g.ops[-1].out != g.outputs[0] or g.ops[-1].kind != "accumulate":
            raise SnncError("internal: the C backend expects the graph to end in its "
                            "accumulate readout")
        self.plan.output_ptr = out["ptr"]
        self._place()
        self._layers()
        return self.plan

    def _place(self) -> None:
        """Offsets of the step buffers: per C type, largest first (ties: plan order), each
        at the lowest offset free of every placed buffer whose live range overlaps; the
        arena is a context member as large as the highest end."""
        by_type: dict[str, list[StepBuffer]] = {}
        for b in self.plan.step_buffers:
            by_type.setdefault(b.ctype, []).append(b)
        for ctype in sorted(by_type, key=lambda t: (-SIZES[t], t)):
            bufs = by_type[ctype]
            arena = ARENAS[ctype]
            order = sorted(range(len(bufs)), key=lambda k: (-bufs[k].size, k))
            placed: list[StepBuffer] = []
            for k in order:
                b = bufs[k]
                busy = sorted((q.offset, q.offset + q.size) for q in placed
                              if q.first <= b.last and b.first <= q.last)
                off = 0
                for lo, hi in busy:
                    if off + b.size <= lo:
                        break
                    off = max(off, hi)
                b.offset, b.arena = off, arena
                placed.append(b)
            end = max(b.offset + b.size for b in bufs)
            self.plan.members.append(Member(arena, ctype, end, STEP_OWNER,
                                            "buffers shared within a step"))

    def _layers(self) -> None:
        rows: dict[str, dict[str, Any]] = {}
        for op in self.g.ops:
            rows[op.name] = {"layer": op.name, "origin": op.origin, "kind": op.kind,
                             "flash_bytes": 0, "ram_bytes": 0}
        rows[INPUT_OWNER] = {"layer": "input", "origin": "", "kind": "input",
                             "flash_bytes": 0, "ram_bytes": 0}
        rows[STEP_OWNER] = {"layer": "step buffers", "origin": "", "kind": "shared",
                            "flash_bytes": 0, "ram_bytes": 0}
        for r in rows.values():
            r["step_buffer_bytes"] = 0
        for b in self.plan.step_buffers:
            rows[b.owner]["step_buffer_bytes"] += b.nbytes
        for a in self.plan.arrays:
            rows[a.owner]["flash_bytes"] += a.nbytes
        for m in self.plan.members:
            rows[m.owner]["ram_bytes"] += m.nbytes
        self.plan.layers = ([rows[INPUT_OWNER]] + [rows[op.name] for op in self.g.ops]
                            + [rows[STEP_OWNER]])

    def _track(self, op: O.Op, binary: bool) -> None:
        """Value bounds (max |q|, fixed point) and sparsity (spikes, and sums or copies of
        spikes: mostly zero) of op's output, for choosing event-driven kernels."""
        g, b = self.g, self.bound
        ins = op.inputs()
        cap = 2 ** 31
        if binary:
            b[op.out] = 1
            self.sparse.add(op.out)
            return
        if isinstance(op, O.Encode):
            b[op.out] = 2 ** 15
        elif isinstance(op, (O.Conv, O.Dense)):
            w = np.abs(g.params[op.weight].astype(np.int64 if self.fixed else np.float64))
            rows = w.reshape(w.shape[0], -1).sum(axis=1)
            bias = 0 if op.bias is None else float(np.abs(g.params[op.bias]).max())
            b[op.out] = min(cap, bias + b[op.x] * float(rows.max(initial=0)))
        elif isinstance(op, O.AvgPool):
            b[op.out] = min(cap, b[op.x] * op.kernel[0] * op.kernel[1])
            if op.x in self.sparse:
                self.sparse.add(op.out)
        elif isinstance(op, O.Current):
            b[op.out] = min(cap, b[op.x] + float(np.abs(g.params[op.bias]).max()))
        elif isinstance(op, O.Affine):
            m = 1.0 if op.scale is None else float(np.abs(g.params[op.scale]).max())
            sh = 0.0 if op.shift is None else float(np.abs(g.params[op.shift]).max())
            b[op.out] = min(cap, b[op.x] * m + sh)
        elif isinstance(op, O.Add):
            b[op.out] = min(cap, sum(b[v] for v in ins))
        elif isinstance(op, (O.Concat, O.Flatten, O.Reshape, O.Pad)):
            b[op.out] = max(b[v] for v in ins)
            if all(v in self.sparse for v in ins):
                self.sparse.add(op.out)
        else:
            b[op.out] = cap

    def _event(self, op: O.Conv | O.Dense, p: dict[str, Any], ins: list[dict[str, Any]]
               ) -> bool:
        """Event-driven (scatter) or gather? Scatter when the input changes every step and
        is mostly zero: spikes (a spike adds a weight column) or sums of spikes such as an
        average pool of spikes (a nonzero input adds its value times the column). In fixed
        point the scatter accumulates in int32, so a multi-bit input qualifies only when
        no partial sum can overflow. A dense layer computed once per input (the analog
        input current) is a scatter too, skipping zero inputs: its column adds vectorize
        without reassociating a float sum, where a gather's dot product does not (a conv
        scatter would need a channel-last scratch buffer: RAM for a once-per-input op)."""
        once = p["y"]["const"] and isinstance(op, O.Dense)
        if not once and (p["y"]["const"] or op.x not in self.sparse):
            return False
        if ins[0]["binary"] or not self.fixed:
            return True
        w = np.abs(self.g.params[op.weight].astype(np.int64))
        rows = int(w.reshape(w.shape[0], -1).sum(axis=1).max(initial=0))
        bias = 0 if op.bias is None else int(np.abs(self.g.params[op.bias]).max())
        return bias + self.bound[op.x] * rows <= 2 ** 31 - 1

    def _xv_type(self, op: O.Conv | O.Dense, wt: str) -> str:
        """The type an input is read as in an event-driven kernel: its own for spikes;
        for a multi-bit input, int16_t in fixed point when the input fits (then int16 x
        int16 -> int32 products, which SSE2 and the Cortex-M4's SMLABB do in one
        instruction), else the current type."""
        if op.x in self.spikes:
            return self.t["spike"]
        if self.fixed and wt == "int16_t" and self.bound[op.x] <= 2 ** 15 - 1:
            return "int16_t"
        return self.t["cur"]

    # ------------------------------------------------------------------ op kinds --------
    def _op_encode(self, op: O.Encode, idx, p, ins, shape):
        y = p["y"]
        p["coding"] = op.coding
        if op.coding == "analog":
            # the input copy itself, constant (gated by the input time)
            y.update(ptr=ins[0]["ptr"], ctype=ins[0]["ctype"], const=True, gate=op.steps,
                     binary=False)
            p["alias"] = True
            return
        self.plan.uses_poisson = True
        p["seed"] = f"{op.seed & 0xFFFFFFFF}u"
        p["steps"] = op.steps
        p["F"] = self.input_bits
        p["mix"] = f"{self.name}_mix32"

    def _alias(self, p, ins):
        p["y"].update(ptr=ins[0]["ptr"], ctype=ins[0]["ctype"])
        p["alias"] = True

    def _op_flatten(self, op, idx, p, ins, shape):
        self._alias(p, ins)

    def _op_reshape(self, op, idx, p, ins, shape):
        self._alias(p, ins)

    def _no_gated_bias(self, op: O.Op, p: dict[str, Any]) -> None:
        if p["y"]["const"] and p["y"]["gate"]:
            raise SnncError(f"internal: '{op.name}' adds a constant to an input that lasts "
                            f"{p['y']['gate']} steps (expected finite-input to move it into "
                            "a current op)", node=op.where())

    def _op_conv(self, op: O.Conv, idx, p, ins, shape):
        w = self.g.params[op.weight]
        o, cg, kh, kw = (int(d) for d in w.shape)
        c, h, wd = self.g.shape(op.x)
        grp = op.groups
        og = o // grp
        event = self._event(op, p, ins)
        wt = self.t["weight"] if not self.fixed else (
            "int16_t" if w.dtype == np.int16 else "int32_t")
        if event:
            # column-major for scatter: [c][i][j][oo] = W[g*og + oo][c % cg][i][j]
            # Decision: the output channels of one tap are the inner loop, over a
            # contiguous weight column into a contiguous channel-last accumulator (one or
            # two cache lines a tap; vector adds on x86, the fewest instructions on a
            # scalar Cortex-M4), transposed to channel-first once a step.
            cols = np.empty((c, kh, kw, og), w.dtype)
            for ci in range(c):
                gi = ci // cg
                cols[ci] = w[gi * og:(gi + 1) * og, ci % cg].transpose(1, 2, 0)
            wsym = self.array(op, idx, "weights (column-major)", wt, cols, "w")
            p["scr"] = self.step_buffer(op, idx, "scatter sums (channel-last)",
                                        self.t["cur"], o * shape[1] * shape[2])
        else:
            wsym = self.array(op, idx, "weights", wt, w, "w")
        bsym = None
        if op.bias:
            self._no_gated_bias(op, p)
            bsym = self.array(op, idx, "bias", self.t["cur"], self.g.params[op.bias], "b")
        p["xv_t"] = self._xv_type(op, wt)
        p.update(event=event, C=c, H=h, W=wd, O=o, OH=shape[1], OW=shape[2], KH=kh, KW=kw,
                 SH=op.strides[0], SW=op.strides[1], DH=op.dilations[0],
                 DW=op.dilations[1], PT=op.pads[0], PL=op.pads[1], G=grp, CG=cg, OG=og,
                 w=wsym, wt=wt, b=bsym)

    def _op_dense(self, op: O.Dense, idx, p, ins, shape):
        w = self.g.params[op.weight]
        o, k = (int(d) for d in w.shape)
        event = self._event(op, p, ins)
        wt = self.t["weight"] if not self.fixed else (
            "int16_t" if w.dtype == np.int16 else "int32_t")
        wsym = self.array(op, idx, "weights (column-major)" if event else "weights", wt,
                          w.T if event else w, "w")
        bsym = None
        if op.bias:
            self._no_gated_bias(op, p)
            bsym = self.array(op, idx, "bias", self.t["cur"], self.g.params[op.bias], "b")
        p["xv_t"] = self._xv_type(op, wt)
        p.update(event=event, R=ins[0]["size"] // k, K=k, O=o, w=wsym, wt=wt, b=bsym)

    def _op_current(self, op: O.Current, idx, p, ins, shape):
        p["bias"] = self.bcast(op, idx, self.g.params[op.bias], shape, "b", "bias",
                               self.t["cur"])
        p["steps"] = op.steps
        src = ins[0]
        if src["const"] and not src["gate"] and not op.steps:
            p["y"]["const"] = True  # a constant plus a constant: computed once
            p["x"] = {**src, "live": ""}

    def _op_affine(self, op: O.Affine, idx, p, ins, shape):
        if op.shift:
            self._no_gated_bias(op, p)
        p["scale"] = None if not op.scale else self.bcast(
            op, idx, self.g.params[op.scale], shape, "s", "scale", self.t["cur"])
        p["shift"] = None if not op.shift else self.bcast(
            op, idx, self.g.params[op.shift], shape, "sh", "shift", self.t["cur"])

    def _op_add(self, op: O.Add, idx, p, ins, shape):
        pass

    def _op_concat(self, op: O.Concat, idx, p, ins, shape):
        ax = op.axis
        outer = math.prod(shape[:ax])
        row = math.prod(shape[ax:])
        parts, off = [], 0
        for v, info in zip(op.inputs(), p["xs"]):
            inner = math.prod(self.g.shape(v)[ax:])
            parts.append({**info, "outer": outer, "inner": inner, "off": off, "row": row})
            off += inner
        p["parts"] = parts

    def _op_pad(self, op: O.Pad, idx, p, ins, shape):
        src = self.g.shape(op.x)
        r = len(src)
        in_strides = [math.prod(src[i + 1:]) for i in range(r)]
        out_strides = [math.prod(shape[i + 1:]) for i in range(r)]
        p["axes"] = [{"n": src[i], "si": in_strides[i], "so": out_strides[i]}
                     for i in range(r)]
        p["off"] = sum(op.pads[i] * out_strides[i] for i in range(r))

    def _pool(self, op, p, shape):
        c, h, w = self.g.shape(op.x)
        p.update(C=c, H=h, W=w, OH=shape[1], OW=shape[2], KH=op.kernel[0], KW=op.kernel[1],
                 SH=op.strides[0], SW=op.strides[1], PT=op.pads[0], PL=op.pads[1])

    def _op_avgpool(self, op: O.AvgPool, idx, p, ins, shape):
        self._pool(op, p, shape)
        cnt = avgpool_counts({"kernel": op.kernel, "strides": op.strides, "pads": op.pads,
                              "ceil_mode": op.ceil_mode,
                              "count_include_pad": op.count_include_pad},
                             self.g.shape(op.x)[1:])
        p["DH"] = p["DW"] = 1
        p["count"] = None
        p["cnt"] = None
        if not self.fixed:  # fixed point: the window sum (the divisor is in the scale)
            if (cnt == cnt.flat[0]).all():
                p["count"] = c_float(float(cnt.flat[0]))
            else:
                p["cnt"] = self.array(op, idx, "divisors", "float", cnt.astype(np.float32),
                                      "n")

    def _op_spikemaxpool(self, op: O.SpikeMaxPool, idx, p, ins, shape):
        self._pool(op, p, shape)
        p["DH"], p["DW"] = op.dilations
        # does any window reach outside the input (padding, ceil mode)? else no bounds checks
        p["clipped"] = bool(
            p["PT"] > 0 or p["PL"] > 0
            or (p["OH"] - 1) * p["SH"] - p["PT"] + (p["KH"] - 1) * p["DH"] >= p["H"]
            or (p["OW"] - 1) * p["SW"] - p["PL"] + (p["KW"] - 1) * p["DW"] >= p["W"])
        p["counts"] = self.member(op, idx, "input spike counts", "uint32_t",
                                  ins[0]["size"], "c")

    def _op_if(self, op: O.IFNeuron, idx, p, ins, shape):
        th = self.g.params[op.threshold]
        ct = self.t["cur"]
        p["th"] = self.bcast(op, idx, th, shape, "th", "thresholds", ct)
        p["zero"] = op.reset == "zero"
        p["v"] = self.member(op, idx, "membranes", ct, p["N"], "m")
        p["cap"] = op.max_spikes
        p["count"] = None
        if op.max_spikes:  # spike budget: a neuron fires at most max_spikes times
            ctype = "uint16_t" if op.max_spikes < 2 ** 16 else "uint32_t"
            p["count"] = self.member(op, idx, "spike budgets used", ctype, p["N"], "n")
            p["count_t"] = ctype
        p["v0"] = None
        if op.v_init:
            v0 = (fixed_v_init(th, op.v_init).astype(np.int64) if self.fixed else
                  (th.astype(np.float32) * np.float32(op.v_init)))
            p["v0"] = self.bcast(op, idx, v0, shape, "v", "initial membranes", ct)
        # Decision: per-channel loops of 16k neurons plus a remainder, so that compilers'
        # cheapest vectorization (GCC -O2: no epilogue loops) applies to 16 uint8 spikes
        # at a time; one flat loop when every neuron shares the threshold.
        if "channel" not in (p["th"]["mode"], (p["v0"] or {}).get("mode")):
            p["CH"], p["INNER"] = 1, p["N"]
        inner = p["INNER"]
        head = inner - inner % 16
        p["spans"] = [(lo, hi) for lo, hi in ((0, head), (head, inner)) if hi > lo]

    def _op_accumulate(self, op: O.Accumulate, idx, p, ins, shape):
        pass


def plan_graph(graph: Graph, name: str) -> Plan:
    return Planner(graph, name).run()


def spike_layer_names(plan: Plan) -> list[str]:
    return [c_string(n) for n in plan.spike_layers]
