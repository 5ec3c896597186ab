"""The verifier: structural and shape invariants checked after every pass."""
from __future__ import annotations

import numpy as np
from snnc.ir.errors import SnncError
from snnc.ir.graph import Graph
from snnc.ir.ops import OPS


def verify(graph: Graph) -> None:
    """Raise SnncError naming the offending op if the graph is malformed."""
    defined = set(graph.inputs)
    for name in graph.inputs:
        if name not in graph.values:
            raise SnncError(f"internal: graph input '{name}' has no value record")
    names: set[str] = set()
    for op in graph.ops:
        if type(op).kind not in OPS or OPS[type(op).kind] is not type(op):
            raise SnncError(f"internal: unregistered op kind {type(op).__name__}",
                            node=op.where())
        if op.name in names:
            raise SnncError(f"internal: duplicate op name '{op.name}'", node=op.where())
        names.add(op.name)
        for v in op.inputs():
            if v not in defined:
                raise SnncError(f"internal: op '{op.name}' reads '{v}' before it is defined "
                                "(ops out of topological order?)", node=op.where())
        for p in op.param_names():
            if p not in graph.params:
                raise SnncError(f"internal: op '{op.name}' references missing param '{p}'",
                                node=op.where())
            if not np.isfinite(graph.params[p]).all():
                raise op.error(f"parameter '{p}' holds NaN or Inf",
                               hint="check the model's weights")
        if op.out in defined:
            raise SnncError(f"internal: value '{op.out}' is defined twice", node=op.where())
        shape = op.infer_shape([graph.shape(v) for v in op.inputs()], graph.params)
        if tuple(shape) != tuple(graph.values[op.out].shape):
            raise SnncError(f"internal: op '{op.name}' records shape "
                            f"{list(graph.values[op.out].shape)} but infers {list(shape)}",
                            node=op.where())
        defined.add(op.out)
    for v in graph.outputs:
        if v not in defined:
            raise SnncError(f"internal: graph output '{v}' is never computed")
    spiking = any(type(op).spiking for op in graph.ops)
    if "spiking" in graph.facts and not spiking:
        raise SnncError("internal: graph claims 'spiking' but has no spiking ops")
