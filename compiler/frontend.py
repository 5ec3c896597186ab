"""ONNX frontend: load, check, infer shapes, fold constants, import into the ANN-level IR.

Every ONNX node ends up in the coverage report with one status:
  converted   -> became IR op(s)
  folded      -> computed at compile time (constants, shape arithmetic)
  removed     -> no effect at inference (Dropout, Identity)
  unsupported -> cannot be compiled, with the reason
Unsupported nodes never disappear silently: import_onnx raises one SnncError listing them all.

Decision: the first axis of every graph input is the batch axis; the IR works per sample.
Ops that would mix the batch axis with others (Flatten(axis=0), a Reshape that moves it,
Concat on axis 0) are unsupported, with that reason.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper
from snnc import budget
from snnc.ir import ops as O
from snnc.ir.errors import SnncError, printable
from snnc.ir.graph import Graph, Value

MIN_OPSET = 9
# A symbolic batch size in a folded Shape: Reshape reads it back as "the batch axis"
# (PyTorch's x.view(x.size(0), -1)); any other use of it is unsupported.
BATCH_SENTINEL = 2**31 - 1
REMOVED = {"Dropout", "Identity"}
# Never folded even with constant inputs (not deterministic).
NONDETERMINISTIC = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                    "Multinomial", "Bernoulli"}


class Unsupported(Exception):
    """Raised by an importer: this node cannot be compiled, for `reason`."""


@dataclass
class NodeReport:
    name: str
    op_type: str
    status: str  # converted | folded | removed | unsupported
    detail: str = ""


@dataclass
class ImportResult:
    graph: Graph | None
    report: list[NodeReport]
    model: onnx.ModelProto

    @property
    def unsupported(self) -> list[NodeReport]:
        return [r for r in self.report if r.status == "unsupported"]


# ======================================================================== loading ========
def load_model(path: str | Path) -> onnx.ModelProto:
    """Load and check an ONNX file; every failure is a one-line SnncError."""
    p = Path(path)
    if not p.exists():
        raise SnncError(f"model file '{p}' does not exist")
    if not p.is_file():
        raise SnncError(f"model path '{p}' is not a file")
    try:
        model = onnx.load(str(p))
    except Exception as e:  # protobuf DecodeError, external-data errors, ...
        raise SnncError(f"'{p}' is not a readable ONNX model ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else 'decode failed'})",
                        hint="export the network with torch.onnx.export or tf2onnx") from None
    if not model.graph.node and not model.graph.output:
        raise SnncError(f"'{p}' is not an ONNX model (empty graph)")
    return model


def _opset(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    raise SnncError("the model imports no default-domain ONNX opset")


def _text(v: Any) -> str:
    """A name as str: protobuf hands out bytes for a string field that is not UTF-8."""
    return v.decode("utf-8", "backslashreplace") if isinstance(v, bytes) else v


def _decode_names(model: onnx.ModelProto) -> None:
    """Every name in the graph as valid text (the same bytes always decode the same way,
    so references between nodes stay intact)."""
    g = model.graph
    for n in g.node:
        n.name, n.op_type, n.domain = _text(n.name), _text(n.op_type), _text(n.domain)
        for field_ in (n.input, n.output):
            vals = [_text(v) for v in field_]
            del field_[:]
            field_.extend(vals)
        for a in n.attribute:
            a.name = _text(a.name)
    for coll in (g.initializer, g.input, g.output, g.value_info):
        for t in coll:
            t.name = _text(t.name)


def check_and_infer(model: onnx.ModelProto) -> onnx.ModelProto:
    _decode_names(model)
    opset = _opset(model)
    if opset < MIN_OPSET:
        raise SnncError(f"opset {opset} is older than the oldest supported ({MIN_OPSET})",
                        hint="re-export the model with a newer opset")
    try:
        onnx.checker.check_model(model)
    except Exception as e:
        raise SnncError(f"the ONNX checker rejects the model: {str(e).splitlines()[0]}",
                        hint="re-export the model") from None
    try:
        # check_type: an initializer of the wrong element type (a string bias, a float4
        # BN mean) is named here, not by onnxruntime at calibration (after `snnc check`
        # passed the model)
        return onnx.shape_inference.infer_shapes(model, check_type=True, data_prop=True)
    except Exception as e:
        raise SnncError(f"ONNX shape inference failed: {str(e).splitlines()[0]}",
                        hint="the model's tensors must have the element types its operators "
                             "accept; re-export it") from None


# ======================================================================== context ========
@dataclass
class _Ctx:
    model: onnx.ModelProto
    opset: int
    graph: Graph = field(default_factory=Graph)
    consts: dict[str, np.ndarray] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)  # ONNX tensor -> IR value
    batch: int | None = None  # static batch size of the model input, if any
    onnx_shapes: dict[str, tuple[int | None, ...]] = field(default_factory=dict)
    op_names: set[str] = field(default_factory=set)
    used: set[str] = field(default_factory=set)  # tensors some node or output reads
    used_as_output: set[str] = field(default_factory=set)  # the graph's outputs
    node: onnx.NodeProto | None = None
    label: str = ""

    # ---- helpers for importers ----
    def attrs(self) -> dict[str, Any]:
        """The node's attributes; each must have the type the op's schema declares (a
        mutated file can carry a string where an int belongs)."""
        try:
            schema = onnx.defs.get_schema(self.node.op_type, self.opset,
                                          self.node.domain or "")
            declared = {k: v.type for k, v in schema.attributes.items()}
        except Exception:  # no schema (unknown op): the importer refuses it anyway
            declared = {}
        out = {}
        for a in self.node.attribute:
            want = declared.get(a.name)
            if want is not None and a.type != want:
                raise Unsupported(
                    f"attribute '{printable(a.name)}' has type "
                    f"{onnx.AttributeProto.AttributeType.Name(a.type)}, the op's schema "
                    f"declares {onnx.AttributeProto.AttributeType.Name(want)}")
            out[a.name] = onnx.helper.get_attribute_value(a)
        return out

    def is_const(self, name: str) -> bool:
        return name in self.consts

    def const(self, name: str, what: str, *, batch_ok: bool = False) -> np.ndarray:
        if name not in self.consts:
            raise Unsupported(f"{what} ('{name}') must be a constant")
        c = self.consts[name]
        if not batch_ok and c.dtype.kind in "iu" and (c == BATCH_SENTINEL).any():
            raise Unsupported(f"{what} ('{name}') depends on the batch size")
        return c

    def value(self, name: str) -> str:
        if name not in self.env:
            raise Unsupported(f"input '{name}' is not a computed tensor")
        return self.env[name]

    def shape(self, name: str) -> tuple[int, ...]:
        return self.graph.shape(self.value(name))

    def full_shape(self, name: str, batch: int) -> tuple[int, ...]:
        return (batch, *self.shape(name))

    def emit(self, cls: type[O.Op], out_onnx: str | None = None, **kw: Any) -> str:
        """Add an op; its output takes the ONNX tensor's name when given."""
        g = self.graph
        out = out_onnx if out_onnx and out_onnx not in g.values else g.fresh_name(
            (out_onnx or self.label) + "." + cls.kind, set(g.values) | set(g.params))
        base = self.label if self.label not in self.op_names else f"{self.label}.{cls.kind}"
        name = g.fresh_name(base, self.op_names)
        self.op_names.add(name)
        try:
            g.add_op(cls(name=name, out=out, origin=self.label, **kw))
        except SnncError as e:
            raise Unsupported(e.message) from None
        if out_onnx:
            self.env[out_onnx] = out
        return out

    def param(self, suffix: str, array: np.ndarray) -> str:
        return self.graph.add_param(f"{self.label}.{suffix}", np.asarray(array, np.float32))


# ======================================================================== importers ======
def _spatial_attrs(ctx: _Ctx, shape: tuple[int, ...], kernel: tuple[int, int],
                   *, allow_dilation: bool = True) -> tuple[tuple, tuple, tuple]:
    a = ctx.attrs()
    if len(shape) != 3:
        raise Unsupported(f"only 2-D (N, C, H, W) inputs are supported, got per-sample "
                          f"shape {list(shape)}")
    strides = tuple(a.get("strides", (1, 1)))
    dil = tuple(a.get("dilations", (1, 1)))
    for what, vals in (("strides", strides), ("dilations", dil), ("kernel_shape", kernel)):
        if len(vals) != 2 or any(int(v) < 1 for v in vals):
            raise Unsupported(f"{what} {list(vals)}: expected 2 integers >= 1")
    if any(int(p) < 0 for p in a.get("pads", ())):
        raise Unsupported(f"pads {list(a['pads'])}: expected integers >= 0")
    if not allow_dilation and dil != (1, 1):
        raise Unsupported("dilations are not supported for this op")
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("NOTSET", ""):
        pads = tuple(a.get("pads", (0, 0, 0, 0)))
    elif "pads" in a:
        raise Unsupported(f"auto_pad {auto} together with pads (ONNX allows one of them)")
    elif auto == "VALID":
        pads = (0, 0, 0, 0)
    elif auto in ("SAME_UPPER", "SAME_LOWER"):
        b, e = [], []
        for i in range(2):
            n = shape[1 + i]
            out = -(-n // strides[i])
            total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dil[i] + 1 - n)
            small = total // 2
            b.append(small if auto == "SAME_UPPER" else total - small)
            e.append(total - b[-1])
        pads = (b[0], b[1], e[0], e[1])
    else:
        raise Unsupported(f"unknown auto_pad '{auto}'")
    if len(strides) != 2 or len(dil) != 2 or len(pads) != 4:
        raise Unsupported("only 2-D windows are supported")
    return strides, pads, dil


def imp_conv(ctx: _Ctx) -> None:
    n = ctx.node
    x = ctx.value(n.input[0])
    w = ctx.const(n.input[1], "Conv weight")
    if w.ndim != 4:
        raise Unsupported(f"only 2-D convolution is supported (weight rank {w.ndim})")
    a = ctx.attrs()
    if "kernel_shape" in a and tuple(a["kernel_shape"]) != w.shape[2:]:
        raise Unsupported(f"kernel_shape {a['kernel_shape']} != weight {list(w.shape)}")
    strides, pads, dil = _spatial_attrs(ctx, ctx.graph.shape(x), w.shape[2:])
    bias = None
    if len(n.input) > 2 and n.input[2]:
        bias = ctx.param("bias", ctx.const(n.input[2], "Conv bias"))
    ctx.emit(O.Conv, n.output[0], x=x, weight=ctx.param("weight", w), bias=bias,
             strides=strides, pads=pads, dilations=dil, groups=int(a.get("group", 1)))


def imp_gemm(ctx: _Ctx) -> None:
    n = ctx.node
    a = ctx.attrs()
    if a.get("transA", 0):
        raise Unsupported("transA=1 puts the batch on the second axis")
    x = ctx.value(n.input[0])
    if len(ctx.graph.shape(x)) != 1:
        raise Unsupported(f"Gemm input must be 2-D (batch, features), per-sample shape "
                          f"{list(ctx.graph.shape(x))}")
    b = ctx.const(n.input[1], "Gemm B (weights)")
    w = (b if a.get("transB", 0) else b.T) * np.float32(a.get("alpha", 1.0))
    bias = None
    if len(n.input) > 2 and n.input[2]:
        c = ctx.const(n.input[2], "Gemm C (bias)") * np.float32(a.get("beta", 1.0))
        if c.size == 1:
            c = np.full(w.shape[0], c.reshape(()), np.float32)
        elif c.shape in ((w.shape[0],), (1, w.shape[0])):
            c = c.reshape(-1)
        else:
            raise Unsupported(f"bias C of shape {list(c.shape)} is not per output feature")
        bias = ctx.param("bias", c)
    ctx.emit(O.Dense, n.output[0], x=x, weight=ctx.param("weight", w), bias=bias)


def imp_matmul(ctx: _Ctx) -> None:
    n = ctx.node
    if ctx.is_const(n.input[0]):
        raise Unsupported("a constant left operand (weights on the left) is not supported")
    if not ctx.is_const(n.input[1]):
        raise Unsupported("product of two computed tensors cannot be expressed by synapses")
    b = ctx.const(n.input[1], "MatMul B")
    if b.ndim != 2:
        raise Unsupported(f"MatMul weight must be 2-D, got {list(b.shape)}")
    ctx.emit(O.Dense, n.output[0], x=ctx.value(n.input[0]), weight=ctx.param("weight", b.T),
             bias=None)


def _per_sample_const(ctx: _Ctx, c: np.ndarray, xname: str) -> np.ndarray:
    """A constant broadcast against a batch-leading tensor, as a per-sample constant."""
    shape = ctx.shape(xname)
    rank = len(shape) + 1
    if c.ndim == rank:
        if c.shape[0] != 1:
            raise Unsupported(f"constant of shape {list(c.shape)} varies over the batch axis")
        c = c.reshape(c.shape[1:])
    elif c.ndim > rank:
        raise Unsupported(f"constant of shape {list(c.shape)} has more axes than the input")
    try:
        if tuple(np.broadcast_shapes(shape, c.shape)) != tuple(shape):
            raise Unsupported(f"constant {list(c.shape)} would broadcast the input "
                              f"{list(shape)} to a larger shape")
    except ValueError:
        raise Unsupported(f"constant {list(c.shape)} does not broadcast to {list(shape)}"
                          ) from None
    # Drop leading singleton axes: they carry no information per sample.
    while c.ndim > 1 and c.shape[0] == 1:
        c = c[0]
    return np.asarray(c, np.float32)


def imp_arith(ctx: _Ctx) -> None:
    n = ctx.node
    op = n.op_type
    a_c, b_c = ctx.is_const(n.input[0]), ctx.is_const(n.input[1])
    if not a_c and not b_c:
        xa, xb = ctx.value(n.input[0]), ctx.value(n.input[1])
        if op in ("Mul", "Div"):
            raise Unsupported(f"{op} of two computed tensors cannot be expressed by "
                              "integrate-and-fire neurons")
        if ctx.graph.shape(xa) != ctx.graph.shape(xb):
            raise Unsupported(f"{op} of tensors with different shapes "
                              f"{list(ctx.graph.shape(xa))} and {list(ctx.graph.shape(xb))}")
        if op == "Sub":
            xb = ctx.emit(O.Affine, None, x=xb, scale=ctx.param("neg", np.float32(-1)),
                          shift=None)
        ctx.emit(O.Add, n.output[0], xs=(xa, xb))
        return
    xi = 1 if a_c else 0
    x = ctx.value(n.input[xi])
    c = _per_sample_const(ctx, ctx.consts[n.input[1 - xi]].astype(np.float32), n.input[xi])
    scale = shift = None
    if op == "Add":
        shift = c
    elif op == "Sub":
        if xi == 0:
            shift = -c
        else:
            scale, shift = np.float32(-1), c
    elif op == "Mul":
        scale = c
    elif op == "Div":
        if xi == 1:
            raise Unsupported("dividing a constant by a computed tensor is not linear")
        if (c == 0).any():
            raise Unsupported("division by a constant that contains zeros")
        scale = np.float32(1) / c
    ctx.emit(O.Affine, n.output[0], x=x,
             scale=None if scale is None else ctx.param("scale", scale),
             shift=None if shift is None else ctx.param("shift", shift))


def imp_sum(ctx: _Ctx) -> None:
    n = ctx.node
    live = [i for i in n.input if not ctx.is_const(i)]
    consts = [i for i in n.input if ctx.is_const(i)]
    if not live:
        raise Unsupported("internal: all-constant Sum should have been folded")
    shapes = {ctx.shape(i) for i in live}
    if len(shapes) != 1:
        raise Unsupported(f"Sum of tensors with different shapes {sorted(map(list, shapes))}")
    out_final = n.output[0]
    if len(live) == 1:
        x = ctx.value(live[0])
    else:
        x = ctx.emit(O.Add, None if consts else out_final,
                     xs=tuple(ctx.value(i) for i in live))
    if consts:
        c = sum(_per_sample_const(ctx, ctx.consts[i], live[0]) for i in consts)
        ctx.emit(O.Affine, out_final, x=x, scale=None, shift=ctx.param("shift", c))
    elif len(live) == 1:
        ctx.env[out_final] = x


def imp_relu(ctx: _Ctx) -> None:
    ctx.emit(O.Relu, ctx.node.output[0], x=ctx.value(ctx.node.input[0]))


def imp_clip(ctx: _Ctx) -> None:
    n = ctx.node
    a = ctx.attrs()
    if ctx.opset < 11:
        lo, hi = a.get("min"), a.get("max")
    else:
        lo = hi = None
        if len(n.input) > 1 and n.input[1]:
            lo = float(ctx.const(n.input[1], "Clip min").reshape(()))
        if len(n.input) > 2 and n.input[2]:
            hi = float(ctx.const(n.input[2], "Clip max").reshape(()))
    ctx.emit(O.Clip, n.output[0], x=ctx.value(n.input[0]),
             lo=None if lo is None or lo <= -3.4e38 else float(lo),
             hi=None if hi is None or hi >= 3.4e38 else float(hi))


def imp_batchnorm(ctx: _Ctx) -> None:
    n = ctx.node
    a = ctx.attrs()
    if a.get("training_mode", 0):
        raise Unsupported("training_mode=1 batch norm (export the model in eval mode)")
    if any(o in ctx.used for o in n.output[1:]):
        raise Unsupported("running mean/var outputs are used (training-mode graph)")
    names = ["scale", "bias", "mean", "var"]
    kw = {k: ctx.param(k, ctx.const(n.input[1 + i], f"BatchNormalization {k}"))
          for i, k in enumerate(names)}
    ctx.emit(O.BatchNorm, n.output[0], x=ctx.value(n.input[0]),
             epsilon=float(a.get("epsilon", 1e-5)), **kw)


def imp_maxpool(ctx: _Ctx) -> None:
    n = ctx.node
    if len(n.output) > 1 and n.output[1] in ctx.used:
        raise Unsupported("MaxPool Indices output is used")
    a = ctx.attrs()
    x = ctx.value(n.input[0])
    k = tuple(a["kernel_shape"])
    if len(k) != 2:
        raise Unsupported("only 2-D max pooling is supported")
    strides, pads, dil = _spatial_attrs(ctx, ctx.graph.shape(x), k)
    ctx.emit(O.MaxPool, n.output[0], x=x, kernel=k, strides=strides, pads=pads,
             dilations=dil, ceil_mode=bool(a.get("ceil_mode", 0)))


def imp_avgpool(ctx: _Ctx) -> None:
    n = ctx.node
    a = ctx.attrs()
    x = ctx.value(n.input[0])
    k = tuple(a["kernel_shape"])
    if len(k) != 2:
        raise Unsupported("only 2-D average pooling is supported")
    strides, pads, _ = _spatial_attrs(ctx, ctx.graph.shape(x), k, allow_dilation=False)
    ctx.emit(O.AvgPool, n.output[0], x=x, kernel=k, strides=strides, pads=pads,
             count_include_pad=bool(a.get("count_include_pad", 0)),
             ceil_mode=bool(a.get("ceil_mode", 0)))


def imp_global_pool(ctx: _Ctx) -> None:
    n = ctx.node
    x = ctx.value(n.input[0])
    s = ctx.graph.shape(x)
    if len(s) != 3:
        raise Unsupported(f"only (N, C, H, W) inputs are supported, per-sample {list(s)}")
    if n.op_type == "GlobalAveragePool":
        ctx.emit(O.AvgPool, n.output[0], x=x, kernel=s[1:], strides=(1, 1))
    else:
        ctx.emit(O.MaxPool, n.output[0], x=x, kernel=s[1:], strides=(1, 1))


def imp_reduce_mean(ctx: _Ctx) -> None:
    """ReduceMean over the two spatial axes of (N, C, H, W): a global average pool
    (`x.mean((2, 3))` in PyTorch), flattened to (N, C) when keepdims=0."""
    n = ctx.node
    x = ctx.value(n.input[0])
    s = ctx.graph.shape(x)
    a = ctx.attrs()
    if "axes" in a:
        axes = [int(v) for v in a["axes"]]
    elif len(n.input) > 1 and n.input[1]:
        axes = [int(v) for v in ctx.const(n.input[1], "axes").reshape(-1)]
    else:
        axes = []
    rank = len(s) + 1
    axes = sorted({ax % rank for ax in axes})
    if len(s) != 3 or axes != [2, 3]:
        raise Unsupported(f"only ReduceMean over the spatial axes [2, 3] of an (N, C, H, W) "
                          f"tensor (a global average pool) is supported; got axes "
                          f"{axes or 'all'} of {[None, *s]}")
    if a.get("keepdims", 1):
        ctx.emit(O.AvgPool, n.output[0], x=x, kernel=s[1:], strides=(1, 1))
    else:
        pooled = ctx.emit(O.AvgPool, None, x=x, kernel=s[1:], strides=(1, 1))
        ctx.emit(O.Flatten, n.output[0], x=pooled)


def imp_flatten(ctx: _Ctx) -> None:
    n = ctx.node
    x = ctx.value(n.input[0])
    axis = ctx.attrs().get("axis", 1)
    rank = len(ctx.graph.shape(x)) + 1
    if axis < 0:
        axis += rank
    if axis != 1:
        raise Unsupported(f"Flatten(axis={axis}) would merge the batch axis with others")
    ctx.emit(O.Flatten, n.output[0], x=x)


def _per_sample_target(ctx: _Ctx, x: str, resolve: Callable[[int], tuple[int, ...]]
                       ) -> tuple[int, ...]:
    """Per-sample output shape of a shape-changing op, checking the batch axis stays
    leading: resolve(batch) gives the full output shape for a given batch size."""
    trials = [ctx.batch] if ctx.batch else [2, 3]
    outs = []
    for b in trials:
        try:
            full = resolve(b)
        except ValueError as e:
            raise Unsupported(str(e)) from None
        if not full or full[0] != b:
            raise Unsupported(f"the op moves the batch axis (output shape {list(full)} for "
                              f"batch {b})")
        outs.append(tuple(full[1:]))
    if any(o != outs[0] for o in outs):
        raise Unsupported("the output shape depends on the batch size")
    return outs[0]


def _reshape_to(ctx: _Ctx, x: str, target: tuple[int, ...], out: str) -> None:
    if target == ctx.graph.shape(x):
        ctx.env[out] = x
    elif len(target) == 1:
        ctx.emit(O.Flatten, out, x=x)
    else:
        ctx.emit(O.Reshape, out, x=x, shape=target)


def imp_reshape(ctx: _Ctx) -> None:
    n = ctx.node
    x = ctx.value(n.input[0])
    shape = [int(d) for d in
             ctx.const(n.input[1], "Reshape shape", batch_ok=True).reshape(-1)]
    allowzero = ctx.attrs().get("allowzero", 0)

    def resolve(b: int) -> tuple[int, ...]:
        src = (b, *ctx.graph.shape(x))
        dims = [b if d == BATCH_SENTINEL else src[i] if d == 0 and not allowzero else d
                for i, d in enumerate(shape)]
        if dims.count(-1) > 1:
            raise ValueError("more than one -1 in the target shape")
        if -1 in dims:
            known = math.prod(d for d in dims if d != -1)
            if known == 0 or math.prod(src) % known:
                raise ValueError(f"cannot reshape {list(src)} to {shape}")
            dims[dims.index(-1)] = math.prod(src) // known
        if math.prod(dims) != math.prod(src):
            raise ValueError(f"cannot reshape {list(src)} to {shape}")
        return tuple(dims)

    _reshape_to(ctx, x, _per_sample_target(ctx, x, resolve), n.output[0])


def imp_squeeze(ctx: _Ctx) -> None:
    n = ctx.node
    x = ctx.value(n.input[0])
    a = ctx.attrs()
    if "axes" in a:
        axes = list(a["axes"])
    elif len(n.input) > 1 and n.input[1]:
        axes = [int(v) for v in ctx.const(n.input[1], "axes").reshape(-1)]
    else:
        axes = None
    shape = ctx.graph.shape(x)
    rank = len(shape) + 1
    if n.op_type == "Squeeze":
        if axes is None:
            if ctx.batch == 1:
                raise Unsupported("Squeeze without axes would also remove the batch axis "
                                  "(of size 1)")
            axes = [i + 1 for i, d in enumerate(shape) if d == 1]
        axes = sorted(ax % rank for ax in axes)
        if 0 in axes or any(shape[ax - 1] != 1 for ax in axes):
            raise Unsupported(f"cannot squeeze axes {axes} of {[None, *shape]}")
        target = tuple(d for i, d in enumerate(shape) if i + 1 not in axes)
    else:
        if axes is None:
            raise Unsupported("Unsqueeze needs axes")
        out_rank = rank + len(axes)
        axes = sorted(ax % out_rank for ax in axes)
        if 0 in axes:
            raise Unsupported("Unsqueeze at axis 0 would move the batch axis")
        it = iter(shape)
        target = tuple(1 if i in axes else next(it) for i in range(1, out_rank))
    _reshape_to(ctx, x, target, n.output[0])


def imp_concat(ctx: _Ctx) -> None:
    n = ctx.node
    ins = [i for i in n.input if i]
    if any(ctx.is_const(i) for i in ins):
        raise Unsupported("concatenating constants with computed tensors is not supported")
    xs = tuple(ctx.value(i) for i in ins)
    rank = len(ctx.graph.shape(xs[0])) + 1
    axis = ctx.attrs()["axis"]
    axis = axis + rank if axis < 0 else axis
    if axis == 0:
        raise Unsupported("Concat on the batch axis")
    if len(xs) == 1:
        ctx.env[n.output[0]] = xs[0]
        return
    ctx.emit(O.Concat, n.output[0], xs=xs, axis=axis - 1)


def imp_pad(ctx: _Ctx) -> None:
    n = ctx.node
    a = ctx.attrs()
    mode = a.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode != "constant":
        raise Unsupported(f"Pad mode '{mode}' (only constant zero padding is supported)")
    x = ctx.value(n.input[0])
    rank = len(ctx.graph.shape(x)) + 1
    if ctx.opset < 11:
        pads, value = list(a["pads"]), float(a.get("value", 0.0))
    else:
        pads = [int(v) for v in ctx.const(n.input[1], "Pad pads").reshape(-1)]
        value = 0.0
        if len(n.input) > 2 and n.input[2]:
            value = float(ctx.const(n.input[2], "Pad constant_value").reshape(-1)[0])
        if len(n.input) > 3 and n.input[3]:
            axes = [int(v) % rank for v in ctx.const(n.input[3], "Pad axes").reshape(-1)]
            full = [0] * (2 * rank)
            for i, ax in enumerate(axes):
                full[ax], full[rank + ax] = pads[i], pads[len(axes) + i]
            pads = full
    if value != 0.0:
        raise Unsupported(f"padding with value {value} (only zero padding is supported)")
    if pads[0] or pads[rank]:
        raise Unsupported("padding the batch axis")
    if any(p < 0 for p in pads):
        raise Unsupported("negative pads (cropping)")
    per = tuple(pads[1:rank]) + tuple(pads[rank + 1:])
    if not any(per):
        ctx.env[n.output[0]] = x
        return
    ctx.emit(O.Pad, n.output[0], x=x, pads=per)


def imp_softmax(ctx: _Ctx) -> None:
    n = ctx.node
    x = ctx.value(n.input[0])
    shape = ctx.graph.shape(x)
    rank = len(shape) + 1
    axis = ctx.attrs().get("axis", 1 if ctx.opset < 13 else -1)
    axis = axis + rank if axis < 0 else axis
    if axis == 0:
        raise Unsupported("Softmax over the batch axis")
    # opset < 13: softmax over all axes from `axis` on (flattened); opset >= 13: over one
    # axis, which is the same thing when every later axis has size 1.
    if ctx.opset >= 13 and any(d != 1 for d in shape[axis:]):
        raise Unsupported(f"Softmax over axis {axis} of a rank-{rank} tensor whose later "
                          "axes are not 1 (only the trailing axes are supported)")
    ctx.emit(O.Softmax, n.output[0], x=x, axis=axis - 1)


IMPORTERS: dict[str, Callable[[_Ctx], None]] = {
    "Conv": imp_conv, "Gemm": imp_gemm, "MatMul": imp_matmul,
    "Add": imp_arith, "Sub": imp_arith, "Mul": imp_arith, "Div": imp_arith, "Sum": imp_sum,
    "Relu": imp_relu, "Clip": imp_clip, "BatchNormalization": imp_batchnorm,
    "MaxPool": imp_maxpool, "AveragePool": imp_avgpool,
    "GlobalAveragePool": imp_global_pool, "GlobalMaxPool": imp_global_pool,
    "ReduceMean": imp_reduce_mean, "Flatten": imp_flatten, "Reshape": imp_reshape,
    "Squeeze": imp_squeeze, "Unsqueeze": imp_squeeze, "Concat": imp_concat, "Pad": imp_pad,
    "Softmax": imp_softmax,
}


# ======================================================================== G(x) ===========
#: the ONNX chain of G(x) = exp(ceil(ln(x + 1) * L) / L): (op type, constant operand)
GATE_CHAIN = (("Add", "one"), ("Log", None), ("Mul", "L"), ("Ceil", None), ("Div", "L"),
              ("Exp", None))


def _known_const(ctx: _Ctx, name: str, constants: dict[str, onnx.NodeProto]
                 ) -> np.ndarray | None:
    """A constant operand: an initializer or folded tensor, or the output of a Constant
    node (which an exporter may place after the node that starts a chain)."""
    if ctx.is_const(name):
        return ctx.consts[name]
    node = constants.get(name)
    if node is None or len(node.attribute) != 1 or node.attribute[0].name != "value":
        return None
    return numpy_helper.to_array(node.attribute[0].t)


def match_gate(ctx: _Ctx, node: onnx.NodeProto, users: dict[str, list[onnx.NodeProto]],
               constants: dict[str, onnx.NodeProto]
               ) -> tuple[list[onnx.NodeProto], str, float] | None:
    """If `node` starts the chain of G(x) (a temporally coded ANN's gate, TDSNN eq. 11),
    each link used only by the next: (the chain's nodes, x, L); else None."""
    chain: list[onnx.NodeProto] = []
    x, leak, cur = None, None, node
    for i, (op_type, const) in enumerate(GATE_CHAIN):
        if cur.op_type != op_type:
            return None
        known = [_known_const(ctx, v, constants) for v in cur.input]
        live = [v for v, c in zip(cur.input, known) if c is None]
        consts = [c for c in known if c is not None]
        if len(live) != 1 or len(consts) != (1 if const else 0):
            return None
        if const is not None:
            c = np.asarray(consts[0], np.float64)
            if c.size != 1 or (cur.op_type == "Div" and live[0] != cur.input[0]):
                return None
            if const == "one" and float(c) != 1.0:
                return None
            if const == "L":
                if leak is None:
                    leak = float(c)
                elif abs(float(c) - leak) > 1e-6 * leak:
                    return None
        if i == 0:
            x = live[0]
        elif live[0] != chain[-1].output[0]:
            return None
        chain.append(cur)
        if i + 1 < len(GATE_CHAIN):
            nxt = users.get(cur.output[0], [])
            if len(nxt) != 1 or cur.output[0] in ctx.used_as_output:
                return None
            cur = nxt[0]
    if leak is None or leak <= 0 or x is None:
        return None
    return chain, x, leak


# ======================================================================== folding ========
def _fold(ctx: _Ctx, node: onnx.NodeProto) -> list[np.ndarray]:
    """Evaluate a node whose inputs are all constant (or a Shape of a known tensor)."""
    t = node.op_type
    a = {x.name: onnx.helper.get_attribute_value(x) for x in node.attribute}
    if t == "Constant":
        for key in ("value", "sparse_value"):
            if key in a:
                arr = numpy_helper.to_array(a[key]) if key == "value" else None
                if arr is None:
                    raise Unsupported("sparse constants are not supported")
                return [arr]
        for key, dt in (("value_float", np.float32), ("value_floats", np.float32),
                        ("value_int", np.int64), ("value_ints", np.int64)):
            if key in a:
                return [np.array(a[key], dt)]
        raise Unsupported("Constant without a supported value attribute")
    if t == "ConstantOfShape":
        shape = ctx.consts[node.input[0]].astype(np.int64).reshape(-1)
        v = numpy_helper.to_array(a["value"]).reshape(-1) if "value" in a else \
            np.zeros(1, np.float32)
        if (shape < 0).any():
            raise Unsupported(f"ConstantOfShape of negative shape {shape.tolist()}")
        budget.check(f"ConstantOfShape {shape.tolist()}",
                     budget.array_bytes(shape.tolist(), v.dtype.itemsize))
        return [np.full(tuple(int(d) for d in shape), v[0], dtype=v.dtype)]
    if t in ("Shape", "Size") and node.input[0] in ctx.env:
        full = np.array((ctx.batch or BATCH_SENTINEL, *ctx.shape(node.input[0])), np.int64)
        if t == "Size":
            return [np.array(full.prod(), np.int64)]
        start, end = a.get("start", 0), a.get("end", len(full))
        return [full[start:end]]
    if t in REMOVED:
        return [ctx.consts[node.input[0]]]
    from onnx.reference import ReferenceEvaluator

    feeds = {i: ctx.consts[i] for i in node.input if i}
    inputs = [onnx.helper.make_tensor_value_info(
        i, onnx.helper.np_dtype_to_tensor_dtype(v.dtype), v.shape) for i, v in feeds.items()]
    outputs = [onnx.helper.make_empty_tensor_value_info(o) for o in node.output if o]
    graph = onnx.helper.make_graph([node], "fold", inputs, outputs)
    m = onnx.helper.make_model(graph, opset_imports=list(ctx.model.opset_import),
                               ir_version=ctx.model.ir_version)
    try:
        res = ReferenceEvaluator(m).run(None, feeds)
    except Exception as e:
        raise Unsupported(f"constant folding failed: {str(e).splitlines()[0]}") from None
    return [np.asarray(r) for r in res]


def _initializer(init: onnx.TensorProto) -> np.ndarray:
    """An initializer as an array, after checking its declared size against the memory
    budget and that its data matches its declaration; float weights must be finite."""
    what = f"initializer '{init.name}' {list(init.dims)}"
    if any(d < 0 for d in init.dims):
        raise SnncError(f"{what} has a negative dimension", node=init.name)
    try:
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(init.data_type).itemsize
    except (KeyError, ValueError, TypeError):
        raise SnncError(f"{what} has an unknown data type {init.data_type}",
                        node=init.name) from None
    budget.check(what, budget.array_bytes(init.dims, itemsize), node=init.name)
    try:
        arr = numpy_helper.to_array(init)
    except Exception as e:  # raw data of the wrong length, bad external data, ...
        raise SnncError(f"{what} cannot be read: {str(e).splitlines()[0][:200]}",
                        node=init.name, hint="re-export the model") from None
    if tuple(arr.shape) != tuple(init.dims):
        raise SnncError(f"{what} holds data of shape {list(arr.shape)}", node=init.name)
    # NaN anywhere, Inf in weights (an infinite scalar can be a Clip's open bound)
    if arr.dtype.kind == "f" and (np.isnan(arr).any()
                                  or (arr.size > 1 and not np.isfinite(arr).all())):
        raise SnncError(f"{what} holds NaN or Inf values", node=init.name,
                        hint="the trained weights are broken; retrain or re-export")
    if arr.dtype.kind == "f" and arr.size > 1:
        big = np.abs(arr[np.isfinite(arr)]).max(initial=0.0)
        if big > ABSURD:  # scaled by a normalization, folded into a BN: overflows float32
            raise SnncError(f"{what} holds a value of magnitude {float(big):.3g} (over "
                            f"{ABSURD:.0e}): thresholds and folded weights would overflow "
                            "float32", node=init.name,
                            hint="the trained weights are broken; retrain or re-export")
    return arr


#: a weight of larger magnitude is refused (float32's largest is 3.4e38; folding and
#: normalization multiply weights by ratios of activations)
ABSURD = 1e30


def _foldable(ctx: _Ctx, node: onnx.NodeProto) -> bool:
    if node.op_type in NONDETERMINISTIC or node.domain not in ("", "ai.onnx"):
        return False
    if node.op_type in ("Shape", "Size") and node.input[0] in ctx.env:
        return True
    return all(not i or i in ctx.consts for i in node.input)


# ======================================================================== import =========
def _training_dropout(ctx: _Ctx, node: onnx.NodeProto) -> bool:
    if len(node.input) > 2 and node.input[2]:
        mode = ctx.consts.get(node.input[2])
        if mode is None:
            raise Unsupported("Dropout training_mode must be a constant")
        if bool(np.asarray(mode).reshape(-1)[0]):
            ratio = ctx.consts.get(node.input[1]) if len(node.input) > 1 and node.input[1] \
                else np.float32(0.5)
            return ratio is None or float(np.asarray(ratio).reshape(-1)[0]) != 0.0
    return False


def _node_label(node: onnx.NodeProto, idx: int) -> str:
    return node.name if node.name else f"{node.op_type}_{idx}"


def import_model(model: onnx.ModelProto, *, strict: bool = True) -> ImportResult:
    """Import a loaded model into an ANN-level IR graph.

    strict: raise one SnncError listing every unsupported node (else return the report
    with graph=None so `snnc check` can print it)."""
    if not model.graph.output:
        raise SnncError("the model has no outputs: there is nothing to convert",
                        hint="export the network with its output tensor")
    model = check_and_infer(model)
    ctx = _Ctx(model=model, opset=_opset(model))
    g = ctx.graph
    for init in model.graph.initializer:
        ctx.consts[init.name] = _initializer(init)
    for vi in list(model.graph.value_info) + list(model.graph.output):
        dims = vi.type.tensor_type.shape.dim
        ctx.onnx_shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None
                                         for d in dims)
    real_inputs = [i for i in model.graph.input if i.name not in ctx.consts]
    if not real_inputs:
        raise SnncError("the model has no inputs (every input is an initializer)")
    for inp in real_inputs:
        tt = inp.type.tensor_type
        if tt.elem_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE,
                                onnx.TensorProto.FLOAT16):
            raise SnncError(f"input '{inp.name}' has a non-float type "
                            f"({onnx.TensorProto.DataType.Name(tt.elem_type)})")
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        if len(dims) < 2 or any(d is None or d <= 0 for d in dims[1:]):
            raise SnncError(f"input '{inp.name}' must have a static shape after the batch "
                            f"axis, got {['?' if d is None else d for d in dims]}",
                            hint="export with fixed spatial sizes (only the batch may vary)")
        if dims[0]:
            ctx.batch = dims[0]
        budget.check(f"input '{inp.name}' {dims}: one sample",
                     budget.array_bytes(dims[1:], 4), node=inp.name)
        if dims[0]:
            budget.check(f"input '{inp.name}' {dims}: a batch of its fixed size "
                         f"{dims[0]}", budget.array_bytes(dims, 4), node=inp.name,
                         hint="export the model with a dynamic batch axis")
        g.inputs.append(inp.name)
        g.values[inp.name] = Value(inp.name, tuple(int(d) for d in dims[1:]))
        ctx.env[inp.name] = inp.name

    used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
    ctx.used = used
    ctx.used_as_output = {o.name for o in model.graph.output}
    users: dict[str, list[onnx.NodeProto]] = {}
    for n in model.graph.node:
        for i in dict.fromkeys(n.input):
            users.setdefault(i, []).append(n)
    constants = {n.output[0]: n for n in model.graph.node
                 if n.op_type == "Constant" and n.output}
    fused: dict[int, str] = {}  # id of a node fused into a G(x) gate -> the gate's label
    report: list[NodeReport] = []
    blocked: dict[str, str] = {}  # tensor -> label of the unsupported node it depends on
    for idx, node in enumerate(model.graph.node):
        label = _node_label(node, idx)
        ctx.node, ctx.label = node, label
        dep = next((blocked[i] for i in node.input if i in blocked), None)
        if id(node) in fused:
            report.append(NodeReport(label, node.op_type, "converted",
                                     f"part of G(x) at '{fused[id(node)]}'"))
            continue
        gate = (match_gate(ctx, node, users, constants)
                if dep is None and node.op_type == "Add" else None)
        if gate is not None:
            chain, x, leak = gate
            try:
                ctx.emit(O.TTFSGate, chain[-1].output[0], x=ctx.value(x), leak=leak)
            except Unsupported as e:
                report.append(NodeReport(label, node.op_type, "unsupported", str(e)))
                for o in node.output:
                    blocked[o] = label
                continue
            for n in chain[1:]:
                fused[id(n)] = label
            report.append(NodeReport(label, node.op_type, "converted",
                                     f"ttfsgate (G(x), L = {leak:g})"))
            continue
        try:
            if node.domain not in ("", "ai.onnx"):
                raise Unsupported(f"custom domain '{node.domain}'")
            if node.op_type in REMOVED and not ctx.is_const(node.input[0]):
                if any(o in used for o in node.output[1:]):
                    raise Unsupported("its mask output is used")
                if node.op_type == "Dropout" and _training_dropout(ctx, node):
                    raise Unsupported("Dropout in training mode is random at inference")
                if dep:
                    raise Unsupported(f"{NOT_CHECKED}: its input comes from unsupported node "
                                      f"'{dep}'")
                ctx.env[node.output[0]] = ctx.value(node.input[0])
                report.append(NodeReport(label, node.op_type, "removed",
                                         "no effect at inference"))
                continue
            if dep is None and _foldable(ctx, node):
                for name, arr in zip([o for o in node.output if o], _fold(ctx, node)):
                    ctx.consts[name] = arr
                report.append(NodeReport(label, node.op_type, "folded", "constant"))
                continue
            importer = IMPORTERS.get(node.op_type)
            if importer is None:
                raise Unsupported(f"snnc has no conversion for {node.op_type}")
            if dep is not None:
                raise Unsupported(f"{NOT_CHECKED}: its input comes from unsupported node "
                                  f"'{dep}'")
            before = len(g.ops)
            importer(ctx)
            kinds = ", ".join(op.kind for op in g.ops[before:]) or "alias"
            report.append(NodeReport(label, node.op_type, "converted", kinds))
        except Unsupported as e:
            report.append(NodeReport(label, node.op_type, "unsupported", str(e)))
            for o in node.output:
                if o:
                    blocked[o] = dep or label
    res = ImportResult(None, report, model)
    for out in model.graph.output:
        if out.name in blocked:
            continue
        if out.name in ctx.consts or out.name not in ctx.env:
            report.append(NodeReport(out.name, "(graph output)", "unsupported",
                                     "the graph output is a constant"))
    if res.unsupported:
        if strict:
            raise unsupported_error(res)
        return res
    g.outputs = [ctx.env[o.name] for o in model.graph.output]
    g.meta["onnx_outputs"] = [o.name for o in model.graph.output]
    g.meta["onnx_inputs"] = list(g.inputs)
    res.graph = g.rebuild(g.ops)  # drops unused params and values
    return res


NOT_CHECKED = "not checked"


def unsupported_error(res: ImportResult) -> SnncError:
    bad = res.unsupported
    # the nodes snnc has no conversion for, then those not checked because they depend
    # on one (still each named: nothing is dropped, but the headline counts the causes)
    later = [r for r in bad if r.detail.startswith(NOT_CHECKED)]
    first = [r for r in bad if not r.detail.startswith(NOT_CHECKED)] or later
    items = "; ".join(f"{r.name} ({r.op_type}): {r.detail}" for r in first)
    rest = [r for r in later if r not in first]
    if rest:
        items += (f"; and {len(rest)} node(s) after them, not checked: "
                  + ", ".join(f"{r.name} ({r.op_type})" for r in rest))
    return SnncError(f"{len(first)} unsupported node(s): {items}",
                     node=first[0].name if len(first) == 1 else None,
                     hint="run 'snnc check MODEL.onnx' for the full coverage table")


def import_onnx(path_or_model: str | Path | onnx.ModelProto, *, strict: bool = True
                ) -> ImportResult:
    model = (path_or_model if isinstance(path_or_model, onnx.ModelProto)
             else load_model(path_or_model))
    return import_model(model, strict=strict)
