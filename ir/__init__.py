"""snnc's intermediate representation: values, ops, graph, verifier, text and disk forms.

One IR holds both ANN-level ops (what the ONNX frontend produces) and spiking ops (what
conversion lowers them to); conversion is progressive lowering. See README "IR".
"""
from typing import Any

from snnc.ir.errors import SnncError

__all__ = ["OPS", "Graph", "Op", "SnncError", "Value"]


def __getattr__(name: str) -> Any:
    # Lazy: `snnc --version` and error reporting need no numpy.
    if name in ("Graph", "Value"):
        from snnc.ir import graph

        return getattr(graph, name)
    if name in ("OPS", "Op"):
        from snnc.ir import ops

        return getattr(ops, name)
    raise AttributeError(name)
