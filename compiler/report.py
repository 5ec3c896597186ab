"""Static per-layer facts of a graph: neurons, MACs, fan-in; and text tables."""
from __future__ import annotations

import math
from typing import Any

from snnc.ir import ops as O
from snnc.ir.errors import printable
from snnc.ir.graph import Graph


def op_macs(g: Graph, op: O.Op) -> int:
    """Multiply-accumulates one ANN inference spends in this op."""
    out = g.shape(op.out)
    if isinstance(op, O.Conv):
        w = g.params[op.weight].shape
        return math.prod(out) * w[1] * w[2] * w[3]
    if isinstance(op, O.Dense):
        return math.prod(out) * g.params[op.weight].shape[1]
    if isinstance(op, O.AvgPool):
        return math.prod(out) * op.kernel[0] * op.kernel[1]
    return 0


def layer_table(g: Graph) -> list[dict[str, Any]]:
    rows = []
    for op in g.ops:
        rows.append({"name": op.name, "kind": op.kind, "origin": op.origin,
                     "shape": list(g.shape(op.out)),
                     "neurons": (math.prod(g.shape(op.out))
                                 if op.kind in ("if", "ttfsneuron") else 0),
                     "macs": op_macs(g, op)})
    return rows


def format_table(header: list[str], rows: list[list[Any]]) -> str:
    """A plain-text table; every cell through printable() (names come from the model)."""
    cells = [[printable(c) for c in r] for r in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
