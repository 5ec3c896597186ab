"""snnc NumPy runtime: the executable meaning of the snnc IR.

This file depends on numpy alone. snnc imports it as its reference simulator and copies it
verbatim into every compiled OUT/ directory as `snn_runtime.py`, so a compiled network runs
anywhere numpy does:

    python OUT/snn_runtime.py OUT --data test.npz --timesteps 8,16,32

It executes the on-disk IR form (graph.json + params.npz, see ir/serialize.py).

Two modes:
  * run_ann(): evaluates ANN-level ops on batch-leading arrays (used by the differential
    tests against onnxruntime, and after every ANN-preserving pass).
  * simulate(): runs a spiking graph for T steps. Feed-forward graphs run layer-major: all
    steps of a time chunk go through one op as one batched matmul/conv, then the cheap
    neuron scan over time. Signals are (T_chunk, B, ...) arrays; a signal constant in time
    (the analog input current and whatever linear ops compute from it) is kept as
    (1, B, ...) and computed once.
Coding lives in the spiking ops (encode, if, spikemaxpool, accumulate); nothing here
assumes rate coding outside them.
"""
from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

FORMAT, VERSION = "snnc-ir", 1
F32 = np.float32

# ------------------------------------------------------------------ window helpers --------


def _ceil_extra(size: int, k: int, s: int, pb: int, pe: int, d: int, ceil_mode: bool) -> int:
    """Extra end padding that ceil_mode needs so that every output window exists."""
    if not ceil_mode:
        return 0
    span = size + pb + pe - d * (k - 1) - 1
    out = -(-span // s) + 1
    if (out - 1) * s >= size + pb:
        out -= 1
    need = (out - 1) * s + d * (k - 1) + 1
    return max(0, need - (size + pb + pe))


def _pad_hw(x: np.ndarray, pads, extra=(0, 0), value: float = 0.0) -> np.ndarray:
    t, left, b, r = pads
    if not (t or left or b or r or extra[0] or extra[1]):
        return x
    width = [(0, 0)] * (x.ndim - 2) + [(t, b + extra[0]), (left, r + extra[1])]
    return np.pad(x, width, constant_values=value)


def _op_extra(op: dict, hw, kernel) -> tuple[int, int]:
    """The ceil_mode end padding of a windowed op (conv or pool) on spatial size hw."""
    a = op["attrs"]
    d = a.get("dilations", (1, 1))
    return tuple(_ceil_extra(hw[i], kernel[i], a["strides"][i], a["pads"][i],
                             a["pads"][2 + i], d[i], a.get("ceil_mode", False))
                 for i in range(2))


def _windows(x: np.ndarray, k, s, d) -> np.ndarray:
    """View (..., C, OH, OW, kh, kw) of a padded (..., C, H, W) array."""
    kh, kw = k
    eh, ew = d[0] * (kh - 1) + 1, d[1] * (kw - 1) + 1
    v = np.lib.stride_tricks.sliding_window_view(x, (eh, ew), axis=(-2, -1))
    return v[..., :: s[0], :: s[1], :: d[0], :: d[1]]


# ------------------------------------------------------------------ ANN kernels -----------
# Each kernel: (op record, params, list of input arrays with leading batch) -> array.


def k_conv(op, P, xs):
    x = xs[0]
    a = op["attrs"]
    w = P[op["params"]["weight"]]
    o, cg, kh, kw = w.shape
    g = a["groups"]
    b, c = x.shape[:2]
    xp = _pad_hw(x, a["pads"])
    if (kh, kw) == (1, 1) and tuple(a["strides"]) == (1, 1) and g == 1:
        h, wd = xp.shape[2:]
        y = np.matmul(w.reshape(o, c), xp.reshape(b, c, h * wd)).reshape(b, o, h, wd)
    elif g == c and cg == 1:  # depthwise (o = c * multiplier)
        win = _windows(xp, (kh, kw), a["strides"], a["dilations"])
        m = o // c
        y = np.einsum("bchwij,cmij->bcmhw", win,
                      w.reshape(c, m, kh, kw), optimize=True)
        y = y.reshape(b, o, *y.shape[3:])
    else:
        # im2col in (K, positions) order so the GEMM writes (O, OH*OW) directly: no
        # transpose of the output, and the column copy reads memory almost sequentially.
        win = _windows(xp, (kh, kw), a["strides"], a["dilations"])  # b c oh ow kh kw
        oh, ow = win.shape[2:4]
        og = o // g
        cols = win.transpose(0, 1, 4, 5, 2, 3).reshape(b, g, cg * kh * kw, oh * ow)
        wg = w.reshape(g, og, cg * kh * kw)
        y = np.matmul(wg[None], cols).reshape(b, o, oh, ow)
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


def _pool_view(op, x, value, dil=(1, 1)):
    a = op["attrs"]
    k, s, pads = a["kernel"], a["strides"], a["pads"]
    extra = _op_extra(op, x.shape[-2:], k)
    return _windows(_pad_hw(x, pads, extra, value), k, s, dil), extra


def k_maxpool(op, P, xs):
    win, _ = _pool_view(op, xs[0], -np.inf, op["attrs"]["dilations"])
    return win.max(axis=(-2, -1))


def k_avgpool(op, P, xs):
    a = op["attrs"]
    x = xs[0]
    win, extra = _pool_view(op, x, 0.0)
    total = win.sum(axis=(-2, -1), dtype=F32)
    # The divisor counts real inputs, plus explicit pads when count_include_pad; never the
    # extra end padding ceil_mode adds (ONNX/PyTorch semantics).
    ones = np.ones((1, 1) + x.shape[2:], F32)
    if a["count_include_pad"]:
        ones = _pad_hw(ones, a["pads"], (0, 0), 1.0)
        cnt = _windows(_pad_hw(ones, (0, 0, 0, 0), extra, 0.0), a["kernel"], a["strides"],
                       (1, 1))
    else:
        cnt = _windows(_pad_hw(ones, a["pads"], extra, 0.0), a["kernel"], a["strides"],
                       (1, 1))
    return (total / cnt.sum(axis=(-2, -1))).astype(F32, copy=False)


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


def k_softmax(op, P, xs):
    x = xs[0]
    ax = op["attrs"]["axis"] % max(1, x.ndim - 1) + 1
    f = x.reshape(*x.shape[:ax], -1)
    e = np.exp(f - f.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).reshape(x.shape).astype(F32, copy=False)


ANN_KERNELS: dict[str, Callable] = {
    "conv": k_conv, "dense": k_dense, "batchnorm": k_batchnorm, "affine": k_affine,
    "relu": k_relu, "clip": k_clip, "maxpool": k_maxpool, "avgpool": k_avgpool,
    "add": k_add, "concat": k_concat, "flatten": k_flatten, "reshape": k_reshape,
    "pad": k_pad, "softmax": k_softmax,
}

# stateful spiking ops, executed over time by Network._step_op
SPIKING_KINDS = ("encode", "current", "if", "spikemaxpool", "accumulate", "spikesoftmax")
# spiking ops whose output spikes are counted (per layer, and as SynOps at their fan-out)
SPIKE_SOURCES = ("if", "spikesoftmax")


def _softmax_flat(x: np.ndarray) -> np.ndarray:
    f = x.reshape(x.shape[0], -1).astype(np.float64)
    e = np.exp(f - f.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _rate_view(op, P, xs):
    """What a spiking op computes in rate terms (its ANN view): the function the SNN
    approximates by firing rates. Used for diagnostics (Ding's K curve, correlation)."""
    kind, x = op["kind"], xs[0]
    if kind == "encode":
        return np.clip(x, 0, 1) if op["attrs"]["coding"] == "poisson" else x
    if kind == "current":
        if op["attrs"].get("compensation"):
            return x
        return (x + P[op["params"]["bias"]]).astype(F32, copy=False)
    if kind == "if":
        r = np.maximum(x - F32(op["attrs"].get("shift", 0.0)), 0) / P[op["params"]["threshold"]]
        if op["attrs"].get("bounded"):
            r = np.minimum(r, 1)
        return r.astype(F32, copy=False)
    if kind == "spikemaxpool":
        return k_maxpool(op, P, xs)
    if kind == "spikesoftmax":
        return _softmax_flat(x).reshape(x.shape).astype(F32)
    return x  # accumulate: the readout of a rate is the rate
# ops that only move data: spikes stay spikes through them
SHAPE_ONLY = {"flatten", "reshape", "pad", "concat"}


def _window_winner(cview: np.ndarray, sview: np.ndarray, dtype: Any) -> np.ndarray:
    """Spiking max-pool gate: per window (views (..., kh, kw)), the spike of the tap with
    the highest running count, the first tap on ties."""
    kh, kw = cview.shape[-2:]
    best = cview.max(axis=(-2, -1))
    out = np.zeros(best.shape, dtype)
    free = np.ones(best.shape, bool)  # window not yet assigned (first tap wins)
    for i in range(kh):
        for j in range(kw):
            hit = (cview[..., i, j] == best) & free
            out += hit * sview[..., i, j]
            free &= ~hit
    return out


def _accumulate(state: dict[str, Any], name: str, data: np.ndarray, const: bool, n: int,
                dtype: Any) -> np.ndarray:
    """The readout's running sum over a chunk of n steps, carried across chunks."""
    acc = state.get(name)
    if acc is None:
        acc = np.zeros(data.shape[1:], dtype)
    if const:
        steps = np.arange(1, n + 1, dtype=dtype).reshape((n,) + (1,) * (data.ndim - 1))
        out = acc[None] + steps * data
    else:
        out = acc[None] + np.cumsum(data, axis=0, dtype=dtype)
    state[name] = out[-1].copy()
    return out


# ------------------------------------------------------------------ counter-based RNG -----
def _mix32(x: np.ndarray) -> np.ndarray:
    """lowbias32 integer hash (uint32 -> uint32); reproducible in any language."""
    x = x.astype(np.uint32, copy=True)
    x ^= x >> np.uint32(16)
    x *= np.uint32(0x7FEB352D)
    x ^= x >> np.uint32(15)
    x *= np.uint32(0x846CA68B)
    x ^= x >> np.uint32(16)
    return x


def poisson_uniform(seed: int, sample: np.ndarray, t: int, n: int) -> np.ndarray:
    """Uniform [0, 1) draws for (samples, n neurons) at step t, a pure function of
    (seed, global sample index, t, neuron index): independent of batching."""
    with np.errstate(over="ignore"):
        h = _mix32(np.arange(n, dtype=np.uint32)[None, :]
                   ^ _mix32(np.uint32(t) ^ _mix32(sample.astype(np.uint32)[:, None]
                                                  ^ np.uint32(seed & 0xFFFFFFFF))))
    return (h >> np.uint32(8)).astype(F32) * F32(1.0 / (1 << 24))


# ------------------------------------------------------------------ fixed point ----------
# A graph with the fact "fixed-point" (passes/quantize.py) runs in integer arithmetic, the
# same operations as the generated C (backends/c): int16 input, int32 currents and
# membranes (int64 accumulation, saturation to int32), int64 readout. Values are int64
# arrays here; the scale of every value is in graph meta["fixed_point"]["scales"].
I32_MIN, I32_MAX = -(2 ** 31), 2 ** 31 - 1
# exactness bound of float64 matmuls over integers (below it, BLAS is exact and fast)
_F64_EXACT = 2.0 ** 52


def quantize_input(x: np.ndarray, frac_bits: int) -> np.ndarray:
    """The fixed-point input: floor(x * 2^F + 1/2) saturated to int16 (what the C
    program receives)."""
    q = np.floor(np.asarray(x, np.float64) * (1 << frac_bits) + 0.5)
    return np.clip(q, -32768, 32767).astype(np.int16)


def fixed_v_init(threshold_q: np.ndarray, v_init: float) -> np.ndarray:
    """Initial membrane of a fixed-point IF population: (theta_q * round(v_init * 2^16))
    >> 16 (floor), integers only."""
    vi = int(math.floor(v_init * 65536 + 0.5))
    return (np.asarray(threshold_q, np.int64) * vi) >> 16


def _sat32(a: np.ndarray) -> np.ndarray:
    return np.clip(a, I32_MIN, I32_MAX)


def _int_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact integer a @ b (int64): through float64 BLAS when every partial sum is below
    2^52, else numpy's integer matmul."""
    bound = float(np.abs(a).max(initial=0)) * float(np.abs(b).sum(axis=-2).max(initial=0))
    if bound < _F64_EXACT:
        return np.rint(np.matmul(a.astype(np.float64), b.astype(np.float64))).astype(np.int64)
    return np.matmul(a.astype(np.int64), b.astype(np.int64))


def ki_conv(op, P, xs):
    x = xs[0]
    a = op["attrs"]
    w = P[op["params"]["weight"]].astype(np.int64)
    o, cg, kh, kw = w.shape
    g = a["groups"]
    b = x.shape[0]
    win = _windows(_pad_hw(x, a["pads"]), (kh, kw), a["strides"], a["dilations"])
    oh, ow = win.shape[2:4]
    og = o // g
    cols = win.transpose(0, 1, 4, 5, 2, 3).reshape(b, g, cg * kh * kw, oh * ow)
    y = np.stack([_int_matmul(w[i * og:(i + 1) * og].reshape(og, -1), cols[:, i])
                  for i in range(g)], axis=1).reshape(b, o, oh, ow)
    bias = op["params"].get("bias")
    if bias:
        y += P[bias].astype(np.int64)[:, None, None]
    return _sat32(y)


def ki_dense(op, P, xs):
    y = _int_matmul(xs[0], P[op["params"]["weight"]].astype(np.int64).T)
    bias = op["params"].get("bias")
    if bias:
        y += P[bias].astype(np.int64)
    return _sat32(y)


def ki_affine(op, P, xs):
    y = xs[0].astype(np.int64)
    if op["params"].get("scale"):
        y = y * P[op["params"]["scale"]].astype(np.int64)
    if op["params"].get("shift"):
        y = y + P[op["params"]["shift"]].astype(np.int64)
    return _sat32(y)


def ki_avgpool(op, P, xs):
    """Fixed point: the window sum (the divisor is folded into the value's scale)."""
    win, _ = _pool_view(op, xs[0].astype(np.int64), 0)
    return _sat32(win.sum(axis=(-2, -1)))


def ki_add(op, P, xs):
    y = xs[0].astype(np.int64)
    for x in xs[1:]:
        y = y + x
    return _sat32(y)


def _rate_sumpool(op, P, xs):
    """The fixed-point average pool (a window sum) in rate terms (diagnostics)."""
    win, _ = _pool_view(op, xs[0], 0.0)
    return win.sum(axis=(-2, -1), dtype=F32)


INT_KERNELS: dict[str, Callable] = {
    "conv": ki_conv, "dense": ki_dense, "affine": ki_affine, "avgpool": ki_avgpool,
    "add": ki_add, "concat": k_concat, "flatten": k_flatten, "reshape": k_reshape,
    "pad": k_pad,
}


# ------------------------------------------------------------------ network --------------
class Network:
    """A loaded IR graph, runnable as an ANN (ANN-level ops) or as an SNN (spiking ops)."""

    def __init__(self, graph: dict[str, Any], params: dict[str, np.ndarray]):
        if graph.get("format") != FORMAT or graph.get("version") != VERSION:
            raise ValueError(f"not a {FORMAT} v{VERSION} graph")
        self.g = graph
        self.P = {k: np.asarray(v) for k, v in params.items()}
        self.ops = graph["ops"]
        self.shapes = {r["name"]: tuple(r["shape"]) for r in graph["inputs"]}
        self.shapes.update({k: tuple(v) for k, v in graph["shapes"].items()})
        self.spiking = "spiking" in graph["facts"]
        self._fo: dict[str, np.ndarray] | None = None  # fan-outs, computed on first use
        # integer arithmetic (passes/quantize.py); see "fixed point" above
        self.fixed = "fixed-point" in graph["facts"]
        self.input_bits = int(graph["meta"].get("fixed_point", {}).get("input_bits", 0))

    @classmethod
    def load(cls, directory: str) -> Network:
        with open(os.path.join(directory, "graph.json")) as f:
            g = json.load(f)
        with np.load(os.path.join(directory, "params.npz"), allow_pickle=False) as z:
            params = {k: z[k] for k in z.files}
        return cls(g, params)

    # ---------------------------------------------------------------- ANN mode ---------
    def run_ann(self, feeds: dict[str, np.ndarray], outputs: list[str] | None = None
                ) -> dict[str, np.ndarray]:
        env = {k: np.asarray(v, F32) for k, v in feeds.items()}
        for op in self.ops:
            kern = ANN_KERNELS.get(op["kind"])
            if kern is None:
                raise ValueError(f"op {op['name']} ({op['kind']}) is not an ANN-level op")
            env[op["out"]] = kern(op, self.P, [env[i] for i in op["inputs"]])
        return {k: env[k] for k in (outputs or self.g["outputs"])}

    def run_rates(self, x: np.ndarray, outputs: list[str]) -> dict[str, np.ndarray]:
        """The spiking graph's ANN view: every value as the rate (per step) the SNN
        approximates, e.g. an IF population's max(I, 0) / threshold (unclipped, so
        saturation shows up as error). `outputs` are value names."""
        env = {self.g["inputs"][0]["name"]: np.asarray(x, F32)}
        kernels = ANN_KERNELS
        if self.fixed:  # integer graph: the input in its scale 2^F, pools as window sums
            env = {k: v * F32(1 << self.input_bits) for k, v in env.items()}
            kernels = {**ANN_KERNELS, "avgpool": _rate_sumpool}
        for op in self.ops:
            kern = kernels.get(op["kind"], _rate_view)
            env[op["out"]] = kern(op, self.P, [env[i] for i in op["inputs"]])
        return {k: env[k] for k in outputs}

    # ---------------------------------------------------------------- SNN mode ---------
    # ---------------------------------------------------------------- fan-out --------
    def _synapses(self, op: dict, index: int) -> np.ndarray:
        """Synapses leaving each element of operand `index` of a Conv/Dense (structural:
        every kernel tap counts)."""
        shape = self.shapes[op["inputs"][index]]
        w = self.P[op["params"]["weight"]]
        if op["kind"] == "dense":
            return np.full(shape, w.shape[0], F32)
        cover = self._window_adjoint(op, shape, w.shape[2:], None)[0]
        return np.broadcast_to(cover * (w.shape[0] // op["attrs"]["groups"]), shape).copy()

    def _window_adjoint(self, op: dict, shape, kernel, down: np.ndarray | None) -> np.ndarray:
        """Sum of `down` (C', OH, OW) over every window that covers each input element;
        down=None counts the windows (one channel)."""
        a = op["attrs"]
        hw = shape[1] * shape[2]
        idx = np.arange(hw, dtype=np.float64).reshape(1, 1, *shape[1:])
        win = _windows(_pad_hw(idx, a["pads"], _op_extra(op, shape[1:], kernel), -1.0),
                       kernel, a["strides"], a.get("dilations", (1, 1)))[0, 0]
        if down is None:
            down = np.ones((1, *win.shape[:2]), F32)
        acc = np.zeros((down.shape[0], hw), np.float64)
        for i in range(win.shape[-2]):
            for j in range(win.shape[-1]):
                tap = win[..., i, j].reshape(-1)
                ok = tap >= 0
                np.add.at(acc, (slice(None), tap[ok].astype(np.int64)),
                          down.reshape(down.shape[0], -1)[:, ok])
        return acc.reshape(down.shape[0], *shape[1:]).astype(F32)

    def fanouts(self) -> dict[str, np.ndarray]:
        """Per spike source (the output of each `if`, and of a Poisson `encode`), the number
        of synapses each of its neurons drives, composed through the data-moving and
        pooling ops between it and the next synaptic op (an average pool followed by a
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
            total = np.zeros(shape, F32)
            for op, j in users.get(v, []):
                kind = op["kind"]
                if kind in ("conv", "dense"):
                    total += self._synapses(op, j)
                elif kind in ("avgpool", "spikemaxpool", "maxpool"):
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
                    if op["kind"] in SPIKE_SOURCES
                    or (op["kind"] == "encode" and op["attrs"]["coding"] == "poisson")}
        return self._fo

    def simulate(self, x: np.ndarray, timesteps: int, *, sample_offset: int = 0,
                 chunk_bytes: int = 1 << 28, record: Callable | None = None
                 ) -> dict[str, np.ndarray]:
        """Run one batch for `timesteps` steps.

        Returns, per step t = 1..T: "output" (T, B, ...) of the first graph output (the
        readout), "spikes" {op name: (T,) total spikes of the batch}, "synops" (T,) and,
        when `record(op_name, t0, chunk)` is given, it sees every neuron op's spike chunk.
        """
        if not self.spiking:
            raise ValueError("graph is not spiking; convert it first")
        b = x.shape[0]
        largest = max(math.prod(s) for s in self.shapes.values())
        tc = int(max(1, min(timesteps, chunk_bytes // max(1, b * largest * 4))))
        state: dict[str, Any] = {}
        out_name = self.g["outputs"][0]
        outputs = []
        spikes = {op["name"]: np.zeros(timesteps, np.float64) for op in self.ops
                  if op["kind"] in SPIKE_SOURCES}
        synops = np.zeros(timesteps, np.float64)
        samples = np.arange(sample_offset, sample_offset + b)
        fanout = self.fanouts()
        feeds = {r["name"]: np.asarray(x, F32) for r in self.g["inputs"][:1]}
        for t0 in range(0, timesteps, tc):
            n = min(tc, timesteps - t0)
            env: dict[str, tuple[np.ndarray, bool, bool]] = {}  # value -> (data, const, event)
            for name, arr in feeds.items():
                env[name] = (arr[None], True, False)
            for op in self.ops:
                ins = [env[i] for i in op["inputs"]]
                kind = op["kind"]
                res = self._step_op(op, ins, n, t0, b, state, samples)
                env[op["out"]] = res
                if op["out"] in fanout:
                    synops[t0:t0 + n] += (res[0].reshape(n, b, -1) @ fanout[op["out"]].reshape(-1)
                                          ).sum(axis=1, dtype=np.float64)
                if kind in SPIKE_SOURCES:
                    spikes[op["name"]][t0:t0 + n] += res[0].reshape(n, -1).sum(
                        axis=1, dtype=np.float64)
                    if record is not None:
                        record(op["name"], t0, res[0])
            data, const, _ = env[out_name]
            outputs.append(np.broadcast_to(data, (n,) + data.shape[1:]) if const else data)
        return {"output": np.concatenate(outputs, axis=0), "spikes": spikes,
                "synops": synops}

    def _step_op(self, op, ins, n, t0, b, state, samples):
        if self.fixed:
            return self._step_fixed(op, ins, n, t0, b, state, samples)
        kind = op["kind"]
        name = op["name"]
        if kind == "encode":
            data, const, _ = ins[0]
            steps = op["attrs"].get("steps", 0)
            live = n if not steps else max(0, min(n, steps - t0))  # steps with input
            poisson = op["attrs"]["coding"] == "poisson"
            if live == 0:  # (spike sources are never constant: SynOps count per step)
                return ((np.zeros((n,) + data.shape[1:], F32), False, True) if poisson else
                        (np.zeros((1,) + data.shape[1:], F32), True, False))
            if not poisson:
                if live == n:
                    return data, const, False
                out = np.zeros((n,) + data.shape[1:], F32)
                out[:live] = data[0]
                return out, False, False
            flat = np.clip(data[0].reshape(b, -1), 0, 1)
            out = np.zeros((n,) + data.shape[1:], F32)
            for i in range(live):
                u = poisson_uniform(op["attrs"]["seed"], samples, t0 + i, flat.shape[1])
                out[i] = (u < flat).reshape(data.shape[1:])
            return out, False, True
        if kind == "current":
            data, const, _ = ins[0]
            bias = self.P[op["params"]["bias"]].astype(F32)
            steps = op["attrs"]["steps"]
            live = n if not steps else max(0, min(n, steps - t0))
            if live == n:
                return (data + bias).astype(F32, copy=False), const, False
            if live == 0:
                return data, const, False
            out = np.array(np.broadcast_to(data, (n,) + data.shape[1:]), F32)
            out[:live] += bias
            return out, False, False
        if kind == "if":
            data, const, _ = ins[0]
            th = self.P[op["params"]["threshold"]].astype(F32)
            v = state.get(name)
            if v is None:
                v = np.empty(data.shape[1:], F32)
                v[...] = th * F32(op["attrs"]["v_init"])
                state[name] = v
            out = np.empty((n,) + data.shape[1:], F32)
            zero = op["attrs"]["reset"] == "zero"
            unit = th.ndim == 0 and th == 1
            tmp = None if zero or unit else np.empty_like(v)
            cap = op["attrs"].get("max_spikes", 0)
            if cap:
                count = state.setdefault(name + ".count", np.zeros(v.shape, F32))
            for i in range(n):
                np.add(v, data[0 if const else i], out=v)
                s = out[i]
                np.greater_equal(v, th, out=s, casting="unsafe")
                if cap:  # a neuron that has spent its budget stays silent
                    s *= count < cap
                    count += s
                if zero:
                    np.putmask(v, s > 0, F32(0))
                elif unit:
                    np.subtract(v, s, out=v)
                else:
                    np.multiply(s, th, out=tmp)
                    np.subtract(v, tmp, out=v)
            return out, False, True
        if kind == "spikemaxpool":
            # The gate depends only on input spike counts, so a whole chunk is one
            # vectorized step: running counts (including this step) -> per-window argmax
            # (first index on ties) -> pass that input's spike.
            data, const, event = ins[0]
            a = op["attrs"]
            if const:
                data = np.broadcast_to(data, (n,) + data.shape[1:])
            cum = np.empty(data.shape, F32)
            prev = state.get(name)
            np.add(data[0], 0 if prev is None else prev, out=cum[0])
            for i in range(1, n):
                np.add(cum[i - 1], data[i], out=cum[i])
            state[name] = cum[-1].copy()
            cview, _ = _pool_view(op, cum, -1.0, a["dilations"])
            sview, _ = _pool_view(op, data, 0.0, a["dilations"])
            return _window_winner(cview, sview, F32), False, event
        if kind == "accumulate":
            data, const, _ = ins[0]
            return _accumulate(state, name, data, const, n, F32), False, False
        if kind == "spikesoftmax":
            data, const, _ = ins[0]
            a = op["attrs"]
            if const:
                data = np.broadcast_to(data, (n,) + data.shape[1:])
            v = state.get(name)
            if v is None:
                v = np.zeros((b, math.prod(data.shape[2:])), np.float64)
            out = np.zeros((n, b, v.shape[1]), F32)
            rows = np.arange(b)
            for i in range(n):
                v += data[i].reshape(b, -1)
                u = poisson_uniform(a["seed"], samples, t0 + i, 2)
                cdf = np.cumsum(_softmax_flat(v), axis=1)
                pick = np.minimum((cdf <= u[:, 1:2]).sum(axis=1), v.shape[1] - 1)
                out[i, rows, pick] = u[:, 0] < a["rate"]
            state[name] = v
            return out.reshape((n,) + data.shape[1:]), False, True
        # Any other op acts step by step on its operands (linear ops: once if constant).
        kern = ANN_KERNELS[kind]
        if all(c for _, c, _ in ins):
            return kern(op, self.P, [d[0] for d, _, _ in ins])[None], True, False
        flat = []
        for d, c, _ in ins:
            full = np.broadcast_to(d, (n,) + d.shape[1:]) if c else d
            flat.append(full.reshape((n * b,) + d.shape[2:]))
        y = kern(op, self.P, flat)
        event = kind in SHAPE_ONLY and all(e for _, _, e in ins)
        return y.reshape((n, b) + y.shape[1:]), False, event


    def _step_fixed(self, op, ins, n, t0, b, state, samples):
        """_step_op in integer arithmetic (fact "fixed-point"): exactly what the generated
        C code computes (backends/c), so both agree spike for spike."""
        kind, name, a = op["kind"], op["name"], op["attrs"]
        i64 = np.int64
        if kind == "encode":
            data = ins[0][0]
            xq = quantize_input(data[0], self.input_bits).astype(i64)
            steps = a.get("steps", 0)
            live = n if not steps else max(0, min(n, steps - t0))
            if a["coding"] != "poisson":
                if live == n:
                    return xq[None], True, False
                out = np.zeros((n,) + xq.shape, i64)
                out[:live] = xq
                return out, False, False
            # u < x as integers: the 24-bit draw against x_q in 24 fractional bits
            lim = np.clip(xq.reshape(b, -1), 0, 1 << self.input_bits) << (24 - self.input_bits)
            out = np.zeros((n,) + xq.shape, i64)
            for i in range(live):
                u = poisson_uniform(a["seed"], samples, t0 + i, lim.shape[1])
                out[i] = ((u * F32(1 << 24)).astype(i64) < lim).reshape(xq.shape)
            return out, False, True
        if kind == "current":
            data, const, _ = ins[0]
            bias = self.P[op["params"]["bias"]].astype(i64)
            steps = a["steps"]
            live = n if not steps else max(0, min(n, steps - t0))
            if live == n:
                return _sat32(data + bias), const, False
            if live == 0:
                return data, const, False
            out = np.array(np.broadcast_to(data, (n,) + data.shape[1:]), i64)
            out[:live] = _sat32(out[:live] + bias)
            return out, False, False
        if kind == "if":
            data, const, _ = ins[0]
            th = self.P[op["params"]["threshold"]].astype(i64)
            v = state.get(name)
            if v is None:
                v = np.empty(data.shape[1:], i64)
                v[...] = fixed_v_init(th, a["v_init"])
                state[name] = v
            out = np.empty((n,) + data.shape[1:], i64)
            zero = a["reset"] == "zero"
            cap = a.get("max_spikes", 0)
            if cap:
                count = state.setdefault(name + ".count", np.zeros(v.shape, i64))
            for i in range(n):
                np.add(v, data[0 if const else i], out=v)
                np.clip(v, I32_MIN, I32_MAX, out=v)
                s = v >= th
                if cap:  # a neuron that has spent its budget stays silent
                    s &= count < cap
                    count += s
                out[i] = s
                if zero:
                    np.putmask(v, s, 0)
                else:
                    v -= s * th
            return out, False, True
        if kind == "spikemaxpool":
            data, const, event = ins[0]
            if const:
                data = np.broadcast_to(data, (n,) + data.shape[1:])
            prev = state.get(name)
            cum = np.cumsum(data, axis=0, dtype=i64) + (0 if prev is None else prev)
            state[name] = cum[-1].copy()
            cview, _ = _pool_view(op, cum, -1, a["dilations"])
            sview, _ = _pool_view(op, data.astype(i64), 0, a["dilations"])
            return _window_winner(cview, sview, i64), False, event
        if kind == "accumulate":
            data, const, _ = ins[0]
            return _accumulate(state, name, data, const, n, i64), False, False
        kern = INT_KERNELS.get(kind)
        if kern is None:
            raise ValueError(f"op {name} ({kind}) has no fixed-point semantics")
        if all(c for _, c, _ in ins):
            return kern(op, self.P, [d[0] for d, _, _ in ins])[None], True, False
        flat = []
        for d, c, _ in ins:
            full = np.broadcast_to(d, (n,) + d.shape[1:]) if c else d
            flat.append(full.reshape((n * b,) + d.shape[2:]))
        y = kern(op, self.P, flat)
        event = kind in SHAPE_ONLY and all(e for _, _, e in ins)
        return y.reshape((n, b) + y.shape[1:]), False, event


# ------------------------------------------------------------------ evaluation -----------
def batches(x: np.ndarray, y: np.ndarray | None, batch: int) -> Iterator[tuple[int, Any, Any]]:
    """The one iterator evaluation takes data through: (offset, x batch, y batch)."""
    for i in range(0, len(x), batch):
        yield i, x[i:i + batch], (None if y is None else y[i:i + batch])


def evaluate(net: Network, x: np.ndarray, y: np.ndarray, timesteps: list[int],
             batch: int = 100, progress: Callable | None = None,
             observer: Any = None) -> dict[str, Any]:
    """Accuracy, spikes and SynOps per sample at every step up to max(timesteps).
    observer (optional): `observer.begin(net, offset, x_batch)` before each batch, and
    `observer.record` is passed to simulate() (it sees every spike chunk)."""
    tmax = max(timesteps)
    correct = np.zeros(tmax, np.int64)
    spikes: dict[str, np.ndarray] = {}
    synops = np.zeros(tmax)
    for off, xb, yb in batches(x, y, batch):
        if observer is not None:
            observer.begin(net, off, xb)
        tr = net.simulate(xb, tmax, sample_offset=off,
                          record=None if observer is None else observer.record)
        pred = tr["output"].reshape(tmax, len(xb), -1).argmax(axis=-1)
        correct += (pred == yb[None, :]).sum(axis=1)
        for k, v in tr["spikes"].items():
            spikes[k] = spikes.get(k, 0) + v
        synops += tr["synops"]
        if progress:
            progress(len(xb))
    n = len(x)
    total_spikes = sum(spikes.values()) if spikes else np.zeros(tmax)
    return {
        "accuracy_per_step": (correct / n).tolist(),
        "spikes_per_step": (np.asarray(total_spikes) / n).tolist(),
        "synops_per_step": (synops / n).tolist(),
        "layer_spikes": {k: (v / n).tolist() for k, v in spikes.items()},
        "snn": [{"timesteps": t, "accuracy": float(correct[t - 1] / n),
                 "spikes_per_sample": float(np.sum(total_spikes[:t]) / n),
                 "synops_per_sample": float(synops[:t].sum() / n)} for t in timesteps],
    }


def _main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="Run an snnc-compiled SNN with numpy alone.")
    ap.add_argument("out", help="the snnc output directory")
    ap.add_argument("--data", required=True, help=".npz with x (N, ...) and y (N,)")
    ap.add_argument("--timesteps", default="8,16,32,64,128")
    args = ap.parse_args(argv)
    net = Network.load(args.out)
    with np.load(args.data) as z:
        x, y = z["x"].astype(F32), z["y"].astype(np.int64)
    res = evaluate(net, x, y, [int(t) for t in args.timesteps.split(",")])
    for row in res["snn"]:
        print(f"T={row['timesteps']:5d} accuracy={row['accuracy']:.4f} "
              f"spikes/sample={row['spikes_per_sample']:.1f} "
              f"synops/sample={row['synops_per_sample']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
