"""relu-before-maxpool: rewrite MaxPool -> Relu (or rectifying Clip) into Relu -> MaxPool.

    relu(maxpool(x)) == maxpool(relu(x))      (relu is monotone; so is clip)

Exact. In the SNN the neuron must sit right after the synaptic op so the max-pool sees
spikes (spiking max-pool, METHODS 7); PyTorch models often pool before the activation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from snnc.ir import ops as O
from snnc.ir.graph import Graph
from snnc.passes.base import Pass, PassContext


@dataclass(frozen=True)
class ReluBeforeMaxPool(Pass):
    name: ClassVar[str] = "relu-before-maxpool"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        g = graph.copy()
        users = g.consumers()
        prod = g.producers()
        swap: dict[str, O.Op] = {}  # maxpool name -> its activation
        for op in g.ops:
            if isinstance(op, (O.Relu, O.Clip)):
                mp = prod.get(op.x)
                if (isinstance(mp, O.MaxPool) and len(users[mp.out]) == 1
                        and mp.out not in g.outputs):
                    swap[mp.name] = op
        if not swap:
            return graph
        fresh = g.name_reserver()
        new_ops: list[O.Op] = []
        skip = {a.name for a in swap.values()}
        for op in g.ops:
            if op.name in skip:
                continue
            if op.name in swap:
                act = swap[op.name]
                mid = fresh(f"{act.out}.pre")
                new_ops.append(g.replace(act, x=op.x, out=mid))
                new_ops.append(g.replace(op, x=mid, out=act.out))
            else:
                new_ops.append(op)
        return g.rebuild(new_ops)
