"""Pass base class and the context passes receive."""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np
from snnc.ir.graph import Graph


class Calibration(Protocol):
    #: the calibration inputs (N, ...), in the model's input layout
    x: np.ndarray

    def activations(self, names: list[str]) -> dict[str, np.ndarray]:
        """ANN activations (N, ...) of the named ONNX tensors on the calibration set."""


class Simulator(Protocol):
    """The IR's meaning, for passes that must simulate (bias calibration; placement
    traffic later). A pass gets it through its context and never imports a backend; the
    driver passes the NumPy simulator (snnc.backends.sim.Simulator)."""

    def rates(self, graph: Graph, x: np.ndarray, values: list[str]) -> dict[str, np.ndarray]:
        """The spiking graph's ANN view: each named value as the rate per step the SNN
        approximates, on inputs x (N, ...)."""

    def run_ann(self, graph: Graph, feeds: dict[str, np.ndarray], outputs: list[str]
                ) -> dict[str, np.ndarray]:
        """An ANN-level graph (or its linear ops) on batch-leading feeds: the named
        values."""

    def spike_counts(self, graph: Graph, x: np.ndarray, timesteps: int, ops: list[str],
                     progress: Callable[[int], None] | None = None
                     ) -> dict[str, np.ndarray]:
        """Spikes per neuron (N, ...) of the named spiking ops after `timesteps` steps on
        inputs x; progress(samples) after each batch."""


#: progress(description, total) -> a context manager giving update(n): a progress bar
#: (the CLI draws one on a TTY)
Progress = Callable[[str, int], AbstractContextManager[Callable[[int], None]]]


@dataclass
class PassContext:
    """What passes may read beyond the graph: calibration data, the simulator, a progress
    reporter and a place for notes that end up in the compile report (per-layer scales,
    decisions taken)."""

    calibration: Calibration | None = None
    #: compile for structure only (snnc check): no data, every scale 1
    structure_only: bool = False
    notes: dict[str, Any] = field(default_factory=dict)
    simulator: Simulator | None = None
    progress: Progress | None = None

    def bar(self, description: str, total: int
            ) -> AbstractContextManager[Callable[[int], None]]:
        """A progress context (see Progress); silent without a reporter."""
        if self.progress is None:
            return contextlib.nullcontext(lambda n: None)
        return self.progress(description, total)


@dataclass(frozen=True)
class Pass:
    name: ClassVar[str] = ""
    requires: ClassVar[frozenset[str]] = frozenset()
    establishes: ClassVar[frozenset[str]] = frozenset()
    invalidates: ClassVar[frozenset[str]] = frozenset()

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        raise NotImplementedError

    def spec(self) -> str:
        """The pass as it appears in a pipeline string: name{opt=value,...}."""
        from dataclasses import fields

        opts = ",".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self))
        return f"{self.name}{{{opts}}}" if opts else self.name
