"""fold-batchnorm: fold inference batch norm into the preceding Conv/Dense (METHODS 3).

    BN(y) = gamma (y - mu) / sigma + beta,  sigma = sqrt(var + eps)
    W <- W * gamma/sigma (per output channel),  b <- gamma/sigma (b - mu) + beta

Lossless in exact arithmetic. The fused op takes the BN's output value name, so the tensor
keeps its ONNX name (calibration reads it from onnxruntime).
Decision: a BN that does not directly follow a Conv/Dense used by nothing else becomes an
Affine op (per-channel scale and shift). Affine is linear, so it stays exact in the
rate-coded SNN as a per-channel synaptic scale plus constant current.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from snnc.ir import ops as O
from snnc.ir.graph import Graph
from snnc.passes.base import Pass, PassContext


@dataclass(frozen=True)
class FoldBatchNorm(Pass):
    name: ClassVar[str] = "fold-batchnorm"
    establishes: ClassVar[frozenset[str]] = frozenset({"no-batchnorm"})

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        g = graph.copy()
        prod = g.producers()
        users = g.consumers()
        replaced: dict[str, O.Op] = {}  # producer op name -> fused op
        dropped: set[str] = set()
        new_ops: list[O.Op] = []
        for op in g.ops:
            if not isinstance(op, O.BatchNorm):
                new_ops.append(op)
                continue
            p = g.params
            var = p[op.var].astype(np.float64) + op.epsilon
            if not (var > 0).all():
                raise op.error("variance + epsilon must be > 0 in every channel, got "
                               f"{float(var.min()):g}", hint="the model's batch-norm "
                               "statistics are broken; re-export it")
            sigma = np.sqrt(var)
            a = p[op.scale].astype(np.float64) / sigma
            c = p[op.bias].astype(np.float64) - p[op.mean].astype(np.float64) * a
            src = prod.get(op.x)
            if (isinstance(src, (O.Conv, O.Dense)) and len(users[op.x]) == 1
                    and op.x not in g.outputs and src.name not in dropped):
                w = p[src.weight].astype(np.float64)
                w = w * a.reshape((-1,) + (1,) * (w.ndim - 1))
                b = p[src.bias].astype(np.float64) if src.bias else np.zeros(w.shape[0])
                fused = g.replace(src, out=op.out,
                                  weight=g.add_param(src.weight + ".bn", w),
                                  bias=g.add_param((src.bias or src.weight) + ".bn",
                                                   a * b + c))
                idx = new_ops.index(src)
                new_ops[idx] = fused
                replaced[src.name] = fused
                dropped.add(src.name)
            else:
                tail = (1,) * (len(g.shape(op.x)) - 1)
                new_ops.append(O.Affine(name=op.name, out=op.out, origin=op.origin, x=op.x,
                                        scale=g.add_param(op.scale + ".a", a.reshape(-1, *tail)),
                                        shift=g.add_param(op.bias + ".c", c.reshape(-1, *tail))))
        return g.rebuild(new_ops)
