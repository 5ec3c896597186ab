"""normalize: data-based threshold balancing (METHODS 2, and 4 for Clip bounds).

For every rectifying neuron layer l (Relu, or Clip(0, hi)) pick lambda_l from the ANN's
activations on calibration data (onnxruntime), then rescale so that every neuron's
activation is a_l / lambda_l and thresholds are 1:

    W_l <- W_l * lambda_{l-1} / lambda_l,   b_l <- b_l / lambda_l,   theta_l = 1

or, channel-wise (Kim et al. 2020), one lambda per output channel:

    W_l[o, i] <- W_l[o, i] * lambda_{l-1}[i] / lambda_l[o],   b_l[o] <- b_l[o] / lambda_l[o]

(a grouped/depthwise Conv's W[o, j] reads input channel (o // (O/groups)) * (C/groups) + j).

Implementation: every value v gets a scale s(v) with  IR value = ANN value / s(v), a
float64 array broadcastable to v's per-sample shape and kept compact: shape () when
uniform, (C, 1, 1) when it varies over the channels of a (C, H, W) value only, (F,) for a
1-D value, the full shape otherwise. Graph inputs have s = 1 (lambda_0 = 1); a neuron's
output has s = lambda_l. A Conv/Dense/Affine absorbs the change from its input scale to
the scale its consumer wants (the target, propagated backwards from the neurons): a Conv
absorbs input scales and targets that are per channel, a Dense any input scale (flattened
to (F,)) and a target per output feature, an Affine anything. Max-pool commutes with
positive per-channel scales and average pooling and Pad are linear, so they pass s
through; Flatten/Reshape carry it over element by element (a per-channel scale becomes a
per-feature vector). Where a scale
cannot be carried or absorbed, or where scales meet and differ (residual Add, a neuron fed
by a value it cannot rescale, the graph outputs), an Affine rescaling edge is inserted
(scale = the compact ratio have/want), so every join sees one scale per element. Graph
outputs are restored to s = 1, so the normalized ANN computes exactly what the ONNX model
computes: the pass is checked against onnxruntime.

Methods: `max` (p = 100) or `percentile:P` (default 99.9) of the layer's activations;
`mse:T` / `channel-mse:T`: per layer / per channel, the lambda whose T-step rate code
errs least on the activations (`mse_scale`: at short T a lower lambda, clipping a few
large activations for a finer step under the common ones; what `--tune auto` tries);
`channel:P` (`channel` = channel:99.9): the same statistic per output channel (per
feature of a 1-D value; axis 0 of the per-sample value), over the batch and the other
axes; `clip`: only the Clip bounds (no calibration data needed when every layer has one).
Wherever a layer has a Clip(0, hi) bound (threshold ReLU, ReLU6), lambda = hi whatever
the method, one scalar for the layer (METHODS 4, Ding et al. Theorem 1: the IF neuron
saturates exactly where the ANN clips, so the layer converts without loss as T grows).
Decision: only positive activations count (zeros say nothing about the scale).
Decision: the statistic of relu(x) over positive values equals that of x over positive
values, so the neuron's *input* tensor is read from onnxruntime (it keeps its ONNX name
through folding and the relu-before-maxpool rewrite).
Decision: a channel that never activates on the calibration data gets the layer-wise
lambda (1 if the whole layer is silent), so it stays silent rather than dividing by zero.
Decision: a residual Add is brought to the scale of the neuron that consumes it; a Concat
of channels (axis 0), and in channel mode any Concat, concatenates its inputs' scales (no
rescaling: each channel keeps its own scale, which max-pool and average pool keep and the
next Conv absorbs per input channel), so spikes stay spikes through an Inception-style
Concat -> MaxPool; a Concat along another axis in the scalar modes has its inputs rescaled
to the scale its consumer wants.
Decision: a value whose scale varies over H, W (e.g. after a Reshape from a per-feature
scale) is rescaled to its per-channel maximum before a Conv or a pooling op; a Conv whose
target varies over H, W (e.g. Conv -> Flatten -> Relu) takes its per-channel maximum, and
the neuron's input gets the rescaling edge.
Decision: the spike-count readout's output lambda is the layer-wise statistic in every mode.
Without calibration data (structure-only compiles such as `snnc check`) lambda = 1.
ctx.notes["lambda"] / graph.meta["lambda"]: per neuron layer a float (one lambda), or in
channel mode a list of floats (one per channel) for the layers without a Clip bound.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import numpy as np
from snnc.ir import ops as O
from snnc.ir.errors import SnncError
from snnc.ir.graph import Graph
from snnc.passes.base import Pass, PassContext

#: ops whose output has the scale of their (single) operand, element by element
PASS_THROUGH = (O.MaxPool, O.AvgPool, O.Flatten, O.Reshape, O.Pad)

ONE = np.ones((), np.float64)


def is_neuron(op: O.Op) -> bool:
    """A rectifier that becomes an IF population: Relu, or Clip(0, hi)."""
    return isinstance(op, O.Relu) or (isinstance(op, O.Clip) and op.lo == 0.0)


class NormMethod(NamedTuple):
    percentile: float
    per_channel: bool = False
    #: mse:T: the lambda that minimizes the T-step rate code's error (0: the percentile)
    steps: int = 0


def parse_method(spec: str) -> NormMethod:
    """'max' -> 100, 'percentile:P' -> P (0 < P <= 100), 'channel:P' -> P per channel
    ('channel' = channel:99.9); 'clip' -> 99.9 for the layers without a clip bound (when
    calibration data is given)."""
    if spec == "max":
        return NormMethod(100.0)
    if spec == "clip":
        return NormMethod(99.9)
    if spec == "channel":
        return NormMethod(99.9, True)
    kind, sep, arg = spec.partition(":")
    if sep and kind in ("percentile", "channel"):
        try:
            p = float(arg)
        except ValueError:
            p = -1.0
        if 0 < p <= 100:
            return NormMethod(p, kind == "channel")
    if sep and kind in ("mse", "channel-mse") and arg.isascii() and arg.isdigit():
        t = int(arg)
        if 1 <= t <= 1 << 20:
            return NormMethod(100.0, kind == "channel-mse", t)
    raise SnncError(f"unknown normalization '{spec}'",
                    hint="use max, percentile:P, channel:P (per channel; channel = "
                         "channel:99.9) with 0 < P <= 100, mse:T or channel-mse:T (the "
                         "scale with the least rate-code error at T steps), or clip; e.g. "
                         "percentile:99.9")


#: mse:T: the candidate lambdas, as percentiles of the positive activations
MSE_GRID = (50.0, 60.0, 70.0, 80.0, 85.0, 90.0, 93.0, 95.0, 97.0, 98.0, 99.0, 99.5, 99.9,
            99.99, 100.0)
#: mse:T: at most this many activations are scored (a deterministic stride through them)
MSE_SAMPLES = 1 << 20


def mse_scale(act: np.ndarray, steps: int) -> float:
    """mse:T: the lambda (among percentiles MSE_GRID of the positive activations) whose
    T-step rate code, lambda * clip(round(a T / lambda), 0, T) / T, is closest to the
    activations a in mean squared error: short T trades clipping the largest activations
    for a finer step (lambda / T) under the common ones. Rounding, not flooring: the code
    a neuron starting half charged (v_init 0.5) or with shift bias produces.
    Decision: the error counts positive activations only (zeros are coded exactly); ties
    go to the larger lambda (less clipping)."""
    pos = act[act > 0].astype(np.float64)
    if pos.size == 0:
        return 0.0
    if pos.size > MSE_SAMPLES:
        pos = pos[:: -(-pos.size // MSE_SAMPLES)]
    best, best_err = 0.0, math.inf
    for lam in np.unique(np.percentile(pos, MSE_GRID))[::-1]:
        if lam <= 0:
            continue
        q = lam * np.clip(np.floor(pos * (steps / lam) + 0.5), 0, steps) / steps
        err = float(np.mean((pos - q) ** 2))
        if err < best_err:
            best, best_err = float(lam), err
    return best


def statistic(act: np.ndarray, method: NormMethod) -> float:
    """A layer's lambda from its activations: mse:T's, or the percentile."""
    return (mse_scale(act, method.steps) if method.steps
            else robust_max(act, method.percentile))


def robust_max(act: np.ndarray, percentile: float) -> float:
    pos = act[act > 0]
    if pos.size == 0:
        return 0.0
    if percentile >= 100:
        return float(pos.max())
    return float(np.percentile(pos, percentile))


# ---- scales: float64 arrays broadcastable to a value's per-sample shape ----------------
def compact(s: Any, shape: tuple[int, ...]) -> np.ndarray:
    """s in its compact form for a value of per-sample `shape`: () when uniform,
    (C, 1, ..., 1) when it varies along axis 0 only, else the full shape (1-D: (F,))."""
    a = np.broadcast_to(np.asarray(s, np.float64), shape)
    flat = a.reshape(-1)
    if flat.size == 0 or (flat == flat[0]).all():
        return np.array(flat[0] if flat.size else 1.0, np.float64)
    rows = a.reshape(shape[0], -1)
    if (rows == rows[:, :1]).all():
        return rows[:, 0].reshape((shape[0],) + (1,) * (len(shape) - 1)).copy()
    return np.array(a)


def along(s: np.ndarray, shape: tuple[int, ...], axis: int) -> tuple[np.ndarray, bool]:
    """The vector of s along `axis` (its maximum over the other axes) and whether s
    varies along `axis` only (so the vector is exact)."""
    a = np.moveaxis(np.broadcast_to(s, shape), axis, 0).reshape(shape[axis], -1)
    v = a.max(axis=1)
    return v, bool((a == v[:, None]).all())


def per_channel(v: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A per-channel vector (len shape[0]) as a compact scale of `shape`."""
    return compact(v.reshape((-1,) + (1,) * (len(shape) - 1)), shape)


def _div(a: np.ndarray, s: np.ndarray) -> np.ndarray:
    # a scalar scale divides as a Python float (the float32 arithmetic of the scalar modes)
    return a / float(s) if s.ndim == 0 else a / s


def channel_lambdas(act: np.ndarray, percentile: float | NormMethod) -> np.ndarray:
    """Per channel (axis 1 of the batch-leading `act`) the statistic over the batch and the
    other axes; a silent channel gets the layer's statistic, or 1."""
    m = percentile if isinstance(percentile, NormMethod) else NormMethod(percentile, True)
    rows = np.moveaxis(act, 1, 0).reshape(act.shape[1], -1)
    lam = np.array([statistic(r, m) for r in rows], np.float64)
    if (lam <= 0).any():
        layer = statistic(act, m)
        lam[lam <= 0] = layer if layer > 0 else 1.0
    return lam


#: activations requested from the calibration at once (bytes): a chunk of layers at a time
CHUNK_BYTES = 256 << 20


def _chunks(names: list[str], size: Any) -> list[list[str]]:
    """names in consecutive groups of at most CHUNK_BYTES of activations (size(name) ->
    bytes), each group at least one name."""
    out: list[list[str]] = [[]]
    total = 0
    for v in names:
        b = size(v)
        if out[-1] and total + b > CHUNK_BYTES:
            out.append([])
            total = 0
        out[-1].append(v)
        total += b
    return [c for c in out if c]


@dataclass(frozen=True)
class Normalize(Pass):
    method: str = "percentile:99.9"
    name: ClassVar[str] = "normalize"
    requires: ClassVar[frozenset[str]] = frozenset({"no-batchnorm"})
    establishes: ClassVar[frozenset[str]] = frozenset({"normalized"})

    def lambdas(self, g: Graph, ctx: PassContext) -> dict[str, np.ndarray]:
        """lambda per neuron op name, as a compact scale of the neuron's value."""
        method = parse_method(self.method)
        chan = method.per_channel
        neurons = [op for op in g.ops if is_neuron(op)]
        prod = g.producers()
        # the output layer's scale: used only by a spike-count readout
        outs = {v: prod[v].x if isinstance(prod.get(v), O.Softmax) else v for v in g.outputs}
        # statistics: (name, per channel?) -> value, computed from the activations a
        # chunk of layers at a time, so that a deep network never holds every layer's
        # activations at once
        bounded = {op.name for op in neurons
                   if isinstance(op, O.Clip) and op.hi is not None and op.hi > 0}
        need: dict[str, set[bool]] = {v: {False} for v in outs.values()}
        for op in neurons:
            if op.name not in bounded:
                need.setdefault(op.x, set()).add(
                    bool(chan and g.shape(op.x) and not isinstance(op, O.Clip)))
        stats: dict[tuple[str, bool], Any] = {}
        if ctx.calibration is not None:
            n = len(ctx.calibration.x)
            chunks = _chunks(sorted(need), lambda v: n * math.prod(g.shape(v)) * 4)
            for chunk in chunks:
                acts = ctx.calibration.activations(chunk)
                for v, a in acts.items():
                    for per_channel in need[v]:
                        stats[v, per_channel] = (channel_lambdas(a, method) if per_channel
                                                 else statistic(a, method))
                forget = getattr(ctx.calibration, "forget", None)
                if forget is not None and len(chunks) > 1:  # else kept for reuse (sweep)
                    forget(chunk)
        acts = {v for v, _ in stats}  # the names that had activations
        g.meta["output_lambda"] = {v: stats[v, False] or 1.0
                                   for v in outs.values() if (v, False) in stats}
        lam = {}
        for op in neurons:
            if isinstance(op, O.Clip) and op.hi is not None and op.hi > 0:
                lam[op.name] = np.array(float(op.hi))
                continue
            if ctx.calibration is None and not ctx.structure_only:
                raise op.error("this layer has no clip bound, so its scale must come from "
                               "calibration data", hint="pass --calib CALIB.npz")
            shape = g.shape(op.x)
            if acts and chan and shape and not isinstance(op, O.Clip):
                v = stats[op.x, True]
                if not np.isfinite(v).all():
                    raise op.error("the layer's activations on the calibration data are "
                                   "not finite (they overflow float32)", hint="check the "
                                   "model's weights and the calibration inputs' range")
                lam[op.name] = v.reshape((-1,) + (1,) * (len(shape) - 1))
                continue
            v = stats[op.x, False] if acts else 1.0
            if not np.isfinite(v):
                raise op.error("the layer's activations on the calibration data are not "
                               "finite (they overflow float32)", hint="check the model's "
                               "weights and the calibration inputs' range")
            if v <= 0:
                # A layer that never activates on the calibration data: keep its scale so
                # it stays silent rather than dividing by zero.
                v = 1.0
            lam[op.name] = np.array(float(v))
        return lam

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        g = graph.copy()
        chan = parse_method(self.method).per_channel
        lam = self.lambdas(g, ctx)
        notes = {k: float(v) if v.ndim == 0 else [float(x) for x in v.reshape(-1)]
                 for k, v in lam.items()}
        ctx.notes["lambda"] = notes
        lam = {op.name: compact(lam[op.name], g.shape(op.out))
               for op in g.ops if op.name in lam}

        def full(v: str, s: np.ndarray, shape: tuple[int, ...] | None = None) -> np.ndarray:
            return np.broadcast_to(s, g.shape(v) if shape is None else shape)

        # target(v): the scale v's consumers want (backwards); 1 where nothing asks.
        target: dict[str, np.ndarray] = {}
        for op in reversed(g.ops):
            for i, v in enumerate(op.inputs()):
                if v in target:
                    continue
                if is_neuron(op):
                    target[v] = lam[op.name]
                elif isinstance(op, (O.Add, O.Concat, *PASS_THROUGH)):
                    t = target.get(op.out, ONE)
                    shape = g.shape(v)
                    if isinstance(op, O.Concat):
                        start = sum(g.shape(u)[op.axis] for u in op.xs[:i])
                        sl = [slice(None)] * len(shape)
                        sl[op.axis] = slice(start, start + shape[op.axis])
                        t = compact(full(op.out, t)[tuple(sl)], shape)
                    elif isinstance(op, (O.MaxPool, O.AvgPool)):
                        t = per_channel(along(t, g.shape(op.out), 0)[0], shape)
                    elif isinstance(op, (O.Flatten, O.Reshape)):
                        t = compact(full(op.out, t).reshape(shape), shape)
                    elif isinstance(op, O.Pad):
                        r = len(shape)
                        t = compact(full(op.out, t)[tuple(
                            slice(op.pads[a], op.pads[a] + shape[a]) for a in range(r))], shape)
                    target[v] = t
        scale: dict[str, np.ndarray] = {v: ONE for v in g.inputs}
        taken = set(g.values) | set(g.params) | {o.name for o in g.ops}
        new_ops: list[O.Op] = []

        def rescaled(v: str, want: np.ndarray, at: O.Op) -> str:
            """v brought to scale `want` (inserting an Affine edge when needed)."""
            have = scale[v]
            if np.allclose(have, want, rtol=1e-7, atol=0):
                return v
            ratio = compact(have / want, g.shape(v))
            out = g.fresh_name(f"{v}.rescale", taken)
            name = g.fresh_name(f"{at.name}.rescale", taken)
            taken.update({out, name})
            new_ops.append(O.Affine(name=name, out=out, origin=at.origin, x=v,
                                    scale=g.add_param(f"{name}.s", np.float32(ratio)),
                                    shift=None))
            g.values[out] = g.values[v]
            scale[out] = compact(want, g.shape(v))
            return out

        for op in g.ops:
            if isinstance(op, O.BatchNorm):
                raise op.error("batch norm must be folded before normalization")
            if is_neuron(op):
                s = lam[op.name]
                x = rescaled(op.x, s, op)
                hi = (None if not isinstance(op, O.Clip) or op.hi is None
                      else op.hi / float(s))  # a clip bound's layer has one scalar lambda
                new = g.replace(op, x=x) if isinstance(op, O.Relu) else g.replace(op, x=x, hi=hi)
                scale[op.out] = s
            elif isinstance(op, (O.Conv, O.Dense)):
                conv = isinstance(op, O.Conv)
                axis = 0 if conv else -1
                x_shape, o_shape = g.shape(op.x), g.shape(op.out)
                v_in, exact = along(scale[op.x], x_shape, axis)
                x = op.x
                if not exact:  # a scale the weights cannot carry: rescale the input first
                    want = (per_channel(v_in, x_shape) if conv else
                            compact(v_in, x_shape))
                    x = rescaled(op.x, want, op)
                v_out, _ = along(target.get(op.out, ONE), o_shape, axis)
                w = g.params[op.weight].astype(np.float64)
                if conv:
                    n_out, c_in = w.shape[0], w.shape[1] * op.groups
                    idx = ((np.arange(n_out) // (n_out // op.groups))[:, None]
                           * (c_in // op.groups) + np.arange(w.shape[1])[None, :])
                    w = w * (v_in[idx] / v_out[:, None])[:, :, None, None]
                    s_out = per_channel(v_out, o_shape)
                else:
                    w = w * (v_in[None, :] / v_out[:, None])
                    s_out = compact(v_out, o_shape)
                new = g.replace(op, x=x, weight=g.add_param(op.weight + ".n", w),
                                bias=None if not op.bias else g.add_param(
                                    op.bias + ".n", _div(g.params[op.bias],
                                                         compact(v_out, v_out.shape))))
                scale[op.out] = s_out
            elif isinstance(op, O.Affine):
                s_in, s_out = scale[op.x], target.get(op.out, ONE)
                sc = g.params[op.scale] if op.scale else np.float32(1)
                ratio = s_in / s_out
                new = g.replace(op, scale=g.add_param(
                    f"{op.name}.scale.n", sc * float(ratio) if ratio.ndim == 0 else sc * ratio),
                    shift=None if not op.shift else g.add_param(
                        f"{op.name}.shift.n", _div(g.params[op.shift], s_out)))
                scale[op.out] = s_out
            elif isinstance(op, O.Concat) and (chan or op.axis == 0):
                new = op  # the output's scale is the concatenation of the inputs' scales
                scale[op.out] = compact(np.concatenate(
                    [full(v, scale[v]) for v in op.xs], axis=op.axis), g.shape(op.out))
            elif isinstance(op, (O.Add, O.Concat)):
                s_out = target.get(op.out, scale[op.inputs()[0]])
                new = g.replace(op, xs=tuple(rescaled(v, s_out, op) for v in op.xs))
                scale[op.out] = compact(s_out, g.shape(op.out))
            elif isinstance(op, (O.MaxPool, O.AvgPool)):
                v_in, exact = along(scale[op.x], g.shape(op.x), 0)
                s = per_channel(v_in, g.shape(op.x))
                new = op if exact else g.replace(op, x=rescaled(op.x, s, op))
                scale[op.out] = s
            elif isinstance(op, (O.Flatten, O.Reshape)):
                new = op
                scale[op.out] = compact(full(op.x, scale[op.x]).reshape(g.shape(op.out)),
                                        g.shape(op.out))
            elif isinstance(op, O.Pad):
                new = op  # zeros have every scale: the pad copies its neighbour's
                r = len(g.shape(op.x))
                scale[op.out] = compact(np.pad(
                    full(op.x, scale[op.x]), [(op.pads[a], op.pads[r + a]) for a in range(r)],
                    mode="edge"), g.shape(op.out))
            else:  # Softmax, non-rectifying Clip: need the ANN's own units
                new = g.replace(op, **{f: rescaled(getattr(op, f), ONE, op)
                                       for f in op.fields_by_role("operand")})
                scale[op.out] = ONE
            new_ops.append(new)

        outputs = []
        for v in g.outputs:
            fake = O.Relu(name=g.fresh_name(f"{v}.output", taken), out="", x=v)
            outputs.append(rescaled(v, ONE, fake))
        g.outputs = outputs
        g.meta["lambda"] = notes
        return g.rebuild(new_ops)
