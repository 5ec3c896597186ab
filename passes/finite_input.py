"""finite-input: present the input and the biases for T1 steps only (FIT, METHODS 6).

The spiking network runs T1 + T2 steps: during the first T1 steps the input is encoded as
usual and every bias is a constant input current; during the T2 "drain" steps nothing
enters the network, so the charge that saturated neurons stored above threshold leaves as
spikes (with reset by subtraction nothing is lost: a neuron's spike count approaches its
total input charge as long as it has steps left to fire). The readout integrates over all
T1 + T2 steps and represents the ANN's output times T1 ("read out over T1"; argmax is
unaffected by the 1/T1).

Rewrite (after convert-to-snn):
    encode(x)                      -> encode(x) steps=T1
    conv/dense(x, W, b)            -> current(conv/dense(x, W), b) steps=T1
    affine(x, s, shift)            -> current(affine(x, s), shift) steps=T1
The biased op keeps its output name on the Current op, so ONNX tensor names stay where
they were.
    if(x) bounded                  -> if(x) max_spikes=T1
Decision: a bounded neuron (one that replaces a Clip(0, hi) with threshold hi) may fire
at most T1 times: its ANN activation is at most hi, i.e. one spike per input step, and
floor(min(z, 1) * T1) = min(floor(z * T1), T1), so the cap is exactly the clip; without it
the drain releases the charge above the clip and the error grows with T2.
Decision: biases are gated with the input (the FIT paper presents only the input; a bias
that kept flowing during the drain would keep adding charge that no input justifies, and
"read out over T1" assumes every current lasted T1 steps).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from snnc.ir import ops as O
from snnc.ir.errors import SnncError
from snnc.ir.graph import Graph
from snnc.passes.base import Pass, PassContext


@dataclass(frozen=True)
class FiniteInput(Pass):
    steps: int = 0
    name: ClassVar[str] = "finite-input"
    requires: ClassVar[frozenset[str]] = frozenset({"spiking"})
    establishes: ClassVar[frozenset[str]] = frozenset({"finite-input"})

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        if self.steps < 1:
            raise SnncError(f"finite input time needs T1 >= 1 input steps, got {self.steps}")
        g = graph.copy()
        fresh = g.name_reserver()

        ops: list[O.Op] = []
        for op in g.ops:
            if isinstance(op, O.Encode):
                ops.append(g.replace(op, steps=self.steps))
                continue
            if isinstance(op, O.IFNeuron) and op.bounded:
                ops.append(g.replace(op, max_spikes=self.steps))
                continue
            if isinstance(op, (O.Conv, O.Dense)) and op.bias:
                bias = g.params[op.bias]
                if isinstance(op, O.Conv):
                    bias = bias.reshape(-1, 1, 1)
                inner, kw = op.bias, {"bias": None}
            elif isinstance(op, O.Affine) and op.shift:
                bias, inner, kw = g.params[op.shift], op.shift, {"shift": None}
            else:
                ops.append(op)
                continue
            mid = fresh(f"{op.out}.nobias")
            g.values[mid] = g.values[op.out]
            ops.append(g.replace(op, out=mid, **kw))
            ops.append(O.Current(name=fresh(f"{op.name}.bias"), out=op.out, origin=op.origin,
                                 x=mid, bias=g.add_param(f"{inner}.current", bias),
                                 steps=self.steps))
        g.meta["input_steps"] = self.steps
        return g.rebuild(ops)
