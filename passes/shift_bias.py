"""shift-bias: add half a quantization step to every neuron's input (Deng & Gu, METHODS 5).

A rate-coded IF neuron over T steps outputs a floor-quantized activation (steps of
theta/T). Shifting its input by

    b_l <- b_l + theta_l / (2 T)

centres the quantization error (minimizes the expected squared error for inputs uniform
within a step; total error about L * theta^2 / (4T)). It needs the simulation length T at
compile time, helps most at short T and can slightly hurt at very long T.
After `normalize` every threshold is 1, so the shift is 1/(2T). It is added to the bias of
the Conv/Dense feeding the neuron when that op feeds nothing else; otherwise (e.g. after a
residual Add) an Affine shift is inserted on the neuron's input.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from snnc.ir import ops as O
from snnc.ir.errors import SnncError
from snnc.ir.graph import Graph
from snnc.passes.base import Pass, PassContext
from snnc.passes.normalize import is_neuron


@dataclass(frozen=True)
class ShiftBias(Pass):
    timesteps: int = 64
    name: ClassVar[str] = "shift-bias"
    requires: ClassVar[frozenset[str]] = frozenset({"normalized"})
    establishes: ClassVar[frozenset[str]] = frozenset({"shift-bias"})

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        if self.timesteps < 1:
            raise SnncError(f"shift-bias needs timesteps >= 1, got {self.timesteps}")
        delta = 1.0 / (2 * self.timesteps)
        g = graph.copy()
        prod = g.producers()
        users = g.consumers()
        shifted: dict[str, O.Op] = {}  # producer name -> shifted replacement
        inserted: dict[str, O.Op] = {}  # neuron name -> Affine to put before it
        fresh = g.name_reserver()
        for op in g.ops:
            if not is_neuron(op):
                continue
            src = prod.get(op.x)
            if (isinstance(src, (O.Conv, O.Dense)) and len(users[op.x]) == 1
                    and op.x not in g.outputs):
                n_out = g.params[src.weight].shape[0]
                b = g.params[src.bias] if src.bias else np.zeros(n_out, np.float32)
                shifted[src.name] = g.replace(src, bias=g.add_param(
                    f"{src.name}.bias.shift", b + np.float32(delta)))
            else:
                out = fresh(f"{op.x}.shift")
                inserted[op.name] = O.Affine(
                    name=out, out=out, origin=op.origin, x=op.x, scale=None,
                    shift=g.add_param(f"{op.name}.shift", np.float32(delta)))
        ops: list[O.Op] = []
        for op in g.ops:
            if op.name in inserted:
                aff = inserted[op.name]
                ops.append(aff)
                op = g.replace(op, x=aff.out)
            ops.append(shifted.get(op.name, op))
        g.meta["shift_bias_timesteps"] = self.timesteps
        return g.rebuild(ops)
