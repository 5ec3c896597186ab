"""fold-affine: fold a constant per-output-channel scale/shift into the preceding Conv/Dense.

    y = (W x + b) * s + t  ==>  W' = W * s (per output channel),  b' = b * s + t

Exact. Frameworks that export batch norm as Mul/Add (or a bias as MatMul + Add) produce
such Affine ops. An Affine that multiplies by 1 and adds nothing is removed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from snnc.ir import ops as O
from snnc.ir.graph import Graph
from snnc.passes.base import Pass, PassContext


def _per_out(arr: np.ndarray, op: O.Op, n_out: int, rank: int) -> np.ndarray | None:
    """arr as a length-n_out vector if it is constant except along the op's output
    channel axis (axis 0 for Conv, last axis for Dense), else None."""
    a = np.asarray(arr, np.float64)
    if a.ndim > rank:
        return None
    a = a.reshape((1,) * (rank - a.ndim) + a.shape)
    axis = 0 if isinstance(op, O.Conv) else rank - 1
    if any(d != 1 for i, d in enumerate(a.shape) if i != axis):
        return None
    return np.broadcast_to(a.reshape(-1), (n_out,)) if a.shape[axis] in (1, n_out) else None


@dataclass(frozen=True)
class FoldAffine(Pass):
    name: ClassVar[str] = "fold-affine"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        g = graph.copy()
        users = g.consumers()
        new_ops: list[O.Op] = []
        alias: dict[str, str] = {}
        #: the new op list's index of the Conv/Dense producing each value (so that a chain
        #: Conv -> Mul -> Add folds whole: after the Mul, the Conv produces the Mul's out)
        pos: dict[str, int] = {}
        for op in g.ops:
            op = g.remap(op, alias)
            if isinstance(op, O.Affine):
                sc = g.params[op.scale] if op.scale else None
                sh = g.params[op.shift] if op.shift else None
                if ((sc is None or np.all(sc == 1)) and (sh is None or np.all(sh == 0))
                        and op.out not in g.outputs):
                    alias[op.out] = op.x
                    continue
                if (op.x in pos and len(users[op.x]) == 1 and op.x not in g.outputs):
                    src = new_ops[pos[op.x]]
                    n_out = g.params[src.weight].shape[0]
                    rank = len(g.shape(op.x))
                    s = np.ones(n_out) if sc is None else _per_out(sc, src, n_out, rank)
                    t = np.zeros(n_out) if sh is None else _per_out(sh, src, n_out, rank)
                    if s is not None and t is not None:
                        w = g.params[src.weight].astype(np.float64)
                        w = w * s.reshape((-1,) + (1,) * (w.ndim - 1))
                        b = g.params[src.bias].astype(np.float64) if src.bias else 0.0
                        i = pos.pop(op.x)
                        new_ops[i] = g.replace(
                            src, out=op.out, weight=g.add_param(src.weight + ".f", w),
                            bias=g.add_param((src.bias or src.weight) + ".f", b * s + t))
                        pos[op.out] = i
                        continue
            if isinstance(op, (O.Conv, O.Dense)):
                pos[op.out] = len(new_ops)
            new_ops.append(op)
        g.outputs = [alias.get(v, v) for v in g.outputs]
        return g.rebuild(new_ops)

