"""The NumPy reference simulator backend (the executable definition of the IR).

`runtime.py` beside this file holds the semantics (its kernel table, with the shared
numeric rules of ir/semantics.py) and depends on numpy alone; this module adapts in-memory
`Graph` objects to it, offers the public simulator interface that passes and the driver
use (`Simulator`), and emits the runnable artifact (the runtime and the semantics module,
copied into OUT/).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from snnc.backends.sim import runtime
from snnc.ir import semantics
from snnc.ir.graph import Graph
from snnc.ir.serialize import graph_files, graph_to_dict

RUNTIME_FILE = "snn_runtime.py"
SEMANTICS_FILE = "snn_semantics.py"


def cpus() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)


def accelerated(native: bool = True) -> list[Any]:
    """The fastest kernels with the runtime's meaning that this machine offers (what
    `snnc eval`, sweeps and bias calibration simulate with), in order of preference:
    the native kernels (native.py: fused neuron scans and max-pool gates, event-driven
    convolutions and dense layers) when a C compiler could build them, then
    onnxruntime's (convolutions, pools and the max-pool gate's window maximum on whole
    tiles). Each runs on one thread: parallelism comes from simulating tiles side by side
    (runtime.Network(threads=...))."""
    from snnc.backends.sim import native as native_mod
    from snnc.backends.sim.ort_kernels import OrtKernels

    kernels: list[Any] = []
    lib = native_mod.load() if native else None
    if lib is not None:
        kernels.append(native_mod.NativeKernels(lib))
    kernels.append(OrtKernels(1))
    return kernels


def describe(kernels: list[Any]) -> str:
    """One line on what a list of kernel providers (accelerated()) is, for the user."""
    from snnc.backends.sim import native as native_mod

    names = [type(k).__name__ for k in kernels]
    if "NativeKernels" in names:
        return "native kernels (IF, max-pool gates, event-driven synapses) + onnxruntime"
    return f"onnxruntime kernels (native kernels unavailable: {native_mod.status()})"


def network(graph: Graph, accel: Any = None, threads: int = 1,
            tiles: int | None = None) -> runtime.Network:
    """A runtime Network over an in-memory graph (weights shared, not copied). accel:
    faster kernels with the same meaning (accelerated()); threads: tiles simulated side
    by side; tiles: the least number of tiles per batch (default threads: see
    runtime.Network)."""
    return runtime.Network(graph_to_dict(graph), graph.params, accel, threads=threads,
                           tiles=tiles)


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


class Simulator:
    """The simulator as passes see it (through PassContext.simulator): the IR's meaning
    on in-memory graphs, batch by batch. accel: faster kernels with the same meaning
    (None: the runtime's own; "auto": accelerated(), built on first use, so that a
    compile that never simulates never builds them); threads: tiles side by side."""

    def __init__(self, accel: Any = "auto", batch: int = 100, threads: int = 1,
                 tiles: int | None = None):
        self._accel = accel
        self.batch = batch
        self.threads = threads
        self.tiles = tiles  # runtime.Network(tiles=...): None, one per thread

    @property
    def accel(self) -> Any:
        if isinstance(self._accel, str):
            self._accel = accelerated()
        return self._accel

    def rates(self, graph: Graph, x: np.ndarray, values: list[str]) -> dict[str, np.ndarray]:
        """The spiking graph's ANN view on inputs x: each named value as the rate per step
        that the SNN approximates (runtime.Network.run_rates)."""
        return network(graph).run_rates(x, values)

    def run_ann(self, graph: Graph, feeds: dict[str, np.ndarray], outputs: list[str]
                ) -> dict[str, np.ndarray]:
        """An ANN-level graph (or its linear ops) on batch-leading feeds (interpret)."""
        return interpret(graph, feeds, outputs)

    def spike_counts(self, graph: Graph, x: np.ndarray, timesteps: int, ops: list[str],
                     progress: Callable[[int], None] | None = None
                     ) -> dict[str, np.ndarray]:
        """Spikes per neuron, (N, ...) float64, of the named spiking ops after simulating
        inputs x for `timesteps` steps (global sample indices 0..N-1)."""
        return self.spike_counts_at(graph, x, [timesteps], ops, progress)[timesteps]

    def spike_counts_at(self, graph: Graph, x: np.ndarray, steps: list[int], ops: list[str],
                        progress: Callable[[int], None] | None = None, first: int = 0
                        ) -> dict[int, dict[str, np.ndarray]]:
        """spike_counts after each of several step counts, from one simulation up to the
        largest: {t: {op name: (N, ...) float64}}. first: the global index of x[0]."""
        want = sorted(set(steps))
        net = network(graph, self.accel, self.threads, tiles=self.tiles)
        parts: dict[int, dict[str, list[np.ndarray]]] = {
            t: {name: [] for name in ops} for t in want}
        for off, xb, _ in runtime.batches(x, None, self.batch):
            def take(t: int, counts: dict[str, np.ndarray]) -> None:
                if t in parts:
                    for name in ops:
                        parts[t][name].append(counts[name].astype(np.float64))

            net.simulate(xb, want[-1], sample_offset=first + off, marks=want, observe=take)
            if progress is not None:
                progress(len(xb))
        return {t: {name: np.concatenate(p) for name, p in d.items()}
                for t, d in parts.items()}


class SimBackend:
    """Writes the IR disk form plus the numpy-only runtime, so OUT/ runs on its own."""

    name = "sim"
    requires = frozenset({"spiking"})

    def emit(self, graph: Graph) -> dict[str, bytes]:
        files = graph_files(graph)
        files[RUNTIME_FILE] = Path(runtime.__file__).read_bytes()
        files[SEMANTICS_FILE] = Path(semantics.__file__).read_bytes()
        return files
