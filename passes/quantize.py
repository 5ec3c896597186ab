"""quantize: lower a spiking graph to fixed-point (integer weights, thresholds, membranes).

Why it is exact up to rounding (METHODS 1): the IF dynamics V(t) = V(t-1) + z(t),
s(t) = [V(t) >= theta], V -= theta s(t) are invariant when z, V and theta are all multiplied
by the same s > 0. So each layer's currents, membrane and threshold can live in their own
integer scale; only the constants are rounded.

After this pass every value of the graph is an integer signal q with a known scale s (the
real value is q / s), recorded in graph.meta["fixed_point"]["scales"]:
  * encode analog: the input is quantized once, x_q = clip(floor(x * 2^F + 1/2), int16)
    (F = `input_bits` fractional bits), s = 2^F; encode poisson: compares the RNG's 24-bit
    integer draw with clip(x_q, 0, 2^F) << (24 - F), spikes have s = 1;
  * conv / dense: W_q = round(W * 2^e) with one power-of-two exponent e per layer chosen so
    that |W_q| < 2^(weight_bits-1); s_out = s_in * 2^e, so the rescale is exact whatever
    s_in is; biases b_q = round(b * s_out);
  * current: b_q = round(b * s); affine: integer multiplier m = round(scale * 2^e),
    s_out = s_in * 2^e, shift_q = round(shift * s_out), with the smallest e that makes
    every multiplier exact (1, 2, 0.5 ...) or else AFFINE_BITS bits;
  * scales multiply along the graph, so conv / dense / affine exponents are lowered (down
    to MIN_BITS significant bits) to keep every scale <= MAX_SCALE = 2^26, which leaves
    int32 room for thresholds and membranes;
  * avgpool: the runtime and the C code compute the window *sum*; the divisor k is folded
    into the scale (s_out = s_in * k), so pooling is exact; a divisor that varies over the
    output (padding excluded from the count) is refused;
  * add / concat: operands must share one scale; a smaller scale s_i is raised to
    s_out = max(s_i) by an inserted affine with the integer multiplier s_out / s_i (exact);
    a non-integer ratio is refused;
  * if: the threshold becomes theta_q = round(theta * s_in) (>= 1), the initial membrane
    fixed_v_init(theta_q, v_init) (ir/semantics.py); membranes are int32 with saturation;
  * accumulate: an int64 running sum of its input (the readout), real value q / s.
The one rounding of the whole lowering is the rounding of weights, biases, multipliers,
thresholds and the input; everything after it is exact integer arithmetic, identical in
the NumPy runtime (fixed-point mode) and the generated C.

Decision: one power-of-two weight exponent per layer (not per channel). With 16-bit
weights the largest weight of a layer keeps 15 significant bits, enough that the
per-channel variant bought nothing measurable on MNIST, and one scale per value keeps
residual joins and pooling exact without per-channel rescaling.
Decision: a synaptic op fed by binary spikes accumulates in int32 (the C code adds weight
columns into an int32 current); the exponent is lowered until |b_q| + sum |W_q| of every
output fits int32, so that accumulation can never overflow. Ops fed by multi-bit values
accumulate in int64 and saturate to int32 (both in C and in the runtime).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from snnc.ir import ops as O
from snnc.ir.errors import SnncError
from snnc.ir.graph import Graph
from snnc.ir.semantics import HANDLED_ATTRS, avgpool_counts, check_attrs
from snnc.passes.base import Pass, PassContext

INT32_MAX = 2**31 - 1
#: largest scale a current gets (2^26: a threshold of 1 leaves 5 bits of int32 headroom for
#: thresholds and membranes above 1); a layer whose input scale is already large (e.g. a
#: rescaled join) gives up weight bits for it, down to MIN_BITS
MAX_SCALE = 2.0 ** 26
MIN_BITS = 9
#: bits of an affine multiplier (residual and concat rescales, folded scales)
AFFINE_BITS = 12
HINT = "use --arith float"
def _exp_for(max_abs: float, bits: int) -> int:
    """Largest e with round(max_abs * 2^e) <= 2^(bits-1) - 1."""
    if max_abs <= 0:
        return 0
    lim = 2 ** (bits - 1) - 1
    e = math.floor(math.log2(lim / max_abs))
    while round(max_abs * 2.0 ** e) > lim:
        e -= 1
    return e


def _exact_exp(m: np.ndarray, bits: int) -> int | None:
    """The smallest e >= 0 with m * 2^e integral and within `bits` bits (1, 2, 0.5, 0.75
    ...: a multiplier that needs no rounding adds no scale), or None."""
    top = _exp_for(float(np.abs(m).max(initial=0.0)), bits)
    for e in range(0, max(top, 0) + 1):
        q = m * 2.0 ** e
        if np.all(q == np.round(q)):
            return e
    return None


def _capped_exp(max_abs: float, bits: int, s_in: float) -> int:
    """_exp_for(max_abs, bits), lowered so that s_in * 2^e <= MAX_SCALE as long as at least
    MIN_BITS bits are left (scales multiply along a chain: a conv after a rescaled join
    would otherwise push its thresholds past int32)."""
    e = _exp_for(max_abs, bits)
    floor_e = _exp_for(max_abs, min(bits, MIN_BITS))
    cap = math.floor(math.log2(MAX_SCALE / s_in))
    return max(min(e, cap), min(e, floor_e))


def _q(a: np.ndarray, scale: float, dtype: type = np.int32) -> np.ndarray:
    """round(a * scale) as integers (half away from zero: platform independent)."""
    v = np.asarray(a, np.float64) * scale
    # sign(v) * floor(|v| + 1/2), in fewer passes over big weight tensors
    r = np.trunc(v + np.copysign(0.5, v))
    info = np.iinfo(dtype)
    if r.size and (r.max() > info.max or r.min() < info.min):
        raise OverflowError
    return np.ascontiguousarray(r.astype(dtype))


@dataclass(frozen=True)
class Quantize(Pass):
    weight_bits: int = 16
    input_bits: int = 8
    name: ClassVar[str] = "quantize"
    requires: ClassVar[frozenset[str]] = frozenset({"spiking"})
    establishes: ClassVar[frozenset[str]] = frozenset({"fixed-point"})

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        if not 2 <= self.weight_bits <= 16:
            raise SnncError(f"quantize: weight_bits must be in [2, 16], got {self.weight_bits}")
        if not 0 <= self.input_bits <= 14:
            raise SnncError(f"quantize: input_bits must be in [0, 14], got {self.input_bits}")
        g = graph.copy()
        fresh = g.name_reserver()

        def put(base: str, arr: np.ndarray) -> str:
            name = fresh(base)
            g.params[name] = arr
            return name

        spikes = g.spike_values()
        scale: dict[str, float] = {}
        stats: list[dict[str, Any]] = []
        ops: list[O.Op] = []
        wdtype = np.int16 if self.weight_bits <= 16 else np.int32
        for op in g.ops:
            ins = op.inputs()
            if op.kind in HANDLED_ATTRS:
                check_attrs(op, "fixed point", HINT)
            if isinstance(op, O.Encode):
                scale[op.out] = 1.0 if op.coding == "poisson" else float(2 ** self.input_bits)
                ops.append(op)
            elif isinstance(op, (O.Conv, O.Dense)):
                s_in = scale[op.x]
                w = g.params[op.weight].astype(np.float64)
                b = None if op.bias is None else g.params[op.bias].astype(np.float64)
                e = _capped_exp(float(np.abs(w).max(initial=0.0)), self.weight_bits, s_in)
                event = op.x in spikes
                while True:
                    s_out = s_in * 2.0 ** e
                    try:
                        wq = _q(w, 2.0 ** e, wdtype)
                        bq = None if b is None else _q(b, s_out)
                    except OverflowError:
                        e -= 1
                        continue
                    rows = np.abs(wq.reshape(wq.shape[0], -1).astype(np.int64)).sum(axis=1)
                    if bq is not None:
                        rows = rows + np.abs(bq.astype(np.int64))
                    if not event or rows.max(initial=0) <= INT32_MAX:
                        break
                    e -= 1
                err = np.abs(w - wq / 2.0 ** e)
                stats.append({"op": op.where(), "kind": op.kind, "weight_exp": e,
                              "scale": s_out, "weight_bits_used":
                              int(np.abs(wq.astype(np.int64)).max(initial=0)).bit_length() + 1,
                              "weight_max_abs_err": float(err.max(initial=0.0)),
                              "weight_rel_rms_err": float(
                                  np.sqrt((err ** 2).mean()) /
                                  max(float(np.sqrt((w ** 2).mean())), 1e-30))})
                kw: dict[str, Any] = {"weight": put(f"{op.weight}.q", wq)}
                if bq is not None:
                    kw["bias"] = put(f"{op.bias}.q", bq)
                ops.append(g.replace(op, **kw))
                scale[op.out] = s_out
            elif isinstance(op, O.Current):
                s = scale[op.x]
                ops.append(g.replace(op, bias=put(f"{op.bias}.q",
                                                  self._q32(op, g.params[op.bias], s))))
                scale[op.out] = s
            elif isinstance(op, O.Affine):
                s_in = scale[op.x]
                kw = {}
                s_out = s_in
                if op.scale is not None:
                    m = g.params[op.scale].astype(np.float64)
                    e = _exact_exp(m, AFFINE_BITS)
                    if e is None:
                        e = _capped_exp(float(np.abs(m).max(initial=0.0)), AFFINE_BITS, s_in)
                    s_out = s_in * 2.0 ** e
                    kw["scale"] = put(f"{op.scale}.q", self._q32(op, m, 2.0 ** e))
                if op.shift is not None:
                    kw["shift"] = put(f"{op.shift}.q", self._q32(op, g.params[op.shift], s_out))
                ops.append(g.replace(op, **kw))
                scale[op.out] = s_out
            elif isinstance(op, O.AvgPool):
                count = avgpool_counts({"kernel": op.kernel, "strides": op.strides,
                                        "pads": op.pads, "ceil_mode": op.ceil_mode,
                                        "count_include_pad": op.count_include_pad},
                                       g.shape(op.x)[1:])
                if count.min() != count.max():
                    raise op.error("average pooling whose divisor varies over the output "
                                   "(padding excluded from the count) has no exact "
                                   "fixed-point form", hint=HINT)
                ops.append(op)
                scale[op.out] = scale[op.x] * float(count.flat[0])
            elif isinstance(op, (O.Add, O.Concat)):
                s_out = max(scale[v] for v in ins)
                new = []
                for v in ins:
                    r = s_out / scale[v]
                    if abs(r - round(r)) > 1e-9 * r:
                        raise op.error(f"operands have scales {[scale[u] for u in ins]} "
                                       "whose ratios are not integers, so they cannot be "
                                       "joined exactly in fixed point", hint=HINT)
                    if round(r) == 1:
                        new.append(v)
                        continue
                    out = fresh(f"{v}.rescale")
                    g.values[out] = g.values[v]
                    ops.append(O.Affine(name=fresh(f"{op.name}.rescale"), out=out,
                                        origin=op.origin, x=v,
                                        scale=put(f"{op.name}.rescale.m",
                                                  np.asarray(round(r), np.int32)),
                                        shift=None))
                    scale[out] = s_out
                    new.append(out)
                field = "xs"
                ops.append(g.replace(op, **{field: tuple(new)}))
                scale[op.out] = s_out
            elif isinstance(op, (O.Flatten, O.Reshape, O.Pad)):
                ops.append(op)
                scale[op.out] = scale[op.x]
            elif isinstance(op, O.IFNeuron):
                s = scale[op.x]
                th = g.params[op.threshold].astype(np.float64)
                thq = self._q32(op, th, s)
                if (thq < 1).any():
                    raise op.error("a threshold rounds to 0 in fixed point (the layer's "
                                   "weights are too small for 16-bit scaling)", hint=HINT)
                stats.append({"op": op.where(), "kind": op.kind, "scale": s,
                              "threshold_q_min": int(thq.min()),
                              "threshold_rel_err": float(np.abs(thq / s - th).max() /
                                                         th.min())})
                ops.append(g.replace(op, threshold=put(f"{op.threshold}.q.{op.name}", thq)))
                scale[op.out] = 1.0
            elif isinstance(op, O.SpikeMaxPool):
                ops.append(op)
                scale[op.out] = 1.0
            elif isinstance(op, O.Accumulate):
                ops.append(op)
                scale[op.out] = scale[op.x]
            elif isinstance(op, O.SpikingSoftmax):
                raise op.error("the spiking softmax readout has no fixed-point form",
                               hint="use --readout membrane or spikes, or --arith float")
            else:
                raise op.error(f"op kind '{op.kind}' cannot be lowered to fixed point",
                               hint=HINT)
        g.meta["fixed_point"] = {
            "weight_bits": self.weight_bits, "input_bits": self.input_bits,
            "scales": {k: scale[k] for k in sorted(scale)},
            "output_scales": [scale[v] for v in g.outputs],
            "layers": stats,
        }
        ctx.notes["quantization"] = stats
        return g.rebuild(ops)

    @staticmethod
    def _q32(op: O.Op, a: np.ndarray, s: float) -> np.ndarray:
        try:
            return _q(a, s)
        except OverflowError:
            raise op.error("a constant overflows int32 in fixed point: the scales this "
                           "layer inherits (weights, rescaled joins, input scaling) leave "
                           "no room for it", hint=HINT) from None
