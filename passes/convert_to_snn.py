"""convert-to-snn: lower the normalized ANN-level graph to a rate-coded spiking graph.

(METHODS 1 and 7)
  * each graph input gets an Encode op: analog (x as a constant current every step, the
    default) or Poisson (seeded, counter-based, so results do not depend on batching);
  * each rectifier (Relu, Clip(0, hi)) becomes an IF population with threshold 1 (the
    scale was moved into the weights by `normalize`), reset by subtraction (default) or
    to zero, initial membrane v_init * threshold. Biases stay in Conv/Dense: a bias is a
    constant input current every step;
  * a MaxPool whose input carries spikes becomes a spiking max-pool (the window passes the
    spikes of its input with the highest running spike count);
  * a final Softmax is dropped (argmax is unaffected); readout: each graph output gets an
    Accumulate op: membrane readout = accumulated input current of the output layer (a
    non-spiking integrator), or spike-count readout = an IF layer whose threshold is the
    output layer's calibrated scale, counted, or Rueckauer's spiking softmax (an external
    Poisson clock of probability softmax_rate per step triggers one draw from the softmax
    of the accumulated potentials; seeded with `seed`), counted.
Decision: a Relu whose input is already non-negative spikes is the identity and vanishes.
Errors name the ONNX node: a Softmax that is not final, a MaxPool on analog currents that
is not followed by a rectifier, a Clip that is not a rectifier.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from snnc.ir import ops as O
from snnc.ir.graph import Graph
from snnc.ir.semantics import MOVES_DATA
from snnc.passes.base import Pass, PassContext
from snnc.passes.normalize import is_neuron


@dataclass(frozen=True)
class ConvertToSnn(Pass):
    reset: str = "subtract"
    v_init: float = 0.0
    input_coding: str = "analog"
    seed: int = 0
    readout: str = "membrane"
    softmax_rate: float = 1.0
    name: ClassVar[str] = "convert-to-snn"
    requires: ClassVar[frozenset[str]] = frozenset({"normalized"})
    establishes: ClassVar[frozenset[str]] = frozenset({"spiking"})

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        g = graph.copy()
        users = g.consumers()
        fresh = g.name_reserver()

        ops: list[O.Op] = []
        rename: dict[str, str] = {}
        spikes: set[str] = set()  # values that carry binary spikes
        for v in g.inputs:
            enc = fresh(f"{v}.encoded")
            ops.append(O.Encode(name=fresh(f"encode.{v}"), out=enc, origin=v, x=v,
                                coding=self.input_coding, seed=self.seed))
            rename[v] = enc
            if self.input_coding == "poisson":
                spikes.add(enc)
        threshold = g.add_param("threshold.unit", np.float32(1.0))
        shift_t = graph.meta.get("shift_bias_timesteps")
        shift = 1.0 / (2 * shift_t) if shift_t else 0.0
        final_softmax: dict[str, str] = {}
        for op in g.ops:
            op = g.remap(op, rename)
            ins = op.inputs()
            if is_neuron(op):
                if op.x in spikes:
                    rename[op.out] = op.x
                    continue
                # normalize set a Clip's hi to 1 (lambda = hi): its ANN activation saturates
                # exactly where the neuron does
                bounded = isinstance(op, O.Clip) and op.hi is not None and abs(op.hi - 1) < 1e-6
                ops.append(O.IFNeuron(name=op.name, out=op.out, origin=op.origin, x=op.x,
                                      threshold=threshold, reset=self.reset,
                                      v_init=self.v_init, bounded=bounded, shift=shift))
                spikes.add(op.out)
            elif isinstance(op, O.Clip):
                raise op.error(f"Clip({op.lo}, {op.hi}) is not a rectifier (lower bound must "
                               "be 0), so it has no integrate-and-fire equivalent")
            elif isinstance(op, O.MaxPool):
                if op.x not in spikes:
                    src = g.producers().get(op.x)
                    what = ("the model input" if src is None else
                            f"'{src.origin or src.name}' ({src.kind}), not a ReLU")
                    raise op.error("max-pool of analog values (not spikes) has no spiking "
                                   f"equivalent: its input comes from {what}",
                                   hint="make a ReLU (or Clip(0, hi)) the op right before "
                                        "the max-pool, e.g. BatchNorm before the ReLU, not "
                                        "after it")
                ops.append(O.SpikeMaxPool(name=op.name, out=op.out, origin=op.origin, x=op.x,
                                          **op.pool_window()))
                spikes.add(op.out)
            elif isinstance(op, O.Softmax):
                final = op.out in g.outputs and not users.get(op.out)
                if not final:
                    raise op.error("softmax is only supported as the final op",
                                   hint="softmax inside the network has no rate-coded "
                                        "equivalent")
                rename[op.out] = op.x
                final_softmax[op.out] = op.x
            else:
                ops.append(op)
                if op.kind in MOVES_DATA and all(v in spikes for v in ins):
                    spikes.add(op.out)
        outputs = []
        lam_out = graph.meta.get("output_lambda", {})
        for v in g.outputs:
            src = rename.get(v, v)
            if self.readout == "softmax":
                fired = fresh(f"{src}.readout.softmax")
                ops.append(O.SpikingSoftmax(name=fired, out=fired, origin="readout", x=src,
                                            rate=self.softmax_rate, seed=self.seed))
                src = fired
            elif self.readout == "spikes":
                th = g.add_param(f"{src}.readout.threshold",
                                 np.float32(lam_out.get(final_softmax.get(v, v), 1.0)))
                fired = fresh(f"{src}.readout.spikes")
                ops.append(O.IFNeuron(name=fired, out=fired, origin="readout", x=src,
                                      threshold=th, reset=self.reset, v_init=self.v_init))
                src = fired
            out = fresh(f"{v}.readout")
            ops.append(O.Accumulate(name=out, out=out, origin="readout", x=src))
            outputs.append(out)
        g.outputs = outputs
        g.meta.update({"coding": "rate", "readout": self.readout, "reset": self.reset,
                       "input_coding": self.input_coding})
        return g.rebuild(ops)

