"""signed-neurons: let hidden IF populations take back spikes (signed neurons with memory).

METHODS 1 extended: the IF neuron of METHODS 1 codes a_l / theta_l only when its input
stays positive; its rate error V_l(T) / (theta_l T) grows where the input changes sign.

Residual joins and other places where a neuron's input is positive early and negative
later make a rate-coded IF neuron over-fire at short T: its first spikes cannot be taken
back, so its count codes max(first part, 0) + max(rest, 0) instead of max(sum, 0). A
signed neuron (Wang et al., "Signed neuron with memory: towards simple, accurate and
high-efficient ANN-SNN conversion", IJCAI 2022; after Kim et al.'s signed neurons, 2020)
also fires a -1 spike where its membrane falls below 0 while its net count (positive
minus negative spikes) is positive, and adds the threshold back (IFNeuron.signed):

    V += I;  s = +1 if V >= theta,  -1 if V < 0 and n > 0,  else 0;  V -= theta s;  n += s

so that V + theta n = V0 + sum I at every step, and the net count n after T steps is
floor(max(V0 + sum I, 0) / theta) (at most one spike per step): the rate of an ideal
quantized ReLU of the accumulated input, with no transient over-firing. The synapses it
feeds see -1/0/+1 (SynOps count every spike event).

Decision: the negative threshold is 0 (the membrane is never left negative while the
neuron owes spikes), not -theta: the net count is then exactly the floor of the
accumulated input, the quantity rate coding approximates. Measured on the bench ResNet
(channel:99.9, v_init 0.5, bias calibration; mnist5k test): threshold 0: 0.964 / 0.968
at T = 8 / 16 with 105k / 208k spike events per sample; -theta/2: 0.966 / 0.965, 81k /
147k; -theta: 0.880 / 0.968 (unsigned: 0.491 / 0.704). A spike taken back costs an
event: signed neurons trade about twice the events of their net count for accuracy.
Decision: every IF population becomes signed except those feeding a spiking max-pool
(its gate picks the input with the most spikes so far; taking spikes back would make
that ill-defined) and those that reset to zero; finite input time is refused.
Decision: the simulator runs signed neurons (the runtime's kernel, not the native fused
scan); the C backend, fixed point and NIR refuse the `signed` attribute
(ir/semantics.HANDLED_ATTRS), as does placement: no target here has negative spikes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from snnc.ir import ops as O
from snnc.ir.errors import SnncError
from snnc.ir.graph import Graph
from snnc.ir.semantics import MOVES_DATA
from snnc.passes.base import Pass, PassContext


def feeds_gate(graph: Graph, value: str) -> bool:
    """Whether spikes of `value` reach a spiking max-pool (through data-moving ops)."""
    users = graph.consumers()
    stack, seen = [value], set()
    while stack:
        v = stack.pop()
        if v in seen:
            continue
        seen.add(v)
        for op in users.get(v, []):
            if isinstance(op, O.SpikeMaxPool):
                return True
            if op.kind in MOVES_DATA:
                stack.append(op.out)
    return False


@dataclass(frozen=True)
class SignedNeurons(Pass):
    name: ClassVar[str] = "signed-neurons"
    requires: ClassVar[frozenset[str]] = frozenset({"spiking"})
    establishes: ClassVar[frozenset[str]] = frozenset({"signed"})

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        if "finite-input" in graph.facts:
            raise SnncError("signed neurons do not apply to finite input time (its drain "
                            "steps release stored charge as spikes)",
                            hint="drop finite-input (--fit) or signed-neurons")
        g = graph.copy()
        ops, signed, kept = [], [], []
        for op in g.ops:
            if isinstance(op, O.IFNeuron):
                if op.reset == "subtract" and not op.max_spikes and not feeds_gate(g, op.out):
                    op = g.replace(op, signed=True)
                    signed.append(op.origin or op.name)
                else:
                    kept.append(op.origin or op.name)
            ops.append(op)
        ctx.notes["signed_neurons"] = {"signed": signed, "unsigned": kept}
        return g.rebuild(ops)
