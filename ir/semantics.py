"""The numeric rules of the IR that every part of snnc must agree on, in one place.

The simulator (backends/sim), the passes (quantize, normalize ...) and the C backend
(backends/c) all import this module instead of each other, so that a window, a divisor or
a rounding rule cannot drift between them:

  * window arithmetic of convolutions and pools: output sizes, ceil_mode end padding,
    padding, strided window views, average-pool divisors;
  * which op kinds emit, pass on or only move spikes (binary 0/1 values);
  * the fixed-point formats: the int16 input, int32 saturation, the initial membrane;
  * the counter-based random numbers of Poisson input and the spiking softmax (a pure
    integer hash, reproduced by the generated C);
  * which attributes of each op kind the fixed-point lowering, the integer simulator and
    the C backend implement (HANDLED_ATTRS).

It depends on numpy alone and imports nothing of snnc: the simulator is copied into every
OUT/ directory as a standalone script, and this module is copied beside it
(`snn_semantics.py`), so both run wherever numpy does. Functions take plain values
(ints, tuples, arrays) and an attribute mapping where an op is needed, so they serve the
in-memory ops (dataclasses) and the on-disk form (dicts) alike.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# ------------------------------------------------------------------ windows --------------


def spatial_out(size: int, k: int, stride: int, pad_b: int, pad_e: int, dil: int,
                ceil_mode: bool) -> int:
    """Output size of a window op along one axis (ONNX / PyTorch rule)."""
    span = size + pad_b + pad_e - dil * (k - 1) - 1
    if ceil_mode:
        out = -(-span // stride) + 1
        # the last window must start inside the input or the begin pad
        if (out - 1) * stride >= size + pad_b:
            out -= 1
    else:
        out = span // stride + 1
    return out


def ceil_extra(size: int, k: int, s: int, pb: int, pe: int, d: int, ceil_mode: bool) -> int:
    """Extra end padding that ceil_mode needs so that every output window exists."""
    if not ceil_mode:
        return 0
    out = spatial_out(size, k, s, pb, pe, d, True)
    need = (out - 1) * s + d * (k - 1) + 1
    return max(0, need - (size + pb + pe))


def window_extra(attrs: Mapping[str, Any], hw: Sequence[int], kernel: Sequence[int]
                 ) -> tuple[int, int]:
    """The ceil_mode end padding (bottom, right) of a windowed op (conv or pool) with
    attributes `attrs` (strides, pads, optional dilations / ceil_mode) on spatial size hw."""
    d = attrs.get("dilations", (1, 1))
    s, p = attrs["strides"], attrs["pads"]
    cm = bool(attrs.get("ceil_mode", False))
    return (ceil_extra(hw[0], kernel[0], s[0], p[0], p[2], d[0], cm),
            ceil_extra(hw[1], kernel[1], s[1], p[1], p[3], d[1], cm))


def pad_hw(x: np.ndarray, pads: Sequence[int], extra: Sequence[int] = (0, 0),
           value: float = 0.0) -> np.ndarray:
    """x (..., H, W) padded by pads (top, left, bottom, right) plus `extra` at the end."""
    t, left, b, r = pads
    if not (t or left or b or r or extra[0] or extra[1]):
        return x
    width = [(0, 0)] * (x.ndim - 2) + [(t, b + extra[0]), (left, r + extra[1])]
    return np.pad(x, width, constant_values=value)


def windows(x: np.ndarray, k: Sequence[int], s: Sequence[int], d: Sequence[int]
            ) -> np.ndarray:
    """View (..., OH, OW, kh, kw) of a padded (..., H, W) array (no copy)."""
    kh, kw = k
    eh, ew = d[0] * (kh - 1) + 1, d[1] * (kw - 1) + 1
    v = np.lib.stride_tricks.sliding_window_view(x, (eh, ew), axis=(-2, -1))
    return v[..., :: s[0], :: s[1], :: d[0], :: d[1]]


def pool_windows(attrs: Mapping[str, Any], x: np.ndarray, value: float) -> np.ndarray:
    """Window view (..., OH, OW, kh, kw) of a pool's input x (..., H, W), padded with
    `value` (explicit pads and the ceil_mode end padding)."""
    k = attrs["kernel"]
    extra = window_extra(attrs, x.shape[-2:], k)
    return windows(pad_hw(x, attrs["pads"], extra, value), k, attrs["strides"],
                   attrs.get("dilations", (1, 1)))


def avgpool_counts(attrs: Mapping[str, Any], hw: Sequence[int]) -> np.ndarray:
    """The divisor of every output position (OH, OW) of an average pool (int64): the real
    inputs under the window, plus the explicit pads when count_include_pad; never the
    extra end padding that ceil_mode adds (ONNX / PyTorch semantics)."""
    extra = window_extra(attrs, hw, attrs["kernel"])
    ones = np.ones(tuple(hw), np.float64)
    if attrs.get("count_include_pad", False):
        ones = pad_hw(ones, attrs["pads"], (0, 0), 1.0)
        cnt = windows(pad_hw(ones, (0, 0, 0, 0), extra, 0.0), attrs["kernel"],
                      attrs["strides"], (1, 1))
    else:
        cnt = windows(pad_hw(ones, attrs["pads"], extra, 0.0), attrs["kernel"],
                      attrs["strides"], (1, 1))
    return cnt.sum(axis=(-2, -1)).astype(np.int64)


def window_is_tiling(attrs: Mapping[str, Any], hw: Sequence[int],
                     kernel: Sequence[int]) -> bool:
    """True when the windows tile the input exactly (stride = kernel, no padding, no
    dilation, sizes divisible): each input element lies in exactly one window."""
    return (tuple(attrs["strides"]) == tuple(kernel) and not any(attrs["pads"])
            and tuple(attrs.get("dilations", (1, 1))) == (1, 1)
            and hw[0] % kernel[0] == 0 and hw[1] % kernel[1] == 0)


# ------------------------------------------------------------------ spikes ---------------
#: op kinds whose output spikes are counted (per layer, and as SynOps at their fan-out);
#: a Poisson `encode` is a spike source too (see emits_spikes)
SPIKE_SOURCES = ("if", "spikesoftmax", "ttfsencode", "ttfsneuron")
#: op kinds that only move data: what enters as spikes leaves as spikes
MOVES_DATA = ("flatten", "reshape", "pad", "concat")


def emits_spikes(kind: str, attrs: Mapping[str, Any]) -> bool:
    """The op's output is binary spikes whatever its input (a signed neuron's is not:
    -1/0/+1)."""
    return ((kind in SPIKE_SOURCES and not attrs.get("signed"))
            or kind in ("spikemaxpool", "ttfsmaxpool")
            or (kind == "encode" and attrs.get("coding") == "poisson"))


def is_spike_source(kind: str, attrs: Mapping[str, Any]) -> bool:
    """The op creates spikes (counted, and the start of SynOps at their fan-out)."""
    return kind in SPIKE_SOURCES or (kind == "encode" and attrs.get("coding") == "poisson")


def carries_spikes(kind: str, attrs: Mapping[str, Any], operands: Sequence[bool]) -> bool:
    """The op's output is binary spikes at every step, given which operands are."""
    return emits_spikes(kind, attrs) or (kind in MOVES_DATA and all(operands))


# ------------------------------------------------------------------ temporal coding ------
# Time-to-first-spike coding (TDSNN, METHODS 9): a value a >= 0 is a spike k steps after
# its layer's reference step, k = T(a) = ceil(L ln(a + 1)) (reverse coding: larger is
# later); what the next layer reads from it is G(a) = exp(k / L), about a + 1.


def ttfs_time(a: np.ndarray | float, leak: float, shift: float = 0.0) -> np.ndarray:
    """T(a) = ceil(L ln(max(a, 0) + 1) - shift) as int64 steps (never below 0): shift 0 is
    the paper's ceil, 0.5 rounds to the nearest step (see TTFSNeuron)."""
    a = np.maximum(np.asarray(a, np.float64), 0.0)
    return np.maximum(np.ceil(leak * np.log1p(a) - shift), 0).astype(np.int64)


def ttfs_g(a: np.ndarray | float, leak: float, shift: float = 0.0) -> np.ndarray:
    """G(a) = exp(T(a) / L): the value a spike at T(a) carries."""
    return np.exp(ttfs_time(a, leak, shift) / leak)


def ttfs_gate(x: np.ndarray, leak: float) -> np.ndarray:
    """G(x) as the retrained ANN's ONNX chain computes it, in float32 and its order:
    exp(ceil(ln(max(x, 0) + 1) * L) / L)."""
    f = np.float32
    y = np.log(np.maximum(np.asarray(x, f), f(0)) + f(1)) * f(leak)
    return np.exp(np.ceil(y) / f(leak)).astype(f)


def ttfs_tick(leak: float, span: int) -> float:
    """The ticking neuron's weight w_tick = (1 - exp(-1/L)) exp(-span/L) for a layer whose
    inhibition ends `span` steps after its inputs' reference step (TDSNN eq. 9)."""
    return (1.0 - math.exp(-1.0 / leak)) * math.exp(-span / leak)


def ttfs_threshold(leak: float, span: int, shift: float) -> float:
    """The firing threshold that makes a fire-once neuron spike at ceil(L ln(A + 1) -
    shift) steps after release: theta = (1 - exp(shift / L)) exp(-span / L) (0 for the
    paper's shift 0). From TDSNN eq. 6: the neuron spikes at ceil(L ln((A + 1) / (1 -
    theta exp(span / L)))), and 1 - theta exp(span / L) = exp(shift / L)."""
    return (1.0 - math.exp(shift / leak)) * math.exp(-span / leak)


# ------------------------------------------------------------------ fixed point ----------
I32_MIN, I32_MAX = -(2 ** 31), 2 ** 31 - 1


def quantize_input(x: np.ndarray, frac_bits: int) -> np.ndarray:
    """The fixed-point input: floor(x * 2^F + 1/2) saturated to int16 (what the generated
    C program receives)."""
    q = np.floor(np.asarray(x, np.float64) * (1 << frac_bits) + 0.5)
    return np.clip(q, -32768, 32767).astype(np.int16)


def fixed_v_init(threshold_q: np.ndarray, v_init: float) -> np.ndarray:
    """Initial membrane of a fixed-point IF population: (theta_q * round(v_init * 2^16))
    >> 16 (floor), integers only."""
    vi = int(math.floor(v_init * 65536 + 0.5))
    return (np.asarray(threshold_q, np.int64) * vi) >> 16


def sat32(a: np.ndarray) -> np.ndarray:
    """Saturate to int32 (values stay int64 arrays)."""
    return np.clip(a, I32_MIN, I32_MAX)


# ------------------------------------------------------------------ counter-based RNG -----
def mix32(x: np.ndarray) -> np.ndarray:
    """lowbias32 integer hash (uint32 -> uint32); reproducible in any language."""
    x = np.asarray(x).astype(np.uint32, copy=True)
    with np.errstate(over="ignore"):
        x ^= x >> np.uint32(16)
        x *= np.uint32(0x7FEB352D)
        x ^= x >> np.uint32(15)
        x *= np.uint32(0x846CA68B)
        x ^= x >> np.uint32(16)
    return x


def poisson_uniform(seed: int, sample: np.ndarray, t: int, n: int) -> np.ndarray:
    """Uniform [0, 1) float32 draws for (samples, n neurons) at step t: a pure function of
    (seed, global sample index, t, neuron index), so independent of batching."""
    with np.errstate(over="ignore"):
        h = mix32(np.arange(n, dtype=np.uint32)[None, :]
                  ^ mix32(np.uint32(t) ^ mix32(np.asarray(sample).astype(np.uint32)[:, None]
                                               ^ np.uint32(seed & 0xFFFFFFFF))))
    return (h >> np.uint32(8)).astype(np.float32) * np.float32(1.0 / (1 << 24))


def poisson_draw_int(u: np.ndarray) -> np.ndarray:
    """The 24-bit integer behind a poisson_uniform draw (fixed point compares it)."""
    return (u * np.float32(1 << 24)).astype(np.int64)


# ------------------------------------------------------------------ handled attributes ---
#: the attributes whose meaning the fixed-point lowering, the integer simulator and the C
#: backend implement, per op kind; an op with any other attribute set to a non-default
#: value is refused (a new IR feature must not be silently ignored)
HANDLED_ATTRS: dict[str, frozenset[str]] = {k: frozenset(v) for k, v in {
    # current.compensation, if.bounded, if.shift: informational (only the rate view of the
    # diagnostics reads them), nothing to implement
    "encode": ("coding", "seed", "steps"), "current": ("steps", "compensation"),
    "if": ("reset", "v_init", "bounded", "shift", "max_spikes"),
    "spikemaxpool": ("kernel", "strides", "pads", "dilations", "ceil_mode"),
    "accumulate": (), "conv": ("strides", "pads", "dilations", "groups"), "dense": (),
    "affine": (), "avgpool": ("kernel", "strides", "pads", "count_include_pad", "ceil_mode"),
    "add": (), "concat": ("axis",), "flatten": (), "reshape": ("shape",), "pad": ("pads",),
}.items()}


#: attributes decided against outside the simulator: the fixed-point lowering, the C
#: backend and the NIR export refuse a non-default value with this reason (the simulator
#: runs them); every attribute of a kind is in HANDLED_ATTRS or here
SIMULATOR_ONLY_ATTRS: dict[str, dict[str, str]] = {
    "if": {"signed": "signed neurons (-1 spikes) run in the simulator only"},
}


def check_attrs(op: Any, what: str, hint: str) -> None:
    """Refuse (op.error) an op that sets an attribute `what` does not implement."""
    for name, value in unhandled_attrs(op):
        why = SIMULATOR_ONLY_ATTRS.get(op.kind, {}).get(name)
        raise op.error(f"{what} does not implement attribute {name}={value!r}"
                       + (f": {why}" if why else ""), hint=hint)


def unhandled_attrs(op: Any) -> list[tuple[str, Any]]:
    """The (name, value) of every attribute of a dataclass op that HANDLED_ATTRS does not
    list for its kind and that is set to something other than its default."""
    from dataclasses import MISSING, fields

    handled = HANDLED_ATTRS.get(op.kind, frozenset())
    out = []
    for f in fields(op):
        if f.metadata.get("role") != "attr" or f.name in handled:
            continue
        if f.default is MISSING or getattr(op, f.name) != f.default:
            out.append((f.name, getattr(op, f.name)))
    return out
