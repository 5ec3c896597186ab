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
    """Evaluate an ANN-level graph on batch-leading arrays."""
    return network(graph).run_ann(feeds, outputs)


class SimBackend:
    """Writes the IR disk form plus the numpy-only runtime, so OUT/ runs on its own."""

    name = "sim"
    requires = frozenset({"spiking"})

    def emit(self, graph: Graph) -> dict[str, bytes]:
        files = graph_files(graph)
        files[RUNTIME_FILE] = Path(runtime.__file__).read_bytes()
        return files
