"""Graph: the container of values, ops (in topological order) and weight arrays."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from snnc.ir.errors import SnncError
from snnc.ir.ops import Op, Shape
from snnc.ir.semantics import carries_spikes


@dataclass(frozen=True)
class Value:
    """A tensor flowing between ops; `shape` is per sample (batch is implicit)."""

    name: str
    shape: Shape
    dtype: str = "float32"


@dataclass
class Graph:
    """Ops are kept in topological order. `params` maps weight names to arrays, which are
    never mutated in place (passes replace them), so graphs can share them cheaply.
    `facts` records what passes established ("no-batchnorm", "normalized", "spiking").
    `meta` holds plain JSON-able settings (e.g. compile-time timesteps)."""

    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)
    values: dict[str, Value] = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)
    facts: set[str] = field(default_factory=set)
    meta: dict[str, Any] = field(default_factory=dict)

    def copy(self) -> Graph:
        return Graph(list(self.inputs), list(self.outputs), list(self.ops), dict(self.values),
                     dict(self.params), set(self.facts), dict(self.meta))

    # ---- lookups ------------------------------------------------------------------
    def producers(self) -> dict[str, Op]:
        return {op.out: op for op in self.ops}

    def consumers(self) -> dict[str, list[Op]]:
        users: dict[str, list[Op]] = {v: [] for v in self.values}
        for op in self.ops:
            for name in dict.fromkeys(op.inputs()):
                users.setdefault(name, []).append(op)
        return users

    def shape(self, value: str) -> Shape:
        return self.values[value].shape

    def spike_values(self) -> set[str]:
        """Values that carry binary spikes (0/1) at every step (ir/semantics.py rules):
        outputs of IF populations (not signed ones), spiking max-pools, the spiking
        softmax, Poisson encoders, and data-moving ops over spikes only."""
        spikes: set[str] = set()
        for op in self.ops:
            attrs = {"coding": getattr(op, "coding", None),
                     "signed": getattr(op, "signed", False)}
            if carries_spikes(op.kind, attrs, [v in spikes for v in op.inputs()]):
                spikes.add(op.out)
        return spikes

    # ---- building -----------------------------------------------------------------
    def fresh_name(self, base: str, taken: set[str] | None = None) -> str:
        """A value/param/op name not used yet, derived from base."""
        used = taken if taken is not None else (
            set(self.values) | set(self.params) | {op.name for op in self.ops})
        if base not in used:
            return base
        i = 1
        while f"{base}.{i}" in used:
            i += 1
        return f"{base}.{i}"

    def name_reserver(self) -> Callable[[str], str]:
        """fresh(base): a name derived from base that no value, param or op of the graph
        (as it is now) uses, nor any earlier call of the same fresh: for passes that add
        several values or ops before rebuilding the graph."""
        taken = set(self.values) | set(self.params) | {op.name for op in self.ops}

        def fresh(base: str) -> str:
            name = self.fresh_name(base, taken)
            taken.add(name)
            return name

        return fresh

    def add_param(self, base: str, array: np.ndarray) -> str:
        name = self.fresh_name(base)
        self.params[name] = np.ascontiguousarray(array, dtype=np.float32)
        return name

    def add_op(self, op: Op) -> Op:
        """Append an op, inferring and recording its output value's shape."""
        shapes = [self.shape(v) for v in op.inputs()]
        self.values[op.out] = Value(op.out, tuple(int(d) for d in
                                                  op.infer_shape(shapes, self.params)))
        self.ops.append(op)
        return op

    def rebuild(self, ops: list[Op]) -> Graph:
        """A copy with `ops` instead of the current ops; values and params that are no
        longer referenced are dropped, shapes re-inferred."""
        g = Graph(list(self.inputs), list(self.outputs), [], {}, dict(self.params),
                  set(self.facts), dict(self.meta))
        for name in self.inputs:
            g.values[name] = self.values[name]
        for op in ops:
            missing = [v for v in op.inputs() if v not in g.values]
            if missing:
                raise SnncError(f"internal: op {op.name} uses undefined value(s) {missing}",
                                node=op.where())
            g.add_op(op)
        used = {p for op in g.ops for p in op.param_names()}
        g.params = {k: v for k, v in g.params.items() if k in used}
        return g

    def replace(self, op: Op, **changes: Any) -> Op:
        return dataclasses.replace(op, **changes)

    def remap(self, op: Op, mapping: dict[str, str]) -> Op:
        """op with every operand found in `mapping` replaced by its mapped value."""
        changes: dict[str, Any] = {}
        for f in dataclasses.fields(op):
            role = f.metadata.get("role")
            v = getattr(op, f.name)
            if role == "operand" and v in mapping:
                changes[f.name] = mapping[v]
            elif role == "operands" and any(x in mapping for x in v):
                changes[f.name] = tuple(mapping.get(x, x) for x in v)
        return dataclasses.replace(op, **changes) if changes else op
