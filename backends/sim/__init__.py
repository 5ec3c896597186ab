"""The NumPy reference simulator backend (the executable definition of the IR).

`runtime.py` beside this file holds all semantics and depends on numpy alone; this module
adapts in-memory `Graph` objects to it and emits the runnable artifact.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from snnc.backends.sim import runtime
from snnc.ir.graph import Graph
from snnc.ir.serialize import graph_files, graph_to_dict

RUNTIME_FILE = "snn_runtime.py"


def network(graph: Graph) -> runtime.Network:
    """A runtime Network over an in-memory graph (weights shared, not copied)."""
    return runtime.Network(graph_to_dict(graph), graph.params)


def interpret(graph: Graph, feeds: dict[str, np.ndarray],
              outputs: list[str] | None = None) -> dict[str, np.ndarray]:
    """Evaluate an ANN-level graph on batch-leading arrays.

    Without `outputs`: the graph outputs in order, keyed by their ONNX names (unique even
    when two ONNX outputs are the same tensor); with `outputs`: those IR values."""
    if outputs is not None:
        return network(graph).run_ann(feeds, outputs)
    res = network(graph).run_ann(feeds, list(dict.fromkeys(graph.outputs)))
    names = graph.meta.get("onnx_outputs", graph.outputs)
    if len(names) != len(graph.outputs):
        names = graph.outputs
    return {n: res[v] for n, v in zip(names, graph.outputs)}


class SimBackend:
    """Writes the IR disk form plus the numpy-only runtime, so OUT/ runs on its own."""

    name = "sim"
    requires = frozenset({"spiking"})

    def emit(self, graph: Graph) -> dict[str, bytes]:
        files = graph_files(graph)
        files[RUNTIME_FILE] = Path(runtime.__file__).read_bytes()
        return files
