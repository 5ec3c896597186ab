"""normalize: data-based threshold balancing (METHODS 2, and 4 for Clip bounds).

For every rectifying neuron layer l (Relu, or Clip(0, hi)) pick lambda_l from the ANN's
activations on calibration data (onnxruntime), then rescale so that every neuron's
activation is a_l / lambda_l and thresholds are 1:

    W_l <- W_l * lambda_{l-1} / lambda_l,   b_l <- b_l / lambda_l,   theta_l = 1

Implementation: every value v gets a scale s(v) with  IR value = ANN value / s(v).
Graph inputs have s = 1 (lambda_0 = 1); a neuron's output has s = lambda_l; shape-only ops
and pooling pass s through (max-pool commutes with positive scales, average pooling is
linear); a Conv/Dense/Affine absorbs the change from its input scale to the scale its
consumer wants. Where scales meet and differ (residual Add, Concat, a neuron fed by a
value it cannot rescale, the graph outputs) an Affine rescaling edge is inserted, so
every join sees one scale. Graph outputs are restored to s = 1, so the normalized ANN
computes exactly what the ONNX model computes: the pass is checked against onnxruntime.

Methods: `max` (p = 100) or `percentile:P` (default 99.9) of the layer's activations;
`clip`: only the Clip bounds (no calibration data needed when every layer has one).
Wherever a layer has a Clip(0, hi) bound (threshold ReLU, ReLU6), lambda = hi whatever
the method (METHODS 4, Ding et al. Theorem 1: the IF neuron saturates exactly where the
ANN clips, so the layer converts without loss as T grows).
Decision: only positive activations count (zeros say nothing about the scale).
Decision: the statistic of relu(x) over positive values equals that of x over positive
values, so the neuron's *input* tensor is read from onnxruntime (it keeps its ONNX name
through folding and the relu-before-maxpool rewrite).
Without calibration data (structure-only compiles such as `snnc check`) lambda = 1.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from snnc.ir import ops as O
from snnc.ir.errors import SnncError
from snnc.ir.graph import Graph
from snnc.passes.base import Pass, PassContext

#: ops whose output has the scale of their (single) operand
PASS_THROUGH = (O.MaxPool, O.AvgPool, O.Flatten, O.Reshape, O.Pad)


def is_neuron(op: O.Op) -> bool:
    """A rectifier that becomes an IF population: Relu, or Clip(0, hi)."""
    return isinstance(op, O.Relu) or (isinstance(op, O.Clip) and op.lo == 0.0)


def parse_method(spec: str) -> float:
    """'max' -> 100, 'percentile:P' -> P (0 < P <= 100); 'clip' -> 99.9 for the layers
    without a clip bound (when calibration data is given)."""
    if spec == "max":
        return 100.0
    if spec == "clip":
        return 99.9
    if spec.startswith("percentile:"):
        try:
            p = float(spec.split(":", 1)[1])
        except ValueError:
            p = -1.0
        if 0 < p <= 100:
            return p
    raise SnncError(f"unknown normalization '{spec}'",
                    hint="use max or percentile:P with 0 < P <= 100, e.g. percentile:99.9")


def robust_max(act: np.ndarray, percentile: float) -> float:
    pos = act[act > 0]
    if pos.size == 0:
        return 0.0
    if percentile >= 100:
        return float(pos.max())
    return float(np.percentile(pos, percentile))


@dataclass(frozen=True)
class Normalize(Pass):
    method: str = "percentile:99.9"
    name: ClassVar[str] = "normalize"
    requires: ClassVar[frozenset[str]] = frozenset({"no-batchnorm"})
    establishes: ClassVar[frozenset[str]] = frozenset({"normalized"})

    def lambdas(self, g: Graph, ctx: PassContext) -> dict[str, float]:
        """lambda per neuron op name."""
        pct = parse_method(self.method)
        neurons = [op for op in g.ops if is_neuron(op)]
        prod = g.producers()
        # the output layer's scale: used only by a spike-count readout
        outs = {v: prod[v].x if isinstance(prod.get(v), O.Softmax) else v for v in g.outputs}
        acts = {}
        if ctx.calibration is not None:
            acts = ctx.calibration.activations(
                sorted({op.x for op in neurons} | set(outs.values())))
        g.meta["output_lambda"] = {v: robust_max(acts[v], pct) or 1.0
                                   for v in outs.values() if v in acts}
        lam = {}
        for op in neurons:
            if isinstance(op, O.Clip) and op.hi is not None and op.hi > 0:
                lam[op.name] = float(op.hi)
                continue
            if ctx.calibration is None and not ctx.structure_only:
                raise op.error("this layer has no clip bound, so its scale must come from "
                               "calibration data", hint="pass --calib CALIB.npz")
            v = robust_max(acts[op.x], pct) if acts else 1.0
            if v <= 0:
                # A layer that never activates on the calibration data: keep its scale so
                # it stays silent rather than dividing by zero.
                v = 1.0
            lam[op.name] = float(v)
        return lam

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        g = graph.copy()
        lam = self.lambdas(g, ctx)
        ctx.notes["lambda"] = lam

        # target(v): the scale v's consumers want (backwards); 1 where nothing asks.
        target: dict[str, float] = {}
        for op in reversed(g.ops):
            for v in op.inputs():
                if v in target:
                    continue
                if is_neuron(op):
                    target[v] = lam[op.name]
                elif isinstance(op, (O.Add, O.Concat, *PASS_THROUGH)):
                    target[v] = target.get(op.out, 1.0)
        scale: dict[str, float] = {v: 1.0 for v in g.inputs}
        taken = set(g.values) | set(g.params) | {o.name for o in g.ops}
        new_ops: list[O.Op] = []

        def rescaled(v: str, want: float, at: O.Op) -> str:
            """v brought to scale `want` (inserting an Affine edge when needed)."""
            have = scale[v]
            if np.isclose(have, want, rtol=1e-7, atol=0):
                return v
            out = g.fresh_name(f"{v}.rescale", taken)
            name = g.fresh_name(f"{at.name}.rescale", taken)
            taken.update({out, name})
            new_ops.append(O.Affine(name=name, out=out, origin=at.origin, x=v,
                                    scale=g.add_param(f"{name}.s", np.float32(have / want)),
                                    shift=None))
            g.values[out] = g.values[v]
            scale[out] = want
            return out

        for op in g.ops:
            if isinstance(op, O.BatchNorm):
                raise op.error("batch norm must be folded before normalization")
            if is_neuron(op):
                s = lam[op.name]
                x = rescaled(op.x, s, op)
                hi = None if not isinstance(op, O.Clip) or op.hi is None else op.hi / s
                new = g.replace(op, x=x) if isinstance(op, O.Relu) else g.replace(op, x=x, hi=hi)
                scale[op.out] = s
            elif isinstance(op, (O.Conv, O.Dense)):
                s_in, s_out = scale[op.x], target.get(op.out, 1.0)
                w = g.params[op.weight].astype(np.float64) * (s_in / s_out)
                new = g.replace(op, weight=g.add_param(op.weight + ".n", w),
                                bias=None if not op.bias else g.add_param(
                                    op.bias + ".n", g.params[op.bias] / s_out))
                scale[op.out] = s_out
            elif isinstance(op, O.Affine):
                s_in, s_out = scale[op.x], target.get(op.out, 1.0)
                sc = g.params[op.scale] if op.scale else np.float32(1)
                new = g.replace(op, scale=g.add_param(f"{op.name}.scale.n",
                                                      sc * (s_in / s_out)),
                                shift=None if not op.shift else g.add_param(
                                    f"{op.name}.shift.n", g.params[op.shift] / s_out))
                scale[op.out] = s_out
            elif isinstance(op, (O.Add, O.Concat)):
                s_out = target.get(op.out, scale[op.inputs()[0]])
                new = g.replace(op, xs=tuple(rescaled(v, s_out, op) for v in op.xs))
                scale[op.out] = s_out
            elif isinstance(op, PASS_THROUGH):
                new = op
                scale[op.out] = scale[op.x]
            else:  # Softmax, non-rectifying Clip: need the ANN's own units
                new = g.replace(op, **{f: rescaled(getattr(op, f), 1.0, op)
                                       for f in op.fields_by_role("operand")})
                scale[op.out] = 1.0
            new_ops.append(new)

        outputs = []
        for v in g.outputs:
            fake = O.Relu(name=g.fresh_name(f"{v}.output", taken), out="", x=v)
            outputs.append(rescaled(v, 1.0, fake))
        g.outputs = outputs
        g.meta["lambda"] = lam
        return g.rebuild(new_ops)
