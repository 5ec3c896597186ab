"""Op kinds of the IR: one frozen dataclass per kind.

Every field declares its role in `metadata["role"]`:
  - "operand":  the name of one input value
  - "operands": a tuple of input value names
  - "param":    the name of an array in `Graph.params` (or None when optional)
  - "attr":     a plain attribute (int, float, str, bool, tuple of ints, or None)
so the printer, parser, verifier, serializer and rewriter are generic. Each op has exactly one
output value, `out`, and remembers its ONNX origin (node name) for error messages.

Shapes are per sample: the batch dimension is implicit and always leading at run time.
Spatial ops use the per-sample layout (C, H, W).

Adding an op kind means: a dataclass here, an importer (compiler/frontend.py), an entry in
the simulator's kernel table (backends/sim/runtime.py KERNELS), a C template or a stated
reason why there is none (backends/c) and a golden test; tests/test_registry.py fails until
all exist. Numeric rules shared by several parts (windows, divisors, fixed-point formats,
which attributes each kind handles) live in ir/semantics.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np
from snnc.ir.errors import SnncError
from snnc.ir.semantics import spatial_out

Shape = tuple[int, ...]


def operand() -> Any:
    return field(metadata={"role": "operand"})


def operands() -> Any:
    return field(metadata={"role": "operands"})


def param(default: Any = None) -> Any:
    return field(default=default, metadata={"role": "param"})


def attr(default: Any = None) -> Any:
    return field(default=default, metadata={"role": "attr"})


@dataclass(frozen=True)
class Op:
    """Base class. `kind` is the op's name in the text and disk forms."""

    name: str
    out: str
    origin: str = field(default="", kw_only=True, metadata={"role": "meta"})

    kind: ClassVar[str] = ""
    #: a spiking op (exists only after convert-to-snn)
    spiking: ClassVar[bool] = False
    #: linear in its operands (so it can carry a normalization scale through)
    linear: ClassVar[bool] = False
    #: has a weight matrix whose output scale normalization can choose freely
    synaptic: ClassVar[bool] = False

    # ---- generic field access -------------------------------------------------------
    @classmethod
    def fields_by_role(cls, role: str) -> list[str]:
        return [f.name for f in fields(cls) if f.metadata.get("role") == role]

    def inputs(self) -> list[str]:
        names: list[str] = []
        for f in fields(self):
            role = f.metadata.get("role")
            if role == "operand":
                names.append(getattr(self, f.name))
            elif role == "operands":
                names.extend(getattr(self, f.name))
        return names

    def param_names(self) -> list[str]:
        return [p for p in (getattr(self, n) for n in self.fields_by_role("param")) if p]

    def where(self) -> str:
        """The node to name in an error message: the ONNX origin if known."""
        return self.origin or self.name

    def error(self, message: str, hint: str | None = None) -> SnncError:
        return SnncError(f"{self.kind}: {message}", node=self.where(), hint=hint)

    def infer_shape(self, shapes: list[Shape], params: dict[str, Any]) -> Shape:
        """Output shape from input shapes; raises SnncError when they do not fit."""
        raise NotImplementedError


class _Windowed:
    """Shared shape rule of Conv and the pooling ops (2-D, layout C,H,W)."""

    def _window_shape(self, op: Op, shape: Shape, kernel: tuple[int, int], strides: tuple,
                      pads: tuple, dilations: tuple, ceil_mode: bool) -> tuple[int, int]:
        if len(shape) != 3:
            raise op.error(f"expects a (C, H, W) input per sample, got shape {list(shape)}")
        for what, vals, low in (("kernel", kernel, 1), ("strides", strides, 1),
                                ("dilations", dilations, 1), ("pads", pads, 0)):
            if (len(vals) != (4 if what == "pads" else 2)
                    or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                               and low <= v < 2**31 for v in vals)):
                raise op.error(f"{what} {list(vals)}: expected "
                               f"{4 if what == 'pads' else 2} integers >= {low}",
                               hint="re-export the model; a zero or negative "
                                    f"{what[:-1] if what != 'pads' else 'pad'} is invalid")
        outs = []
        for i in range(2):
            o = spatial_out(shape[1 + i], kernel[i], strides[i], pads[i], pads[2 + i],
                             dilations[i], ceil_mode)
            if o <= 0:
                raise op.error(f"window {list(kernel)} does not fit input {list(shape)}")
            outs.append(o)
        return outs[0], outs[1]

    def pool_window(self) -> dict[str, Any]:
        """A pooling op's window attributes, to build another pool over the same windows
        (a max-pool lowered to a spiking or a temporal one)."""
        return {k: getattr(self, k) for k in ("kernel", "strides", "pads", "dilations",
                                              "ceil_mode")}


# ================================ ANN-level ops ===========================================
@dataclass(frozen=True)
class Conv(Op, _Windowed):
    """2-D convolution. weight (O, C/groups, kh, kw); pads (top, left, bottom, right)."""

    x: str = operand()
    weight: str = param()
    bias: str | None = param()
    strides: tuple[int, int] = attr((1, 1))
    pads: tuple[int, int, int, int] = attr((0, 0, 0, 0))
    dilations: tuple[int, int] = attr((1, 1))
    groups: int = attr(1)
    kind: ClassVar[str] = "conv"
    linear: ClassVar[bool] = True
    synaptic: ClassVar[bool] = True

    def infer_shape(self, shapes, params):
        w = params[self.weight]
        if w.ndim != 4:
            raise self.error(f"weight must be 4-D (O, C/groups, kh, kw), got {list(w.shape)}")
        if not isinstance(self.groups, int) or self.groups < 1:
            raise self.error(f"groups must be an integer >= 1, got {self.groups!r}")
        c = shapes[0][0] if shapes[0] else 0
        if c != w.shape[1] * self.groups or w.shape[0] % self.groups:
            raise self.error(f"input has {c} channels but weight {list(w.shape)} with "
                             f"groups={self.groups} expects {w.shape[1] * self.groups}")
        if self.bias is not None and params[self.bias].shape != (w.shape[0],):
            raise self.error(f"bias shape {list(params[self.bias].shape)} != [{w.shape[0]}]")
        h, wd = self._window_shape(self, shapes[0], w.shape[2:], self.strides, self.pads,
                                   self.dilations, False)
        return (int(w.shape[0]), h, wd)


@dataclass(frozen=True)
class Dense(Op):
    """y = x @ weight.T + bias over the last axis. weight (out, in)."""

    x: str = operand()
    weight: str = param()
    bias: str | None = param()
    kind: ClassVar[str] = "dense"
    linear: ClassVar[bool] = True
    synaptic: ClassVar[bool] = True

    def infer_shape(self, shapes, params):
        w = params[self.weight]
        if w.ndim != 2 or not shapes[0] or shapes[0][-1] != w.shape[1]:
            raise self.error(f"input {list(shapes[0])} does not match weight {list(w.shape)}")
        if self.bias is not None and params[self.bias].shape != (w.shape[0],):
            raise self.error(f"bias shape {list(params[self.bias].shape)} != [{w.shape[0]}]")
        return (*shapes[0][:-1], int(w.shape[0]))


@dataclass(frozen=True)
class BatchNorm(Op):
    """Inference batch norm over channel axis 0 (per sample)."""

    x: str = operand()
    scale: str = param()
    bias: str = param()
    mean: str = param()
    var: str = param()
    epsilon: float = attr(1e-5)
    kind: ClassVar[str] = "batchnorm"
    linear: ClassVar[bool] = True

    def infer_shape(self, shapes, params):
        c = shapes[0][0] if shapes[0] else 0
        for p in (self.scale, self.bias, self.mean, self.var):
            if params[p].shape != (c,):
                raise self.error(f"parameter {p} has shape {list(params[p].shape)}, "
                                 f"expected [{c}]")
        return shapes[0]


@dataclass(frozen=True)
class Affine(Op):
    """y = x * scale + shift, both constant and broadcast against the per-sample shape."""

    x: str = operand()
    scale: str | None = param()
    shift: str | None = param()
    kind: ClassVar[str] = "affine"
    linear: ClassVar[bool] = True

    def infer_shape(self, shapes, params):
        for p in self.param_names():
            a = params[p]
            if a.ndim > len(shapes[0]):
                raise self.error(f"constant {p} {list(a.shape)} has more axes than the "
                                 f"per-sample input {list(shapes[0])}")
            try:
                out = tuple(int(d) for d in
                            _broadcast(shapes[0], a.shape))
            except ValueError:
                raise self.error(f"constant {p} {list(a.shape)} does not broadcast to "
                                 f"{list(shapes[0])}") from None
            if out != tuple(shapes[0]):
                raise self.error(f"constant {p} {list(a.shape)} would change the shape "
                                 f"{list(shapes[0])}")
        return shapes[0]


def _broadcast(a: Shape, b: Shape) -> Shape:
    import numpy as np

    return tuple(np.broadcast_shapes(tuple(a), tuple(b)))


@dataclass(frozen=True)
class Relu(Op):
    x: str = operand()
    kind: ClassVar[str] = "relu"

    def infer_shape(self, shapes, params):
        return shapes[0]


@dataclass(frozen=True)
class Clip(Op):
    """y = min(max(x, lo), hi); None means unbounded on that side."""

    x: str = operand()
    lo: float | None = attr()
    hi: float | None = attr()
    kind: ClassVar[str] = "clip"

    def infer_shape(self, shapes, params):
        return shapes[0]


@dataclass(frozen=True)
class MaxPool(Op, _Windowed):
    x: str = operand()
    kernel: tuple[int, int] = attr((2, 2))
    strides: tuple[int, int] = attr((1, 1))
    pads: tuple[int, int, int, int] = attr((0, 0, 0, 0))
    dilations: tuple[int, int] = attr((1, 1))
    ceil_mode: bool = attr(False)
    kind: ClassVar[str] = "maxpool"

    def infer_shape(self, shapes, params):
        h, w = self._window_shape(self, shapes[0], self.kernel, self.strides, self.pads,
                                  self.dilations, self.ceil_mode)
        return (shapes[0][0], h, w)


@dataclass(frozen=True)
class AvgPool(Op, _Windowed):
    x: str = operand()
    kernel: tuple[int, int] = attr((2, 2))
    strides: tuple[int, int] = attr((1, 1))
    pads: tuple[int, int, int, int] = attr((0, 0, 0, 0))
    count_include_pad: bool = attr(False)
    ceil_mode: bool = attr(False)
    kind: ClassVar[str] = "avgpool"
    linear: ClassVar[bool] = True

    def infer_shape(self, shapes, params):
        h, w = self._window_shape(self, shapes[0], self.kernel, self.strides, self.pads,
                                  (1, 1), self.ceil_mode)
        return (shapes[0][0], h, w)


@dataclass(frozen=True)
class Add(Op):
    """Elementwise sum of two or more values of the same shape (residual joins)."""

    xs: tuple[str, ...] = operands()
    kind: ClassVar[str] = "add"
    linear: ClassVar[bool] = True

    def infer_shape(self, shapes, params):
        if len(shapes) < 2:
            raise self.error("needs at least two operands")
        if any(s != shapes[0] for s in shapes):
            raise self.error(f"operand shapes differ: {[list(s) for s in shapes]}",
                             hint="snnc joins branches of equal shape only")
        return shapes[0]


@dataclass(frozen=True)
class Concat(Op):
    xs: tuple[str, ...] = operands()
    axis: int = attr(0)
    kind: ClassVar[str] = "concat"
    linear: ClassVar[bool] = True

    def infer_shape(self, shapes, params):
        r = len(shapes[0])
        if not 0 <= self.axis < r:
            raise self.error(f"axis {self.axis} out of range for per-sample rank {r}")
        for s in shapes:
            if len(s) != r or any(s[i] != shapes[0][i] for i in range(r) if i != self.axis):
                raise self.error(f"operand shapes {[list(s) for s in shapes]} do not concat "
                                 f"on axis {self.axis}")
        out = list(shapes[0])
        out[self.axis] = sum(s[self.axis] for s in shapes)
        return tuple(out)


@dataclass(frozen=True)
class Flatten(Op):
    x: str = operand()
    kind: ClassVar[str] = "flatten"
    linear: ClassVar[bool] = True

    def infer_shape(self, shapes, params):
        return (math.prod(shapes[0]),)


@dataclass(frozen=True)
class Reshape(Op):
    x: str = operand()
    shape: tuple[int, ...] = attr(())
    kind: ClassVar[str] = "reshape"
    linear: ClassVar[bool] = True

    def infer_shape(self, shapes, params):
        if math.prod(self.shape) != math.prod(shapes[0]) or any(d <= 0 for d in self.shape):
            raise self.error(f"cannot reshape {list(shapes[0])} to {list(self.shape)}")
        return tuple(self.shape)


@dataclass(frozen=True)
class Pad(Op):
    """Zero padding; pads = (begin per axis..., end per axis...) over the per-sample axes."""

    x: str = operand()
    pads: tuple[int, ...] = attr(())
    kind: ClassVar[str] = "pad"
    linear: ClassVar[bool] = True

    def infer_shape(self, shapes, params):
        r = len(shapes[0])
        if len(self.pads) != 2 * r or any(p < 0 for p in self.pads):
            raise self.error(f"pads {list(self.pads)} do not fit rank {r} (non-negative only)")
        return tuple(d + self.pads[i] + self.pads[r + i] for i, d in enumerate(shapes[0]))


@dataclass(frozen=True)
class Softmax(Op):
    """Softmax over the per-sample axes [axis:], flattened (ONNX opset < 13 semantics;
    the importer maps opset >= 13 onto it)."""

    x: str = operand()
    axis: int = attr(0)
    kind: ClassVar[str] = "softmax"

    def infer_shape(self, shapes, params):
        if not -len(shapes[0]) <= self.axis < max(1, len(shapes[0])):
            raise self.error(f"axis {self.axis} out of range for shape {list(shapes[0])}")
        return shapes[0]


# ================================== spiking ops ===========================================
@dataclass(frozen=True)
class Encode(Op):
    """Input encoding. analog: x is a constant input current every step (METHODS 1).
    poisson: a spike with probability clip(x, 0, 1) each step, from a seeded generator.
    steps: the input is presented for the first `steps` steps only, nothing after (finite
    input time, METHODS 6); 0 = for ever."""

    x: str = operand()
    coding: str = attr("analog")
    seed: int = attr(0)
    steps: int = attr(0)
    kind: ClassVar[str] = "encode"
    spiking: ClassVar[bool] = True

    def infer_shape(self, shapes, params):
        if self.coding not in ("analog", "poisson"):
            raise self.error(f"unknown input coding '{self.coding}'")
        if self.steps < 0:
            raise self.error(f"steps must be >= 0, got {self.steps}")
        return shapes[0]


@dataclass(frozen=True)
class Current(Op):
    """A constant input current (a bias) added to x during the first `steps` steps only
    (finite input time, METHODS 6); 0 = every step. bias broadcasts against the
    per-sample shape."""

    x: str = operand()
    bias: str = param()
    steps: int = attr(0)
    #: a correction the SNN needs that is not part of the ANN's function (bias
    #: calibration); the rate view (what the SNN approximates) leaves it out
    compensation: bool = attr(False)
    kind: ClassVar[str] = "current"
    spiking: ClassVar[bool] = True

    def infer_shape(self, shapes, params):
        b = params[self.bias]
        try:
            out = _broadcast(shapes[0], b.shape)
        except ValueError:
            out = None
        if out != tuple(shapes[0]) or b.ndim > len(shapes[0]):
            raise self.error(f"bias {list(b.shape)} does not broadcast to {list(shapes[0])}")
        if self.steps < 0:
            raise self.error(f"steps must be >= 0, got {self.steps}")
        return shapes[0]


@dataclass(frozen=True)
class IFNeuron(Op):
    """Rate-coded integrate-and-fire population (METHODS 1).

    V += I; spike where V >= threshold (at most one spike per step); then reset by
    subtraction (V -= threshold) or to zero. threshold broadcasts against the per-sample
    shape (per layer: scalar; per channel: (C, 1, 1)). v_init is the initial membrane as a
    fraction of the threshold.
    """

    x: str = operand()
    threshold: str = param()
    reset: str = attr("subtract")
    v_init: float = attr(0.0)
    #: the ANN activation it replaces is itself clipped where the neuron saturates (a
    #: Clip(0, hi) layer with lambda = hi), so saturation there is exact, not a loss
    bounded: bool = attr(False)
    #: the part of the input current added by shift-bias (Deng & Gu), not the ANN's own;
    #: informational (the rate the population approximates is max(I - shift, 0) / theta)
    shift: float = attr(0.0)
    #: at most this many spikes per neuron over the whole run (0 = no limit). finite-input
    #: sets it to T1 on bounded neurons: the ANN clips them at one spike per input step,
    #: and without the cap the drain steps would release charge above the clip
    max_spikes: int = attr(0)
    #: signed spikes (Wang et al., IJCAI 2022, "signed neuron with memory"): besides a
    #: +1 spike where V >= threshold (then V -= threshold), a -1 spike where V < 0 while
    #: the neuron's net count (positive minus negative spikes) is positive (then
    #: V += threshold). The net count stays floor(max(V0 + sum I, 0) / threshold) (up to
    #: one spike per step): a spike fired on an early transient is taken back when later
    #: input cancels it, the over-firing that residual joins cause at short T. Outputs are
    #: -1/0/+1, so synapses fed by it are not binary; reset must be subtract
    signed: bool = attr(False)
    kind: ClassVar[str] = "if"
    spiking: ClassVar[bool] = True

    def infer_shape(self, shapes, params):
        if self.reset not in ("subtract", "zero"):
            raise self.error(f"unknown reset mode '{self.reset}'")
        th = params[self.threshold]
        try:
            out = _broadcast(shapes[0], th.shape)
        except ValueError:
            out = None
        if out != tuple(shapes[0]) or th.ndim > len(shapes[0]):
            raise self.error(f"threshold {list(th.shape)} does not broadcast to "
                             f"{list(shapes[0])}")
        if (th <= 0).any():
            raise self.error("thresholds must be positive")
        if self.max_spikes < 0:
            raise self.error(f"max_spikes must be >= 0, got {self.max_spikes}")
        if self.signed and (self.reset != "subtract" or self.max_spikes):
            raise self.error("signed neurons reset by subtraction and have no spike cap")
        return shapes[0]


@dataclass(frozen=True)
class SpikeMaxPool(Op, _Windowed):
    """Spiking max-pool (Rueckauer, METHODS 7): each window passes only the spikes of the
    input with the highest running spike count so far (ties: the first in the window)."""

    x: str = operand()
    kernel: tuple[int, int] = attr((2, 2))
    strides: tuple[int, int] = attr((1, 1))
    pads: tuple[int, int, int, int] = attr((0, 0, 0, 0))
    dilations: tuple[int, int] = attr((1, 1))
    ceil_mode: bool = attr(False)
    kind: ClassVar[str] = "spikemaxpool"
    spiking: ClassVar[bool] = True

    def infer_shape(self, shapes, params):
        h, w = self._window_shape(self, shapes[0], self.kernel, self.strides, self.pads,
                                  self.dilations, self.ceil_mode)
        return (shapes[0][0], h, w)


@dataclass(frozen=True)
class Accumulate(Op):
    """Readout: the running sum of its input over time steps. On the last layer's input
    current this is a non-spiking integrator (membrane readout); on spikes it counts them."""

    x: str = operand()
    kind: ClassVar[str] = "accumulate"
    spiking: ClassVar[bool] = True

    def infer_shape(self, shapes, params):
        return shapes[0]


@dataclass(frozen=True)
class SpikingSoftmax(Op):
    """Rueckauer's spiking softmax (METHODS 7, after Nessler et al. 2009): the neurons
    only integrate their input, V(t) = sum of x up to t. An external Poisson clock fires
    with probability `rate` per step; when it fires, exactly one neuron of the sample
    spikes, drawn from softmax(V(t)) over the flattened per-sample value.
    Decision: the draw uses the accumulated potential itself (as the paper states), so
    the distribution sharpens as evidence accumulates. Draws come from the same
    counter-based generator as Poisson input (a function of seed, sample, step)."""

    x: str = operand()
    rate: float = attr(1.0)
    seed: int = attr(0)
    kind: ClassVar[str] = "spikesoftmax"
    spiking: ClassVar[bool] = True

    def infer_shape(self, shapes, params):
        if not 0.0 < self.rate <= 1.0:
            raise self.error(f"clock rate must be in (0, 1], got {self.rate}")
        return shapes[0]


# ================================== temporal coding (TDSNN, METHODS 9) =====================
# Every value a >= 0 travels as one spike, k = T(a) = ceil(L ln(a + 1)) steps after the
# reference step of the layer that emits it (semantics.ttfs_time); a synaptic layer reads
# it as G(a) = exp(k / L) (about a + 1). Steps are global (0 = the first step).


@dataclass(frozen=True)
class TTFSGate(Op):
    """G(x) = exp(ceil(L ln(x + 1)) / L) for x >= 0 (TDSNN eq. 11): what a
    temporally coded spike carries. An ANN retrained for temporal coding has one in
    front of every synaptic layer (the ONNX chain Add 1, Log, Mul L, Ceil, Div L, Exp,
    fused by the frontend); convert-to-ttfs turns such a network into an SNN that
    computes it exactly. Rate coding has no equivalent."""

    x: str = operand()
    leak: float = attr(5.0)
    kind: ClassVar[str] = "ttfsgate"

    def infer_shape(self, shapes, params):
        if self.leak <= 0:
            raise self.error(f"leak must be > 0, got {self.leak}")
        return shapes[0]


def _check_bias(op: Op, shape: Shape, params) -> None:
    b = getattr(op, "bias", None)
    if b is None:
        return
    try:
        ok = _broadcast(shape, params[b].shape) == tuple(shape) and params[b].ndim <= len(shape)
    except ValueError:
        ok = False
    if not ok:
        raise op.error(f"bias {list(params[b].shape)} does not broadcast to {list(shape)}")


@dataclass(frozen=True)
class TTFSEncode(Op):
    """Reverse-coded input: each element x spikes once, at step min(T(scale (x -
    offset)), deadline) (reference step 0; T with the op's shift, semantics.ttfs_time).
    offset (<= 0) shifts inputs that can be negative to >= 0 (the first layer's offset
    compensation accounts for it); scale codes the input in the range the layers use
    (convert-to-ttfs); an input beyond the largest value the first layer reads
    (deadline) spikes at the deadline (clipped)."""

    x: str = operand()
    leak: float = attr(5.0)
    offset: float = attr(0.0)
    deadline: int = attr(0)
    shift: float = attr(0.0)
    scale: float = attr(1.0)
    kind: ClassVar[str] = "ttfsencode"
    spiking: ClassVar[bool] = True

    def infer_shape(self, shapes, params):
        if self.leak <= 0:
            raise self.error(f"leak must be > 0, got {self.leak}")
        if self.deadline < 0 or self.offset > 0:
            raise self.error("deadline must be >= 0 and offset <= 0")
        return shapes[0]


@dataclass(frozen=True)
class TTFSNeuron(Op):
    """A layer of leaky integrate-and-fire neurons that fire at most once (TDSNN).

    Every step s: V = V exp(-1/L) + x[s] (+ bias at step bias_at: the bias neuron's
    synapse, an input of value 1) (+ tick for s > release: the ticking neuron, weight
    semantics.ttfs_tick(L, span)). Inhibited until `release`; from then on a neuron that
    has not fired spikes at the first step with V >= theta (semantics.ttfs_threshold:
    0 for shift 0, the paper's choice), or at release + deadline at the latest. With
    weights negated (negate-weights), a neuron whose ANN value is A >= 0 spikes
    ceil(L ln(A + 1) - shift) steps after release when its inputs spiked on a reference
    step `span` steps before release (`span` covers every input spike)."""

    x: str = operand()
    bias: str | None = param()
    leak: float = attr(5.0)
    release: int = attr(0)
    span: int = attr(0)
    deadline: int = attr(0)
    bias_at: int = attr(0)
    shift: float = attr(0.0)
    kind: ClassVar[str] = "ttfsneuron"
    spiking: ClassVar[bool] = True

    def infer_shape(self, shapes, params):
        if self.leak <= 0:
            raise self.error(f"leak must be > 0, got {self.leak}")
        if min(self.release, self.span, self.deadline, self.bias_at) < 0:
            raise self.error("release, span, deadline and bias_at must be >= 0")
        _check_bias(self, shapes[0], params)
        return shapes[0]


@dataclass(frozen=True)
class TTFSMaxPool(Op, _Windowed):
    """Temporal max-pool (TDSNN): threshold N (the window's inputs), weights 1, no leak,
    no tick: an output spikes at the step where the last input of its window spikes,
    which under reverse coding is the window's maximum."""

    x: str = operand()
    kernel: tuple[int, int] = attr((2, 2))
    strides: tuple[int, int] = attr((1, 1))
    pads: tuple[int, int, int, int] = attr((0, 0, 0, 0))
    dilations: tuple[int, int] = attr((1, 1))
    ceil_mode: bool = attr(False)
    kind: ClassVar[str] = "ttfsmaxpool"
    spiking: ClassVar[bool] = True

    def infer_shape(self, shapes, params):
        h, w = self._window_shape(self, shapes[0], self.kernel, self.strides, self.pads,
                                  self.dilations, self.ceil_mode)
        return (shapes[0][0], h, w)


@dataclass(frozen=True)
class TTFSReadout(Op):
    """The output layer (not negated): V = V exp(-1/L) + x[s] (+ bias at bias_at), no
    firing. Its value at step s is scale V exp((s - ref) / L): the ANN output computed
    from the input spikes that arrived so far (ref: the reference step of its inputs); the
    decision is read at `release`, when every input has arrived."""

    x: str = operand()
    bias: str | None = param()
    leak: float = attr(5.0)
    ref: int = attr(0)
    release: int = attr(0)
    bias_at: int = attr(0)
    scale: float = attr(1.0)
    kind: ClassVar[str] = "ttfsreadout"
    spiking: ClassVar[bool] = True

    def infer_shape(self, shapes, params):
        if self.leak <= 0:
            raise self.error(f"leak must be > 0, got {self.leak}")
        _check_bias(self, shapes[0], params)
        return shapes[0]


OPS: dict[str, type[Op]] = {
    cls.kind: cls
    for cls in (Conv, Dense, BatchNorm, Affine, Relu, Clip, MaxPool, AvgPool, Add, Concat,
                Flatten, Reshape, Pad, Softmax, Encode, Current, IFNeuron, SpikeMaxPool,
                Accumulate, SpikingSoftmax, TTFSGate, TTFSEncode, TTFSNeuron, TTFSMaxPool,
                TTFSReadout)
}
