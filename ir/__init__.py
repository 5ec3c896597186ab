"""snnc's intermediate representation: values, ops, graph, verifier, text and disk forms.

One IR holds both ANN-level ops (what the ONNX frontend produces) and spiking ops (what
conversion lowers them to); conversion is progressive lowering. See README "IR".
"""
from snnc.ir.errors import SnncError
from snnc.ir.graph import Graph, Value
from snnc.ir.ops import OPS, Op

__all__ = ["OPS", "Graph", "Op", "SnncError", "Value"]
