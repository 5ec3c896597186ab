"""snnc NumPy runtime: the executable meaning of the snnc IR.

This file depends on numpy alone. snnc imports it as its reference simulator and copies it
verbatim into every compiled OUT/ directory as `snn_runtime.py`, beside the shared numeric
rules (`snn_semantics.py`, a copy of snnc's ir/semantics.py), so a compiled network runs
anywhere numpy does:

    python OUT/snn_runtime.py OUT --data test.npz --timesteps 8,16,32

It executes the on-disk IR form (graph.json + params.npz, see ir/serialize.py).

Every op kind has one entry in the kernel table KERNELS: its float form and its
fixed-point form (ANN-level and linear ops, on batch-leading arrays), and for spiking ops
the step form (a chunk of time steps, stateful) and the rate view (what the op computes
in rate terms, for diagnostics). Adding an op kind adds an entry, not branches.

Three modes:
  * run_ann(): evaluates ANN-level ops on batch-leading arrays (used by the differential
    tests against onnxruntime, and after every ANN-preserving pass).
  * simulate(): runs a spiking graph for T steps, layer-major over tiles of (samples x
    steps) sized to stay in cache: every linear op (conv, dense, pooling ...) sees a
    tile's frames as one batch, one GEMM per layer and tile, then each neuron population
    scans its tile over the steps. Signals are (steps, samples, ...) arrays; a signal
    constant in time (the analog input current and whatever linear ops compute from it)
    is (1, samples, ...), computed once per batch.
  * run_rates(): the spiking graph's ANN view (what the firing rates approximate).
Coding lives in the spiking ops (encode, current, if, spikemaxpool, accumulate,
spikesoftmax); nothing here assumes rate coding outside them.

Arithmetic: float32, or, for a graph with the fact "fixed-point" (passes/quantize.py),
exact integer arithmetic (int64 values, int32 saturation), the same operations as the
generated C code, so both agree spike for spike. Kernel providers can replace the table's
kernels with faster ones of the same meaning (`Network(accel=...)`; snnc eval passes
onnxruntime's and native ones, backends/sim/ort_kernels.py and native.py): float results
then differ only by summation order, fixed-point results not at all. On a GPU (ROADMAP)
a provider is the place for onnxruntime's CUDA kernels.

Determinism: the same network, input, flags and batch give identical outputs. Across batch
sizes, what is computed by exact arithmetic is identical (fixed point; Poisson input
spikes, which are a pure function of seed, sample, step and neuron; the spiking-softmax
draws); float32 currents differ by summation order (BLAS sums a batch of 12 in another
order than 5 + 7), so membranes differ by rounding, readouts agree within a relative
1e-4 and a spike can move where a membrane sits on its threshold.
"""
from __future__ import annotations

import functools
import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np


def _semantics() -> Any:
    """snnc's ir/semantics.py inside the package; its copy `snn_semantics.py` beside this
    file when this file runs standalone from an OUT/ directory."""
    if __package__ == "snnc.backends.sim":
        from snnc.ir import semantics

        return semantics
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "snn_semantics.py")
    spec = importlib.util.spec_from_file_location("snn_semantics", path)
    try:
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path}")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    except (OSError, ImportError, SyntaxError) as e:
        if __name__ != "__main__":
            raise
        print(f"snn_runtime: error: {path!r} (the numeric rules this file needs) cannot be "
              f"loaded: {type(e).__name__}; copy it back from the snnc output",
              file=sys.stderr)
        sys.exit(2)
    return mod


S = _semantics()
FORMAT, VERSION = "snnc-ir", 1
F32 = np.float32
I64 = np.int64
#: working set of a tile of (samples x steps) (every value of the graph for those frames):
#: small enough to stay in the last-level cache between the ops that produce and consume
#: it; TILE_STEPS: steps a tile aims for before it splits the batch
TILE_BYTES = 1 << 23
TILE_STEPS = 16
#: im2col columns of one numpy convolution GEMM (counted apart from the tile: it lives
#: only inside the convolution)
CHUNK_BYTES = 1 << 25
#: elements per block of the numpy neuron scans: a block's membrane, input and spike rows
#: stay in cache through the scan over the tile's steps, and blocks are large enough that
#: numpy's per-call cost stays small
SCAN_BLOCK = 1 << 17
#: exactness bounds of integer sums in floating point (below them BLAS is exact)
_F32_EXACT, _F64_EXACT = 2.0 ** 24, 2.0 ** 52
# re-exported: part of the runtime's public surface (tests, the C backend bench)
quantize_input = S.quantize_input
fixed_v_init = S.fixed_v_init
poisson_uniform = S.poisson_uniform


class Signal(NamedTuple):
    """A value during simulation."""

    data: np.ndarray  # (steps, B, ...) or, when const, (1, B, ...)
    const: bool  # the same at every step of the chunk
    spikes: bool  # binary spikes at every step
    #: a spike source whose kernel already added its chunk's spikes per neuron to
    #: Chunk.counts (saves the runtime a pass over the spikes)
    counted: bool = False


# ------------------------------------------------------------------ float kernels ---------
# Each kernel: (op record, params, list of input arrays with leading batch) -> array.

def conv2d(x: np.ndarray, w: np.ndarray, attrs, dtype: Any = F32,
           budget: int = CHUNK_BYTES) -> np.ndarray:
    """2-D convolution of x (N, C, H, W) with w (O, C/groups, kh, kw), no bias, computed
    in `dtype`: im2col into (K, rows) columns for as many samples as `budget` bytes of
    columns hold, then one (O, K) @ (K, rows) GEMM per slice (per group)."""
    o, cg, kh, kw = w.shape
    g = attrs["groups"]
    n, c = x.shape[:2]
    xp = S.pad_hw(x.astype(dtype, copy=False), attrs["pads"])
    w = w.astype(dtype, copy=False)
    if (kh, kw) == (1, 1) and tuple(attrs["strides"]) == (1, 1) and g == 1:
        h, wd = xp.shape[2:]
        return np.matmul(w.reshape(o, c), xp.reshape(n, c, h * wd)).reshape(n, o, h, wd)
    win = S.windows(xp, (kh, kw), attrs["strides"], attrs["dilations"])  # n c oh ow kh kw
    oh, ow = win.shape[2:4]
    if g == c and cg == 1:  # depthwise (o = c * multiplier)
        m = o // c
        y = np.einsum("bchwij,cmij->bcmhw", win, w.reshape(c, m, kh, kw), optimize=True)
        return y.reshape(n, o, oh, ow)
    og, k = o // g, cg * kh * kw
    wg = w.reshape(g, og, k)
    y = np.empty((n, o, oh, ow), dtype)
    per = max(1, budget // max(1, g * k * oh * ow * xp.itemsize))
    for s0 in range(0, n, per):
        m = min(per, n - s0)
        # columns ordered (group, K, sample, position): one (og, K) @ (K, m*P) GEMM
        cols = np.ascontiguousarray(
            win[s0:s0 + m].reshape(m, g, cg, oh, ow, kh, kw)
            .transpose(1, 2, 5, 6, 0, 3, 4)).reshape(g, k, m * oh * ow)
        part = np.matmul(wg, cols).reshape(g, og, m, oh, ow)
        y[s0:s0 + m] = part.transpose(2, 0, 1, 3, 4).reshape(m, o, oh, ow)
    return y


def exact_dtype(max_abs_x: float, w: np.ndarray) -> Any:
    """The cheapest type in which a sum of products of integers x (|x| <= max_abs_x) with
    the integer weights w (O, ...) is exact in any order: float32 below 2^24, float64
    below 2^52, else int64."""
    bound = max_abs_x * float(np.abs(w.astype(np.float64)).reshape(w.shape[0], -1)
                              .sum(axis=1).max(initial=0))
    return F32 if bound < _F32_EXACT else np.float64 if bound < _F64_EXACT else I64


def k_conv(op, P, xs):
    y = conv2d(xs[0], P[op["params"]["weight"]], op["attrs"])
    bias = op["params"].get("bias")
    if bias:
        y += P[bias][:, None, None]
    return y.astype(F32, copy=False)


def k_dense(op, P, xs):
    y = xs[0] @ P[op["params"]["weight"]].T
    bias = op["params"].get("bias")
    if bias:
        y += P[bias]
    return y.astype(F32, copy=False)


def k_batchnorm(op, P, xs):
    p = op["params"]
    x = xs[0]
    tail = (1,) * (x.ndim - 2)
    scale = P[p["scale"]] / np.sqrt(P[p["var"]] + F32(op["attrs"]["epsilon"]))
    shift = P[p["bias"]] - P[p["mean"]] * scale
    return (x * scale.reshape(-1, *tail) + shift.reshape(-1, *tail)).astype(F32, copy=False)


def k_affine(op, P, xs):
    y = xs[0]
    if op["params"].get("scale"):
        y = y * P[op["params"]["scale"]]
    if op["params"].get("shift"):
        y = y + P[op["params"]["shift"]]
    return y.astype(F32, copy=False)


def k_relu(op, P, xs):
    return np.maximum(xs[0], F32(0))


def k_clip(op, P, xs):
    lo, hi = op["attrs"]["lo"], op["attrs"]["hi"]
    return np.clip(xs[0], -np.inf if lo is None else lo, np.inf if hi is None else hi
                   ).astype(F32, copy=False)


def window_reduce(attrs, x: np.ndarray, pad: float, ufunc: np.ufunc) -> np.ndarray:
    """ufunc (np.maximum, np.add) over every window of x (..., H, W), taps in row-major
    order, padding (and the ceil_mode end) filled with `pad`: one pass per tap over the
    output, instead of a reduction over the two small window axes of a strided view."""
    taps = S.pool_windows(attrs, x, pad)
    kh, kw = taps.shape[-2:]
    out = np.array(taps[..., 0, 0])
    for i in range(kh):
        for j in range(kw):
            if i or j:
                ufunc(out, taps[..., i, j], out=out)
    return out


def k_maxpool(op, P, xs):
    return window_reduce(op["attrs"], xs[0], -np.inf, np.maximum)


def k_avgpool(op, P, xs):
    x = xs[0]
    total = window_reduce(op["attrs"], x.astype(F32, copy=False), 0.0, np.add)
    return (total / S.avgpool_counts(op["attrs"], x.shape[-2:]).astype(F32)
            ).astype(F32, copy=False)


def k_add(op, P, xs):
    y = xs[0]
    for x in xs[1:]:
        y = y + x
    return y


def k_concat(op, P, xs):
    return np.concatenate(xs, axis=op["attrs"]["axis"] + 1)


def k_flatten(op, P, xs):
    return xs[0].reshape(xs[0].shape[0], -1)


def k_reshape(op, P, xs):
    return xs[0].reshape(xs[0].shape[0], *op["attrs"]["shape"])


def k_pad(op, P, xs):
    pads = op["attrs"]["pads"]
    r = len(pads) // 2
    return np.pad(xs[0], [(0, 0)] + [(pads[i], pads[r + i]) for i in range(r)])


def k_ttfsgate(op, P, xs):
    return S.ttfs_gate(xs[0], op["attrs"]["leak"])


def k_softmax(op, P, xs):
    x = xs[0]
    ax = op["attrs"]["axis"] % max(1, x.ndim - 1) + 1
    f = x.reshape(*x.shape[:ax], -1)
    e = np.exp(f - f.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).reshape(x.shape).astype(F32, copy=False)


# ------------------------------------------------------------------ fixed-point kernels ---
# Values are int64 arrays; the scale of every value is in meta["fixed_point"]["scales"].

def int_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact integer a @ b (int64), in the cheapest exact type (see exact_dtype)."""
    t = exact_dtype(float(np.abs(a).max(initial=0)), b.T)
    return np.matmul(a.astype(t), b.astype(t)).astype(I64)


def ki_conv(op, P, xs):
    x = xs[0]
    w = P[op["params"]["weight"]]
    y = conv2d(x, w, op["attrs"], exact_dtype(float(np.abs(x).max(initial=0)), w)
               ).astype(I64)
    bias = op["params"].get("bias")
    if bias:
        y += P[bias].astype(I64)[:, None, None]
    return S.sat32(y)


def ki_dense(op, P, xs):
    y = int_matmul(xs[0], P[op["params"]["weight"]].T)
    bias = op["params"].get("bias")
    if bias:
        y += P[bias].astype(I64)
    return S.sat32(y)


def ki_affine(op, P, xs):
    y = xs[0].astype(I64)
    if op["params"].get("scale"):
        y = y * P[op["params"]["scale"]].astype(I64)
    if op["params"].get("shift"):
        y = y + P[op["params"]["shift"]].astype(I64)
    return S.sat32(y)


def ki_avgpool(op, P, xs):
    """Fixed point: the window sum (the divisor is folded into the value's scale)."""
    return S.sat32(window_reduce(op["attrs"], xs[0].astype(I64), 0, np.add))


def ki_add(op, P, xs):
    y = xs[0].astype(I64)
    for x in xs[1:]:
        y = y + x
    return S.sat32(y)


# ------------------------------------------------------------------ rate views ------------
# What a spiking op computes in rate terms (its ANN view): the function the SNN
# approximates by firing rates, used by the diagnostics and bias calibration.

def _softmax_flat(x: np.ndarray) -> np.ndarray:
    f = x.reshape(x.shape[0], -1).astype(np.float64)
    e = np.exp(f - f.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def r_encode(op, P, xs):
    return np.clip(xs[0], 0, 1) if op["attrs"]["coding"] == "poisson" else xs[0]


def r_current(op, P, xs):
    if op["attrs"].get("compensation"):  # a correction of the SNN, not part of the ANN
        return xs[0]
    return (xs[0] + P[op["params"]["bias"]]).astype(F32, copy=False)


def r_if(op, P, xs):
    r = (np.maximum(xs[0] - F32(op["attrs"].get("shift", 0.0)), 0)
         / P[op["params"]["threshold"]])
    if op["attrs"].get("bounded"):
        r = np.minimum(r, 1)
    return r.astype(F32, copy=False)


def r_identity(op, P, xs):
    return xs[0]  # accumulate: the readout of a rate is the rate


def r_spikesoftmax(op, P, xs):
    return _softmax_flat(xs[0]).reshape(xs[0].shape).astype(F32)


# temporal coding's ANN view: what each spike stands for, unquantized: a value a of a
# spike source is read by the synapses as a + 1 (G(a) without its rounding), so a layer
# sees A = sum W (a + 1) + b and its own value is max(A, 0)


def _ttfs_bias(op, P) -> Any:
    """The bias neuron's contribution in value units: its weight times what its spike
    carries, exp((bias_at - inputs' reference step) / L) (G(1))."""
    b = op["params"].get("bias")
    if b is None:
        return F32(0)
    a = op["attrs"]
    ref = a["ref"] if "ref" in a else a["release"] - a["span"]
    return P[b] * F32(math.exp((a["bias_at"] - ref) / a["leak"]))


def r_ttfs_encode(op, P, xs):
    a = op["attrs"]
    return (np.maximum(F32(a["scale"]) * (xs[0] - F32(a["offset"])), 0) + 1).astype(F32)


def r_ttfs_neuron(op, P, xs):  # weights and bias negated: A = -(current + bias)
    return (np.maximum(-(xs[0] + _ttfs_bias(op, P)), 0) + 1).astype(F32)


def r_ttfs_readout(op, P, xs):
    return (F32(op["attrs"]["scale"]) * (xs[0] + _ttfs_bias(op, P))).astype(F32)


def r_sumpool(op, P, xs):
    """The fixed-point average pool (a window sum) in rate terms."""
    return window_reduce(op["attrs"], xs[0].astype(F32, copy=False), 0.0, np.add)


# ------------------------------------------------------------------ step kernels ----------
class Chunk:
    """What a step kernel sees: `n` steps starting after step t0, of a tile of b samples
    (global indices `samples`), the ops' state carried across chunks, the arithmetic."""

    __slots__ = ("n", "t0", "b", "state", "samples", "fixed", "P", "input_bits", "kern",
                 "counts")

    def __init__(self, n, t0, b, state, samples, fixed, P, input_bits, kern, counts):
        self.n, self.t0, self.b, self.state = n, t0, b, state
        self.samples, self.fixed, self.P, self.input_bits = samples, fixed, P, input_bits
        #: op name -> its prepared array kernel (a spiking max-pool's window maximum)
        self.kern = kern
        #: spike source name -> (B, ...) its spikes per neuron so far
        self.counts = counts

    @property
    def dtype(self) -> Any:
        return I64 if self.fixed else F32

    def live(self, steps: int) -> int:
        """Steps of this chunk within the first `steps` steps (0: every step)."""
        return self.n if not steps else max(0, min(self.n, steps - self.t0))

    def full(self, sig: Signal) -> np.ndarray:
        """The signal's data with a step axis of length n (a view when constant)."""
        d = sig.data
        return np.broadcast_to(d, (self.n,) + d.shape[1:]) if sig.const else d


def s_encode(c: Chunk, op, ins):
    """Input coding. analog: x (quantized to 2^F in fixed point) is a current at every
    live step. poisson: a spike where a counter-based uniform draw is below clip(x, 0, 1)
    (in fixed point: the 24-bit integer draw against x_q << (24 - F))."""
    data = ins[0].data[0]
    a = op["attrs"]
    live = c.live(a.get("steps", 0))
    key = "const:" + op["name"]
    if a["coding"] != "poisson" and live == c.n:  # the same every chunk: computed once
        hit = c.state.get(key)
        if hit is not None and hit[0] is ins[0].data:
            return hit[1]
    if c.fixed:
        data = S.quantize_input(data, c.input_bits).astype(I64)
    shape = data.shape
    if a["coding"] != "poisson":
        if live == c.n:
            out = Signal(data[None], True, False)
            c.state[key] = (ins[0].data, out)
            return out
        if live == 0:
            return Signal(np.zeros((1,) + shape, c.dtype), True, False)
        out = np.zeros((c.n,) + shape, c.dtype)
        out[:live] = data
        return Signal(out, False, False)
    out = np.zeros((c.n,) + shape, c.dtype)  # spike sources are never const (SynOps)
    if c.fixed:
        lim = (np.clip(data.reshape(c.b, -1), 0, 1 << c.input_bits)
               << (24 - c.input_bits))
    else:
        lim = np.clip(data.reshape(c.b, -1), 0, 1)
    for i in range(live):
        u = S.poisson_uniform(a["seed"], c.samples, c.t0 + i, lim.shape[1])
        if c.fixed:
            u = S.poisson_draw_int(u)
        out[i] = (u < lim).reshape(shape)
    return Signal(out, False, True)


def s_current(c: Chunk, op, ins):
    """x + bias during the first `steps` steps (finite input time), x after."""
    sig = ins[0]
    bias = c.P[op["params"]["bias"]].astype(c.dtype)
    live = c.live(op["attrs"]["steps"])
    if live == 0:
        return sig
    if live == c.n:
        if sig.const:  # the same every chunk while the input is: computed once
            key = "const:" + op["name"]
            hit = c.state.get(key)
            if hit is not None and hit[0] is sig.data:
                return hit[1]
            out = Signal(_add_bias(sig.data, bias, c.fixed), True, False)
            c.state[key] = (sig.data, out)
            return out
        return Signal(_add_bias(sig.data, bias, c.fixed), False, False)
    out = np.array(c.full(sig), c.dtype)
    out[:live] = _add_bias(out[:live], bias, c.fixed)
    return Signal(out, False, False)


def _add_bias(x: np.ndarray, bias: np.ndarray, fixed: bool) -> np.ndarray:
    return S.sat32(x + bias) if fixed else (x + bias).astype(F32, copy=False)


def s_if(c: Chunk, op, ins, scan: Callable | None = None):
    """Integrate-and-fire: V += I; spike where V >= theta (at most one spike per step, at
    most max_spikes over the run); then V -= theta (subtract) or V = 0 (zero). Fixed
    point: V saturates to int32 after the addition. scan: the recurrence's implementation
    (default _if_scan; native kernels pass a fused one with the same arithmetic)."""
    sig = ins[0]
    a = op["attrs"]
    th = c.P[op["params"]["threshold"]].astype(c.dtype)
    name = op["name"]
    shape = sig.data.shape[1:]
    v = c.state.get(name)
    if v is None:
        v = np.empty(shape, c.dtype)
        v[...] = S.fixed_v_init(th, a["v_init"]) if c.fixed else th * F32(a["v_init"])
        c.state[name] = v
    if a.get("signed"):
        return _if_signed(c, name, v, sig, th, scan)
    cap = a.get("max_spikes", 0)
    count = c.state.setdefault(name + ".count", np.zeros(shape, c.dtype)) if cap else None
    out = np.empty((c.n,) + shape, c.dtype)
    counted = (scan or _if_scan)(v, sig.data, sig.const, th, a["reset"] == "zero", cap,
                                 count, out, c.fixed, c.counts.get(name))
    return Signal(out, False, True, bool(counted))


def _if_signed(c: Chunk, name: str, v: np.ndarray, sig: Signal, th: np.ndarray,
               scan: Callable | None = None) -> Signal:
    """A signed neuron (IFNeuron.signed) over the chunk: V += I; +1 where V >= theta;
    else -1 where V < 0 and the net count is positive; V -= theta * spike. Its net count
    (the rate it codes) is kept in the state; its spike events (|spike|, what SynOps and
    energy count) go to the state's events, read by Network.simulate. scan: a fused
    implementation (native kernels: scan(v, data, const, net, events, out, total) ->
    whether it added the chunk's net spikes to total)."""
    net = c.state.setdefault(name + ".net", np.zeros(v.shape, c.dtype))
    events = c.state.setdefault(name + ".events", np.zeros(v.shape, c.dtype))
    out = np.empty((c.n,) + v.shape, c.dtype)
    if scan is not None:
        # the signed neuron's own signature; the unsigned scan never reaches here
        counted = scan(v, sig.data, sig.const, net, events, out, c.counts.get(name))
        if counted:
            return Signal(out, False, False, True)
    for i in range(c.n):
        np.add(v, sig.data[0 if sig.const else i], out=v)
        if c.fixed:
            np.clip(v, S.I32_MIN, S.I32_MAX, out=v)
        pos = v >= th
        neg = (v < 0) & (net > 0)
        s = out[i]
        np.subtract(pos, neg, out=s, dtype=c.dtype)
        np.subtract(v, s * th, out=v)
        net += s
        events += pos | neg
    return Signal(out, False, False)


def _if_scan(v, data, const, th, zero, cap, count, out, fixed, total=None) -> bool:
    """The IF recurrence over the chunk, block by block of samples so that a block's
    membrane and spike rows stay in cache through all steps. In place on v (and count);
    spikes into out (n, B, ...). Per step and block: V += I (then saturate, in fixed
    point); fired = V >= theta (a bool row: the cheapest comparison); the spikes are that
    row in the value type; V -= theta * spikes (or V = 0 where fired). Returns whether it
    added the spikes per neuron to `total` (this one does not: False)."""
    n, b = out.shape[:2]
    bb = max(1, SCAN_BLOCK // max(1, v[0].size))
    unit = not fixed and th.ndim == 0 and th == 1
    block = (min(bb, b),) + v.shape[1:]
    fired = np.empty(block, bool)
    tmp = None if unit or zero else np.empty(block, v.dtype)
    for s0 in range(0, b, bb):
        s1 = min(b, s0 + bb)
        vb, f = v[s0:s1], fired[: s1 - s0]
        t = None if tmp is None else tmp[: s1 - s0]
        cb = None if count is None else count[s0:s1]
        for i in range(n):
            np.add(vb, data[0 if const else i, s0:s1], out=vb)
            if fixed:
                np.clip(vb, S.I32_MIN, S.I32_MAX, out=vb)
            np.greater_equal(vb, th, out=f)
            if cb is not None:  # a neuron that has spent its budget stays silent
                f &= cb < cap
                cb += f
            s = out[i, s0:s1]
            np.copyto(s, f)
            if zero:
                np.multiply(vb, np.logical_not(f), out=vb)
            elif unit:
                np.subtract(vb, s, out=vb)
            else:
                np.multiply(s, th, out=t)
                np.subtract(vb, t, out=vb)
    return False


def s_spikemaxpool(c: Chunk, op, ins):
    """Spiking max-pool (METHODS 7): each window passes the spike of the input with the
    highest running spike count so far, this step included (ties: the first tap of the
    window, i.e. the input with the lowest row-major index, which is the same order).

    The whole chunk is one vectorized step: the running counts of every step, packed
    with the tie-break priority and the step's spike into one exact key,
        key = count * 2P + 2 * priority + spike      (priority < P, unique per window)
    so that the window maximum of the key is the winner's key and its lowest bit is the
    winner's spike; the window maximum is an ordinary max-pool (`Chunk.kern`)."""
    data = c.full(ins[0])
    name = op["name"]
    a = op["attrs"]
    hw = data.shape[-2:]
    prio, span = _gate_priority(a, tuple(hw))
    # keys are exact integers: float32 while they stay below 2^24
    ktype = F32 if span * (c.t0 + c.n + 1) < _F32_EXACT else np.float64
    key = np.empty(data.shape, ktype)
    prev = c.state.get(name)  # counts * 2P + 2 * priority after the previous chunk
    if prev is None:
        prev = np.broadcast_to(prio.astype(ktype), data.shape[1:])
    elif prev.dtype != ktype:
        prev = prev.astype(ktype)
    np.multiply(data, ktype(span), out=key)
    np.add(key[0], prev, out=key[0])
    for i in range(1, c.n):
        np.add(key[i - 1], key[i], out=key[i])
    c.state[name] = key[-1].copy()
    key += data  # the spike of this step in the lowest bit
    frames = key.reshape((-1,) + key.shape[2:])
    best = c.kern[name](frames)
    out = best - np.floor(best * ktype(0.5)) * ktype(2)  # the winner's spike
    return Signal(out.reshape(data.shape[:2] + out.shape[1:]).astype(c.dtype, copy=False),
                  False, True)


_PRIORITY: dict[tuple, tuple[np.ndarray, int]] = {}


def _gate_priority(attrs, hw: tuple[int, int]) -> tuple[np.ndarray, int]:
    """(2 * priority per input position (H, W), 2P): a higher priority for a lower
    row-major index among the taps of any window. Windows that tile the input need only
    P = kh * kw local priorities; others rank all H * W positions."""
    k = tuple(attrs["kernel"])
    cache_key = (k, tuple(attrs["strides"]), tuple(attrs["pads"]),
                 tuple(attrs.get("dilations", (1, 1))), hw)
    hit = _PRIORITY.get(cache_key)
    if hit is None:
        if S.window_is_tiling(attrs, hw, k):
            local = (k[0] * k[1] - 1 - np.arange(k[0] * k[1])).reshape(k)
            prio, p = np.tile(local, (hw[0] // k[0], hw[1] // k[1])), k[0] * k[1]
        else:
            p = hw[0] * hw[1]
            prio = (p - 1 - np.arange(p)).reshape(hw)
        hit = _PRIORITY[cache_key] = (2 * prio.astype(np.float64), 2 * p)
    return hit


def window_max(attrs, x: np.ndarray) -> np.ndarray:
    """Max over every window of x (N, C, H, W), padding never winning: a max-pool."""
    return window_reduce(attrs, x, -np.inf, np.maximum)


def s_accumulate(c: Chunk, op, ins):
    """Readout: the running sum of the input over steps, carried across chunks."""
    sig = ins[0]
    data = sig.data
    acc = c.state.get(op["name"])
    if acc is None:
        acc = np.zeros(data.shape[1:], c.dtype)
    if sig.const:
        steps = np.arange(1, c.n + 1, dtype=c.dtype).reshape((c.n,) + (1,) * (data.ndim - 1))
        out = acc[None] + steps * data
    else:
        out = acc[None] + np.cumsum(data, axis=0, dtype=c.dtype)
    c.state[op["name"]] = out[-1].copy()
    return Signal(out, False, False)


def s_spikesoftmax(c: Chunk, op, ins):
    """Rueckauer's spiking softmax: V accumulates the input; a Poisson clock of `rate`
    fires and then exactly one neuron spikes, drawn from softmax(V)."""
    data = c.full(ins[0])
    a = op["attrs"]
    v = c.state.get(op["name"])
    if v is None:
        v = np.zeros((c.b, math.prod(data.shape[2:])), np.float64)
    out = np.zeros((c.n, c.b, v.shape[1]), F32)
    rows = np.arange(c.b)
    for i in range(c.n):
        v += data[i].reshape(c.b, -1)
        u = S.poisson_uniform(a["seed"], c.samples, c.t0 + i, 2)
        cdf = np.cumsum(_softmax_flat(v), axis=1)
        pick = np.minimum((cdf <= u[:, 1:2]).sum(axis=1), v.shape[1] - 1)
        out[i, rows, pick] = u[:, 0] < a["rate"]
    c.state[op["name"]] = v
    return Signal(out.reshape((c.n,) + data.shape[1:]), False, True)


# ------------------------------------------------------------------ temporal coding ------
# TDSNN (METHODS 9): every neuron spikes at most once; membranes in float64 so that spike
# times do not depend on the summation order of the float32 currents more than they must.

def s_ttfs_encode(c: Chunk, op, ins):
    """Reverse-coded input: x spikes at step min(T(scale (x - offset)), deadline)."""
    a = op["attrs"]
    data = ins[0].data[0]
    key = "ttfs:" + op["name"]
    hit = c.state.get(key)
    if hit is None or hit[0] is not ins[0].data:
        t = np.minimum(S.ttfs_time(a["scale"] * (data.astype(np.float64) - a["offset"]),
                                   a["leak"], a["shift"]), a["deadline"])
        hit = (ins[0].data, t)
        c.state[key] = hit
    steps = np.arange(c.t0, c.t0 + c.n).reshape((c.n,) + (1,) * data.ndim)
    return Signal((hit[1][None] == steps).astype(F32), False, True)


def _leak_and_add(v: np.ndarray, decay: float, current: np.ndarray,
                  bias: np.ndarray | None, bias_now: bool) -> None:
    """One LIF step in place: V = V exp(-1/L) + input (+ the bias neuron's weight on the
    step its spike arrives)."""
    v *= decay
    v += current
    if bias is not None and bias_now:
        v += bias


def s_ttfs_neuron(c: Chunk, op, ins):
    """V = V exp(-1/L) + x (+ bias at bias_at) (+ tick after release); a neuron that has
    not fired spikes from release on where V >= theta, at release + deadline at the
    latest."""
    a = op["attrs"]
    sig = ins[0]
    shape = sig.data.shape[1:]
    st = c.state.get(op["name"])
    if st is None:
        st = (np.zeros(shape, np.float64), np.zeros(shape, bool))
        c.state[op["name"]] = st
    v, fired = st
    b = op["params"].get("bias")
    bias = None if b is None else c.P[b].astype(np.float64)
    decay = math.exp(-1.0 / a["leak"])
    tick = S.ttfs_tick(a["leak"], a["span"])
    theta = S.ttfs_threshold(a["leak"], a["span"], a["shift"])
    release, last = a["release"], a["release"] + a["deadline"]
    out = np.zeros((c.n,) + shape, F32)
    for i in range(c.n):
        s = c.t0 + i
        _leak_and_add(v, decay, sig.data[0 if sig.const else i], bias, s == a["bias_at"])
        if s > release:
            v += tick
        if s >= release:
            spike = ~fired & ((v >= theta) | (s >= last))
            out[i] = spike
            fired |= spike
    return Signal(out, False, True)


def s_ttfs_maxpool(c: Chunk, op, ins):
    """An output spikes at the step where the last valid input of its window has spiked
    (threshold: the window's input count; padding does not count)."""
    a = op["attrs"]
    x = c.full(ins[0])
    n = x.shape[0]
    taps = a["kernel"][0] * a["kernel"][1]
    count = np.uint8 if taps < 255 else np.int64
    st = c.state.get(op["name"])
    if st is None:
        valid = window_reduce(a, np.ones((1,) + x.shape[2:], count), 0, np.add)
        st = (np.zeros(x.shape[1:], bool), None, valid)
    seen, fired, valid = st
    out = None
    for i in range(n):
        seen |= x[i] > 0
        full = window_reduce(a, seen.view(np.uint8).astype(count, copy=False), 0,
                             np.add) >= valid
        if out is None:
            out = np.zeros((n,) + full.shape, F32)
            fired = np.zeros(full.shape, bool) if fired is None else fired
        out[i] = full & ~fired
        fired |= full
    c.state[op["name"]] = (seen, fired, valid)
    return Signal(out, False, True)


def s_ttfs_readout(c: Chunk, op, ins):
    """V = V exp(-1/L) + x (+ bias at bias_at), never fires; the value at step s is
    scale V exp((s - ref) / L) (float64: the factor outgrows float32 for small L)."""
    a = op["attrs"]
    sig = ins[0]
    shape = sig.data.shape[1:]
    v = c.state.get(op["name"])
    if v is None:
        v = np.zeros(shape, np.float64)
        c.state[op["name"]] = v
    b = op["params"].get("bias")
    bias = None if b is None else c.P[b].astype(np.float64)
    decay = math.exp(-1.0 / a["leak"])
    out = np.zeros((c.n,) + shape, np.float64)
    for i in range(c.n):
        s = c.t0 + i
        _leak_and_add(v, decay, sig.data[0 if sig.const else i], bias, s == a["bias_at"])
        out[i] = v * (a["scale"] * math.exp((s - a["ref"]) / a["leak"]))
    return Signal(out, False, False)


# ------------------------------------------------------------------ the kernel table ------
@dataclass(frozen=True)
class Kernel:
    """One op kind's semantics. ANN-level and linear ops: `float` and `fixed` forms on
    batch-leading arrays (`fixed` None: no fixed-point form). Spiking ops: `step` runs a
    chunk of time steps (stateful) in either arithmetic, `rate` is the op's ANN view.
    `fixed_rate`: the rate view of a linear op in a fixed-point graph, when it differs
    from the float form applied to the integer-scaled values."""

    float: Callable | None = None
    fixed: Callable | None = None
    step: Callable | None = None
    rate: Callable | None = None
    fixed_rate: Callable | None = None


KERNELS: dict[str, Kernel] = {
    "conv": Kernel(k_conv, ki_conv),
    "dense": Kernel(k_dense, ki_dense),
    "batchnorm": Kernel(k_batchnorm),
    "affine": Kernel(k_affine, ki_affine),
    "relu": Kernel(k_relu),
    "clip": Kernel(k_clip),
    "maxpool": Kernel(k_maxpool),
    "avgpool": Kernel(k_avgpool, ki_avgpool, fixed_rate=r_sumpool),
    "add": Kernel(k_add, ki_add),
    "concat": Kernel(k_concat, k_concat),
    "flatten": Kernel(k_flatten, k_flatten),
    "reshape": Kernel(k_reshape, k_reshape),
    "pad": Kernel(k_pad, k_pad),
    "softmax": Kernel(k_softmax),
    "ttfsgate": Kernel(k_ttfsgate),
    "encode": Kernel(step=s_encode, rate=r_encode),
    "current": Kernel(step=s_current, rate=r_current),
    "if": Kernel(step=s_if, rate=r_if),
    "spikemaxpool": Kernel(step=s_spikemaxpool, rate=k_maxpool),
    "accumulate": Kernel(step=s_accumulate, rate=r_identity),
    "spikesoftmax": Kernel(step=s_spikesoftmax, rate=r_spikesoftmax),
    "ttfsencode": Kernel(step=s_ttfs_encode, rate=r_ttfs_encode),
    "ttfsneuron": Kernel(step=s_ttfs_neuron, rate=r_ttfs_neuron),
    "ttfsmaxpool": Kernel(step=s_ttfs_maxpool, rate=k_maxpool),
    "ttfsreadout": Kernel(step=s_ttfs_readout, rate=r_ttfs_readout),
}


# ------------------------------------------------------------------ network --------------
def _table_kernel(form: Callable, op: dict, params: dict, xs: list) -> np.ndarray:
    return form(op, params, xs)


class Network:
    """A loaded IR graph, runnable as an ANN (ANN-level ops) or as an SNN (spiking ops).

    accel (optional): faster kernels with the same meaning, a provider or a list of
    providers (earlier ones first). A provider may have any of:
      linear(op, params, fixed, kinds, fallback) -> callable(xs) | None
          for a non-spiking op (op record, the network's params, its arithmetic, the
          kind of each operand: "spikes" (binary), "sparse" (pooled, padded, reshaped,
          joined or scaled spikes) or "dense"); `fallback` is the kernel it replaces;
      window_max(op) -> callable(x) | None
          for a spiking max-pool: the max over its windows of x (N, C, H, W), exact;
      step(op, params, fixed) -> callable(chunk, op, ins) | None
          for a spiking op: its whole step kernel.
    None keeps the runtime's own kernel.

    threads: tiles of the batch simulated side by side (see tiling); tiles: how many
    tiles a batch is split into at least (default: threads), so that a process with
    fewer threads can cut batches exactly as another process did (shards of one
    evaluation run on workers give the same numbers as one process)."""

    def __init__(self, graph: dict[str, Any], params: dict[str, np.ndarray],
                 accel: Any = None, tile_bytes: int = TILE_BYTES, threads: int = 1,
                 tiles: int | None = None):
        if graph.get("format") != FORMAT or graph.get("version") != VERSION:
            raise ValueError(f"not a {FORMAT} v{VERSION} graph")
        self.g = graph
        self.P = {k: np.asarray(v) for k, v in params.items()}
        self.ops = graph["ops"]
        self.shapes = {r["name"]: tuple(r["shape"]) for r in graph["inputs"]}
        self.shapes.update({k: tuple(v) for k, v in graph["shapes"].items()})
        self.spiking = "spiking" in graph["facts"]
        self.fixed = "fixed-point" in graph["facts"]
        self.input_bits = int(graph["meta"].get("fixed_point", {}).get("input_bits", 0))
        self.tile_bytes = tile_bytes
        #: tiles run side by side on this many threads (numpy, onnxruntime and the native
        #: kernels release the GIL); each tile's computation is the same on any thread
        self.threads = max(1, threads)
        self.tiles = max(1, self.threads if tiles is None else tiles)
        self._executor: Any = None
        self._fo: dict[str, np.ndarray] | None = None  # fan-outs, computed on first use
        # what each value carries, and each value's last reader (to free it)
        self.value_kind: dict[str, str] = {}
        last: dict[str, int] = {}
        for i, op in enumerate(self.ops):
            for v in op["inputs"]:
                last[v] = i
            self.value_kind[op["out"]] = self._kind_of(op)
        self.spike_values = {v for v, k in self.value_kind.items() if k == "spikes"}
        keep = set(graph["outputs"])
        self._free: list[list[str]] = [[] for _ in self.ops]
        for v, i in last.items():
            if v not in keep:
                self._free[i].append(v)
        providers = [] if accel is None else list(accel) if isinstance(accel, list) else [
            accel]
        self._linear: dict[str, Callable] = {}
        self._kern: dict[str, Callable] = {}  # array kernels of spiking ops
        self._step: dict[str, Callable] = {}  # step kernels replaced by a provider
        for op in self.ops:
            kern = KERNELS[op["kind"]]
            if kern.step is not None:
                for p in providers:
                    fn = getattr(p, "step", lambda *a: None)(op, self.P, self.fixed)
                    if fn is not None:
                        self._step[op["name"]] = fn
                        break
                if op["kind"] == "spikemaxpool":
                    fn = None
                    for p in providers:
                        fn = getattr(p, "window_max", lambda *a: None)(op)
                        if fn is not None:
                            break
                    self._kern[op["name"]] = fn or functools.partial(window_max, op["attrs"])
                continue
            form = kern.fixed if self.fixed else kern.float
            fn = None if form is None else functools.partial(_table_kernel, form, op, self.P)
            kinds = [self.value_kind.get(v, "dense") for v in op["inputs"]]
            for p in reversed(providers):
                if fn is None or not hasattr(p, "linear"):
                    continue
                fn = p.linear(op, self.P, self.fixed, kinds, fn) or fn
            if fn is not None:
                self._linear[op["name"]] = fn

    def _kind_of(self, op: dict) -> str:
        """"spikes" (binary at every step), "sparse" (zero wherever no spike reached it:
        pooled, padded, reshaped, joined or scaled spikes) or "dense"."""
        ins = [self.value_kind.get(v, "dense") for v in op["inputs"]]
        if S.carries_spikes(op["kind"], op["attrs"], [k == "spikes" for k in ins]):
            return "spikes"
        if op["kind"] == "if":  # signed spikes: -1/0/+1, zero where none fired
            return "sparse"
        keeps_zeros = (op["kind"] in S.MOVES_DATA + ("avgpool", "add")
                       or (op["kind"] == "affine" and not op["params"].get("shift")))
        return "sparse" if keeps_zeros and ins and "dense" not in ins else "dense"

    @classmethod
    def load(cls, directory: str, accel: Any = None, threads: int = 1) -> Network:
        with open(os.path.join(directory, "graph.json")) as f:
            g = json.load(f)
        with np.load(os.path.join(directory, "params.npz"), allow_pickle=False) as z:
            params = {k: z[k] for k in z.files}
        names = {k: n for n, k in g.get("param_keys", {}).items()}  # hashed entry names
        params = {names.get(k, k): v for k, v in params.items()}
        return cls(g, params, accel, threads=threads)

    # ---------------------------------------------------------------- ANN mode ---------
    def run_ann(self, feeds: dict[str, np.ndarray], outputs: list[str] | None = None
                ) -> dict[str, np.ndarray]:
        env = {k: np.asarray(v, F32) for k, v in feeds.items()}
        for op in self.ops:
            kern = KERNELS[op["kind"]].float
            if kern is None:
                raise ValueError(f"op {op['name']} ({op['kind']}) is not an ANN-level op")
            env[op["out"]] = kern(op, self.P, [env[i] for i in op["inputs"]])
        return {k: env[k] for k in (outputs or self.g["outputs"])}

    def run_rates(self, x: np.ndarray, outputs: list[str]) -> dict[str, np.ndarray]:
        """The spiking graph's ANN view: every value as the rate (per step) the SNN
        approximates, e.g. an IF population's max(I, 0) / threshold (unclipped, so
        saturation shows up as error). `outputs` are value names."""
        x = np.asarray(x, F32)
        if self.fixed:  # integer graph: the input in its scale 2^F
            x = x * F32(1 << self.input_bits)
        env = {self.g["inputs"][0]["name"]: x}
        for op in self.ops:
            kern = KERNELS[op["kind"]]
            ins = [env[i] for i in op["inputs"]]
            # a float graph's linear ops and max-pools: the same functions through the
            # faster kernels prepared for simulation
            fast = None if self.fixed else (self._kern.get(op["name"]) if op["kind"] ==
                                            "spikemaxpool" else self._linear.get(op["name"]))
            if fast is not None and (kern.rate is None or op["kind"] == "spikemaxpool"):
                env[op["out"]] = fast(ins if kern.rate is None else ins[0])
                continue
            form = kern.rate or ((self.fixed and kern.fixed_rate) or kern.float)
            env[op["out"]] = form(op, self.P, ins)
        return {k: env[k] for k in outputs}

    # ---------------------------------------------------------------- fan-out --------
    def _synapses(self, op: dict, index: int) -> np.ndarray:
        """Synapses leaving each element of operand `index` of a Conv/Dense (structural:
        every kernel tap counts)."""
        shape = self.shapes[op["inputs"][index]]
        w = self.P[op["params"]["weight"]]
        if op["kind"] == "dense":
            return np.full(shape, w.shape[0], np.float64)
        cover = self._window_adjoint(op, shape, w.shape[2:], None)[0]
        return np.broadcast_to(cover * (w.shape[0] // op["attrs"]["groups"]), shape).copy()

    def _window_adjoint(self, op: dict, shape, kernel, down: np.ndarray | None) -> np.ndarray:
        """Sum of `down` (C', OH, OW) over every window that covers each input element;
        down=None counts the windows (one channel)."""
        a = op["attrs"]
        hw = shape[1] * shape[2]
        idx = np.arange(hw, dtype=np.float64).reshape(1, 1, *shape[1:])
        win = S.windows(S.pad_hw(idx, a["pads"], S.window_extra(a, shape[1:], kernel), -1.0),
                        kernel, a["strides"], a.get("dilations", (1, 1)))[0, 0]
        if down is None:
            down = np.ones((1, *win.shape[:2]), np.float64)
        acc = np.zeros((down.shape[0], hw), np.float64)
        for i in range(win.shape[-2]):
            for j in range(win.shape[-1]):
                tap = win[..., i, j].reshape(-1)
                ok = tap >= 0
                np.add.at(acc, (slice(None), tap[ok].astype(np.int64)),
                          down.reshape(down.shape[0], -1)[:, ok])
        return acc.reshape(down.shape[0], *shape[1:])

    def fanouts(self) -> dict[str, np.ndarray]:
        """Per spike source (the output of each `if`, and of a Poisson `encode`), the number
        of synapses each of its neurons drives (float64), composed through the data-moving
        and pooling ops between it and the next synaptic op (an average pool followed by a
        conv is one synaptic layer with a larger receptive field)."""
        if self._fo is not None:
            return self._fo
        users: dict[str, list[tuple[dict, int]]] = {}
        for op in self.ops:
            for j, v in enumerate(op["inputs"]):
                users.setdefault(v, []).append((op, j))
        memo: dict[str, np.ndarray] = {}

        def down(v: str) -> np.ndarray:
            if v in memo:
                return memo[v]
            shape = self.shapes[v]
            total = np.zeros(shape, np.float64)
            for op, j in users.get(v, []):
                kind = op["kind"]
                if kind in ("conv", "dense"):
                    total += self._synapses(op, j)
                elif kind in ("avgpool", "spikemaxpool", "maxpool", "ttfsmaxpool"):
                    total += self._window_adjoint(op, shape, op["attrs"]["kernel"],
                                                  down(op["out"]))
                elif kind in ("flatten", "reshape"):
                    total += down(op["out"]).reshape(shape)
                elif kind == "pad":
                    p = op["attrs"]["pads"]
                    r = len(shape)
                    total += down(op["out"])[tuple(slice(p[i], p[i] + shape[i])
                                                   for i in range(r))]
                elif kind == "concat":
                    ax = op["attrs"]["axis"]
                    start = sum(self.shapes[u][ax] for u in op["inputs"][:j])
                    sl = [slice(None)] * len(shape)
                    sl[ax] = slice(start, start + shape[ax])
                    total += down(op["out"])[tuple(sl)]
                elif kind in ("affine", "add", "batchnorm", "current"):
                    total += down(op["out"])
                else:  # a neuron, readout or softmax: one synapse per element
                    total += 1
            memo[v] = total
            return total

        self._fo = {op["out"]: down(op["out"]) for op in self.ops
                    if S.is_spike_source(op["kind"], op["attrs"])}
        return self._fo

    # ---------------------------------------------------------------- SNN mode ---------
    def step_bytes(self) -> int:
        """Bytes of every value of the graph for one sample and one step: the working set
        that a tile of (samples x steps) multiplies."""
        item = 8 if self.fixed else 4
        return item * sum(math.prod(self.shapes[op["out"]]) for op in self.ops)

    def tiling(self, batch: int, timesteps: int, tile_bytes: int | None = None
               ) -> tuple[int, int]:
        """(samples, steps) per tile: the tile's values fit in tile_bytes (default: the
        network's TILE_BYTES). Tiles keep many steps (each op call covers samples x steps
        frames) and split the batch when one step of it would not fit, or into at least
        one tile per thread."""
        frames = max(1, (tile_bytes or self.tile_bytes) // max(1, self.step_bytes()))
        samples = min(batch, max(1, frames // min(timesteps, TILE_STEPS)))
        if self.tiles > 1:  # a tile for every thread
            samples = min(samples, max(1, -(-batch // self.tiles)))
        return samples, int(max(1, min(timesteps, frames // samples)))

    def simulate(self, x: np.ndarray, timesteps: int, *, sample_offset: int = 0,
                 marks: list[int] | None = None, observe: Callable | None = None,
                 record: Callable | None = None, tile_bytes: int | None = None
                 ) -> dict[str, Any]:
        """Run one batch for `timesteps` steps.

        Returns "output": (T, B, ...) the first graph output (the readout) after every
        step; "marks": the sorted step counts `marks` (plus T) at which the totals are
        taken; "spikes": {op name: (len(marks),) total spikes of the batch up to each
        mark} per spike source; "synops": (len(marks),) SynOps up to each mark.
        observe(t, counts) (optional) is called at every mark with {op name: (B, ...)
        spikes per neuron up to step t}; record(op name, t0, spikes) (optional, for
        step-by-step traces) sees every spike source's (steps, B, ...) spikes (the
        batch is then one tile; copy the array to keep it).

        The batch runs in tiles of (samples x steps) whose values fit in cache
        (`tiling`): for every chunk of steps, each slice of samples goes through all
        ops, its state carried from chunk to chunk; samples are independent, so this is
        the same computation as the whole batch at once."""
        if not self.spiking:
            raise ValueError("graph is not spiking; convert it first")
        if timesteps < 1:
            raise ValueError("timesteps must be >= 1")
        b = x.shape[0]
        if b == 0:
            raise ValueError("simulate needs at least one sample")
        marks = sorted({int(t) for t in (marks or ()) if 1 <= t <= timesteps}
                       | {timesteps})
        bt, per = self.tiling(b, timesteps, tile_bytes)
        if record is not None:  # traces see the whole batch at every step
            bt = b
        tiles = [(lo, min(b, lo + bt)) for lo in range(0, b, bt)]
        fanout = self.fanouts()
        sources = [op for op in self.ops if S.is_spike_source(op["kind"], op["attrs"])]
        dtype = I64 if self.fixed else F32
        counts = {op["name"]: np.zeros((b,) + self.shapes[op["out"]], dtype)
                  for op in sources}
        spikes = {op["name"]: np.zeros(len(marks), np.float64) for op in sources}
        synops = np.zeros(len(marks), np.float64)
        output: np.ndarray | None = None
        xs = np.asarray(x, F32)
        # per tile: its state, its input feed (kept, so constant signals are reused),
        # views of the counts and the global indices of its samples
        tile_state = [({}, Signal(xs[lo:hi][None], True, False),
                       {k: v[lo:hi] for k, v in counts.items()},
                       np.arange(sample_offset + lo, sample_offset + hi)) for lo, hi in tiles]
        pool = self._pool() if len(tiles) > 1 and record is None else None
        t0, mi = 0, 0
        while t0 < timesteps:
            n = min(per, marks[mi] - t0)
            jobs = [functools.partial(self._run_tile, Chunk(
                n, t0, hi - lo, state, samples, self.fixed, self.P, self.input_bits,
                self._kern, tcounts), feed, record)
                for (lo, hi), (state, feed, tcounts, samples) in zip(tiles, tile_state)]
            results = list(pool.map(lambda job: job(), jobs)) if pool else [j() for j in jobs]
            for (lo, hi), res in zip(tiles, results):
                if output is None:
                    output = np.empty((timesteps, b) + res.shape[2:], res.dtype)
                output[t0:t0 + n, lo:hi] = res
            t0 += n
            if t0 == marks[mi]:
                for op in sources:
                    cnt = counts[op["name"]]
                    if op["attrs"].get("signed"):  # events (+1 and -1), not the net count
                        cnt = np.concatenate([st[op["name"] + ".events"]
                                              for st, _, _, _ in tile_state])
                    spikes[op["name"]][mi] = float(cnt.sum(dtype=np.float64))
                    synops[mi] += float(cnt.reshape(b, -1).sum(axis=0, dtype=np.float64)
                                        @ fanout[op["out"]].reshape(-1))
                if observe is not None:
                    observe(t0, counts)
                mi += 1
        return {"output": output, "marks": marks, "spikes": spikes, "synops": synops}

    def _run_tile(self, c: Chunk, feed: Signal, record: Callable | None) -> np.ndarray:
        """Every op on one tile for the chunk's steps; the readout (steps, samples, ...)."""
        env = {self.g["inputs"][0]["name"]: feed}
        for i, op in enumerate(self.ops):
            ins = [env[v] for v in op["inputs"]]
            step = self._step.get(op["name"]) or KERNELS[op["kind"]].step
            sig = step(c, op, ins) if step is not None else self._apply(op, ins, c)
            env[op["out"]] = sig
            if op["name"] in c.counts:
                if not sig.counted:
                    c.counts[op["name"]] += sig.data.sum(axis=0)
                if record is not None:
                    record(op["name"], c.t0, sig.data)
            for v in self._free[i]:
                env.pop(v, None)
        return c.full(env[self.g["outputs"][0]])

    def _pool(self) -> Any:
        """The threads that run tiles side by side (None: one thread)."""
        if self.threads < 2:
            return None
        if self._executor is None:
            from concurrent.futures import ThreadPoolExecutor

            self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="snnc-sim")
        return self._executor

    def _apply(self, op: dict, ins: list[Signal], c: Chunk) -> Signal:
        """A non-spiking op over the chunk: once when every operand is constant in time
        (and reused by later chunks while the operands are the same), else on the whole
        (steps x batch) batch at once."""
        fn = self._linear.get(op["name"])
        if fn is None:
            raise ValueError(f"op {op['name']} ({op['kind']}) has no "
                             f"{'fixed-point' if self.fixed else 'float'} semantics")
        if all(s.const for s in ins):
            key = "const:" + op["name"]
            hit = c.state.get(key)
            if hit is not None and all(a is s.data for a, s in zip(hit[0], ins)):
                return hit[1]
            out = Signal(fn([s.data[0] for s in ins])[None], True, False)
            c.state[key] = ([s.data for s in ins], out)
            return out
        flat = [c.full(s).reshape((c.n * c.b,) + s.data.shape[2:]) for s in ins]
        y = fn(flat)
        return Signal(y.reshape((c.n, c.b) + y.shape[1:]), False,
                      op["out"] in self.spike_values)


# ------------------------------------------------------------------ evaluation -----------
def batches(x: np.ndarray, y: np.ndarray | None, batch: int) -> Iterator[tuple[int, Any, Any]]:
    """The one iterator evaluation takes data through: (offset, x batch, y batch)."""
    for i in range(0, len(x), batch):
        yield i, x[i:i + batch], (None if y is None else y[i:i + batch])


def evaluate(net: Network, x: np.ndarray, y: np.ndarray, timesteps: list[int],
             batch: int = 100, progress: Callable | None = None,
             observer: Any = None) -> dict[str, Any]:
    """Accuracy at every step up to max(timesteps); spikes and SynOps per sample at each
    of `timesteps`. observer (optional): `observer.begin(net, offset, x_batch)` before
    each batch, `observer.marks` (step counts it needs spike counts at) and
    `observer.observe(t, counts)` (see Network.simulate)."""
    return tally(net, batches(x, y, batch), timesteps, progress, observer).result()


def tally(net: Network, items: Iterable[tuple[int, np.ndarray, np.ndarray]],
          timesteps: list[int], progress: Callable | None = None,
          observer: Any = None) -> Tally:
    """Simulate the (offset, x batch, y batch) items (batches()) and count: the Tally of
    evaluate(). Tallies of disjoint parts of a data set merge exactly (Tally.merge) into
    the tally of the whole, whatever the order: evaluation can be split into shards."""
    steps = sorted(set(timesteps))
    tmax = steps[-1]
    t = Tally(steps)
    if net.g["meta"].get("coding") == "ttfs":  # spike times: the totals after every step
        if observer is not None:
            raise ValueError("rate-coding diagnostics do not apply to temporal coding")
        observer = t.ttfs = _SpikeTimes(net, steps, tmax)
    want = set(steps) | set(getattr(observer, "marks", ()))
    for off, xb, yb in items:
        if observer is not None:
            observer.begin(net, off, xb)
        tr = net.simulate(xb, tmax, sample_offset=off, marks=sorted(want),
                          observe=None if observer is None else observer.observe,
                          record=getattr(observer, "record", None))
        pred = tr["output"].reshape(tmax, len(xb), -1).argmax(axis=-1)
        t.add(pred, yb, tr)
        if progress:
            progress(len(xb))
    return t


class Tally:
    """What evaluation counts over samples: correct predictions after every step, spikes
    per layer and SynOps at the marks. Every entry is an integer (spike and SynOp totals
    are integer-valued float64, exact up to 2^53), so merging tallies is exact and
    independent of order."""

    def __init__(self, steps: list[int]):
        self.steps = sorted(set(steps))
        self.n = 0
        self.correct = np.zeros(self.steps[-1], np.int64)
        self.spikes: dict[str, np.ndarray] = {}
        self.synops: np.ndarray | None = None
        self.marks: list[int] = []
        self.ttfs: _SpikeTimes | None = None

    def add(self, pred: np.ndarray, y: np.ndarray, tr: dict[str, Any]) -> None:
        """One simulated batch: predictions (T, B) and Network.simulate's record."""
        self.n += pred.shape[1]
        self.correct += (pred == y[None, :]).sum(axis=1)
        for k, v in tr["spikes"].items():
            self.spikes[k] = self.spikes.get(k, 0) + v
        self.synops = tr["synops"] if self.synops is None else self.synops + tr["synops"]
        self.marks = tr["marks"]

    def merge(self, other: Tally) -> Tally:
        """Add another tally (of other samples, the same steps and network) to this one."""
        if other.steps != self.steps:
            raise ValueError("tallies of different step counts do not merge")
        self.n += other.n
        self.correct += other.correct
        for k, v in other.spikes.items():
            self.spikes[k] = self.spikes.get(k, 0) + v
        if other.synops is not None:
            self.synops = other.synops if self.synops is None else self.synops + other.synops
        self.marks = other.marks or self.marks
        if other.ttfs is not None:
            self.ttfs = other.ttfs if self.ttfs is None else self.ttfs.merge(other.ttfs)
        return self

    def result(self) -> dict[str, Any]:
        """evaluate()'s record: accuracy per step, spikes per layer, the rows per T."""
        n, steps, tmax = max(1, self.n), self.steps, self.steps[-1]
        at = {t: i for i, t in enumerate(self.marks)}
        total = sum(self.spikes.values()) if self.spikes else np.zeros(len(self.marks))
        synops = self.synops if self.synops is not None else np.zeros(len(self.marks))
        out = {
            "accuracy_per_step": (self.correct / n).tolist(),
            "layer_spikes": {k: float(v[at[tmax]] / n) for k, v in self.spikes.items()},
            "snn": [{"timesteps": t, "accuracy": float(self.correct[t - 1] / n),
                     "spikes_per_sample": float(total[at[t]] / n),
                     "synops_per_sample": float(synops[at[t]] / n)} for t in steps],
        }
        if self.ttfs is not None:
            for row in out["snn"]:
                row.update(self.ttfs.row(row["timesteps"]))
            out["ttfs"] = self.ttfs.summary(n)
        return out


class _SpikeTimes:
    """Temporal coding's evaluation numbers: per T, the most spikes any neuron fired (at
    most 1 by construction) and the decision step; per layer, its release step and the
    mean and last step its neurons fired at (from the spikes of every step)."""

    def __init__(self, net: Network, steps: list[int], tmax: int):
        self.marks = list(steps)
        self.decision = int(net.g["meta"]["timesteps"])
        self.layers = [op for op in net.ops if S.is_spike_source(op["kind"], op["attrs"])]
        #: spikes of each layer at every step (0 = the first), summed over samples
        self.per_step = {op["name"]: np.zeros(tmax, np.float64) for op in self.layers}
        self.max_count = {t: 0.0 for t in steps}

    def begin(self, net: Network, offset: int, x: np.ndarray) -> None:
        pass

    def record(self, name: str, t0: int, spikes: np.ndarray) -> None:
        h = self.per_step.get(name)
        if h is not None:
            h[t0:t0 + len(spikes)] += spikes.reshape(len(spikes), -1).sum(
                axis=1, dtype=np.float64)

    def observe(self, t: int, counts: dict[str, np.ndarray]) -> None:
        for op in self.layers:
            c = counts[op["name"]]
            if t in self.max_count and c.size:
                self.max_count[t] = max(self.max_count[t], float(c.max()))

    def merge(self, other: _SpikeTimes) -> _SpikeTimes:
        """Another shard's record (exact: integer-valued sums and maxima)."""
        for k, h in other.per_step.items():
            self.per_step[k] += h
        for t, m in other.max_count.items():
            self.max_count[t] = max(self.max_count[t], m)
        return self

    def row(self, t: int) -> dict[str, Any]:
        return {"spikes_per_neuron": self.max_count[t],
                "decision_steps": min(t, self.decision)}

    def summary(self, n: int) -> dict[str, Any]:
        layers = []
        for op in self.layers:
            a = op["attrs"]
            h = self.per_step[op["name"]]
            fired = np.flatnonzero(h)
            k = np.arange(len(h))
            layers.append({
                "layer": op["name"], "release_step": int(a.get("release", 0)),
                # the first step an input can reach it (its inputs' reference step)
                "inputs_from_step": int(a.get("release", 0) - a.get("span", 0)),
                "spikes_per_sample": float(h.sum() / n),
                "mean_spike_step": float((h * k).sum() / h.sum()) if h.sum() else None,
                "last_spike_step": int(fired[-1]) if len(fired) else None})
        return {"decision_steps": self.decision, "layers": layers}


def _memory() -> int:
    """Physical memory, or the process's address-space limit when lower."""
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        mem = 8 << 30
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY and soft > 0:
            mem = min(mem, soft)
    except (ImportError, ValueError, OSError):
        pass
    return mem


def _too_big(path: str, budget: int) -> str | None:
    """Why the .npz at path must not be loaded (an array header declaring more than the
    budget, or a header that does not match the data), or None."""
    import zipfile

    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            with z.open(info) as f:
                version = np.lib.format.read_magic(f)
                read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                        else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read(f)
                nbytes = float(np.prod(shape, dtype=np.float64)) * dtype.itemsize
                if nbytes > budget:
                    return (f"{info.filename} declares {nbytes:.3g} bytes, more than half of "
                            "the memory this process may use")
                if info.file_size != f.tell() + nbytes:
                    return f"{info.filename} is corrupted (its header does not match its size)"
    return None


def _main(argv: list[str]) -> int:
    """`python OUT/snn_runtime.py OUT --data D.npz`: bad input is one line on stderr and
    exit code 2, never a traceback."""
    import argparse

    ap = argparse.ArgumentParser(description="Run an snnc-compiled SNN with numpy alone.")
    ap.add_argument("out", help="the snnc output directory")
    ap.add_argument("--data", required=True, help=".npz with x (N, ...) and y (N,)")
    ap.add_argument("--timesteps", default="8,16,32,64,128")
    ap.add_argument("--batch", type=int, default=100)

    def usage_error(message: str) -> None:  # argparse's usage block: one line instead
        print(f"snn_runtime: error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)

    ap.error = usage_error  # type: ignore[method-assign]
    args = ap.parse_args(argv)

    def fail(msg: str) -> int:
        print(f"snn_runtime: error: {msg}".encode("ascii", "backslashreplace").decode(),
              file=sys.stderr)
        return 2

    try:
        steps = [int(t) for t in args.timesteps.split(",")]
    except ValueError:
        return fail(f"--timesteps must be comma-separated integers, got {args.timesteps!r}")
    if not steps or min(steps) < 1 or args.batch < 1:
        return fail("--timesteps and --batch must be positive")
    budget = _memory() // 2
    if max(steps) * 64 > budget:
        return fail(f"--timesteps {max(steps)} needs more memory than half of this machine's")
    try:
        net = Network.load(args.out)
    except Exception as e:  # a missing or edited OUT: say which, no traceback
        return fail(f"cannot load the network in {args.out!r}: {type(e).__name__}: {e}")
    if not os.path.isfile(args.data):  # a folder, a device (/dev/zero), a FIFO: not data
        return fail(f"{args.data!r} is not a regular file; expected an .npz with x and y")
    try:
        too_big = _too_big(args.data, budget)
    except Exception as e:  # numpy's header parser raises anything on a hostile header
        return fail(f"cannot read {args.data!r}: {type(e).__name__}: {e}")
    if too_big:
        return fail(too_big)
    try:
        with np.load(args.data, allow_pickle=False) as z:
            if "x" not in z.files or "y" not in z.files:
                return fail(f"{args.data!r} needs arrays x (N, ...) and y (N,), has "
                            f"{sorted(z.files)}")
            x, y = z["x"], z["y"]
    except Exception as e:
        return fail(f"cannot read {args.data!r}: {type(e).__name__}: {e}")
    shape = tuple(net.g["inputs"][0]["shape"])
    if x.ndim >= 1 and len(x) == 0:
        return fail(f"{args.data!r} holds no samples")
    if x.ndim < 1 or tuple(x.shape[1:]) != shape or x.dtype.kind not in "fiub":
        return fail(f"x has shape {list(x.shape)} ({x.dtype}); the network takes "
                    f"[N, {', '.join(map(str, shape))}] numbers")
    if y.shape != (len(x),) or y.dtype.kind not in "iu":
        return fail(f"y has shape {list(y.shape)} ({y.dtype}); expected [{len(x)}] integers")
    with np.errstate(all="ignore"):
        x32 = x.astype(F32)
    if not np.isfinite(x32).all():
        return fail("x holds values that are not finite as float32 (NaN, Inf or beyond "
                    "3.4e38)")
    import warnings

    # as `snnc eval`: numpy's overflow warnings (inputs near float32's limit) are not a
    # result; the accuracy line is
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        res = evaluate(net, x32, y.astype(np.int64), steps, args.batch)
    for row in res["snn"]:
        print(f"T={row['timesteps']:5d} accuracy={row['accuracy']:.4f} "
              f"spikes/sample={row['spikes_per_sample']:.1f} "
              f"synops/sample={row['synops_per_sample']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
