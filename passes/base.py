"""Pass base class and the context passes receive."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np
from snnc.ir.graph import Graph


class Calibration(Protocol):
    #: the calibration inputs (N, ...), in the model's input layout
    x: np.ndarray

    def activations(self, names: list[str]) -> dict[str, np.ndarray]:
        """ANN activations (N, ...) of the named ONNX tensors on the calibration set."""


@dataclass
class PassContext:
    """What passes may read beyond the graph: calibration data and a place for notes that
    end up in the compile report (per-layer scales, decisions taken)."""

    calibration: Calibration | None = None
    #: compile for structure only (snnc check): no data, every scale 1
    structure_only: bool = False
    notes: dict[str, Any] = field(default_factory=dict)


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
