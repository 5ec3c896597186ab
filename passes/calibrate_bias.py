"""calibrate-bias: remove each neuron layer's mean rate error, measured by simulation.

A converted network's firing rates differ from the ANN activations they stand for
(METHODS 1, 5): floor quantization at short T, spikes emitted by early transients (a
neuron whose input is positive in the first steps and negative later cannot take its
spikes back), and errors inherited from the layers before. The mean part of that error is
systematic and can be cancelled by a constant current (Li et al., "A free lunch from ANN:
towards efficient, accurate spiking neural networks calibration", ICML 2021, bias
calibration). For every neuron population l, in graph order (so that each correction sees
the corrected layers before it):

    e_l[c] = mean over calibration samples and positions of
             ( min(rhat_l, 1) - count_l(T) / T_in )          (rates per input step)
    I_l   <- I_l + theta_l[c] * e_l[c]                         (during the input steps)

rhat_l = the ANN activation / lambda_l, the SNN's own ANN view (runtime `run_rates`),
capped at 1 because a neuron fires at most once per step; count_l(T) is the population's
spike count after simulating the network for T steps on the calibration inputs, T_in the
steps that carry input (T, or T1 under finite input time). Like shift-bias (whose mean
effect this subsumes), it is tuned to the compile-time T and helps most at short T.

The correction is a `current` op inserted on the neuron's input with `compensation=True`:
it is part of the SNN, not of the ANN function, so the rate view (diagnostics) leaves it
out.
Decision: per channel (per neuron for dense layers, per output channel for convolutions),
the mean over samples and positions: the same granularity as a bias, so nothing is
added that the ANN could not represent.
Decision: layers are calibrated one after another on a network truncated after the layer
(sequential, as in the paper); the cost is about L/2 simulations of the calibration set.
Decision (`targets`, a correction that holds across T): the rate error of a layer after
T steps has a part that persists at every T (a mean current the conversion gets wrong:
floor quantization's mean, over-firing at residual joins and max-pools) and a part
that is a fixed amount of charge, spread over T (transients: spikes emitted in the first
steps that later input would have cancelled, the charge left in V at the end):

    e_l(T) ~= a_l + b_l / T                                   (per channel)

A current theta*a during every input step corrects the first at every T; a charge
theta*b delivered once, at the first step (an initial potential), corrects the second at
every T. With one T both are indistinguishable and the pass adds the current (the
paper's bias calibration, exact at that T only: decays past it). With `targets` (more
T values, '+'-separated, e.g. `targets=8+32+256`) the layer is simulated once up to the
largest T, its counts read at every T of {timesteps} | targets, and (a, b) fitted per
channel by least squares over them; the charge is a `current` op with steps=1. Shift
bias's theta/(2T) is the special case a = 0, b = 1/2 of the same algebra (v_init 0.5).
Decision: at most `samples` calibration inputs are used (the first ones; default 256);
the estimate is a mean over samples x positions, so a few hundred inputs suffice.
The simulation goes through the pass context's simulator (PassContext.simulator), the
same engine as `snnc eval`, batch by batch with global sample indices.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from snnc.ir import ops as O
from snnc.ir.errors import SnncError
from snnc.ir.graph import Graph
from snnc.passes.base import Pass, PassContext


@dataclass(frozen=True)
class CalibrateBias(Pass):
    timesteps: int = 64
    samples: int = 256
    #: more T values the correction must hold at, '+'-separated ("8+32+256"); "": T only
    targets: str = ""
    name: ClassVar[str] = "calibrate-bias"
    requires: ClassVar[frozenset[str]] = frozenset({"spiking"})
    establishes: ClassVar[frozenset[str]] = frozenset({"bias-calibrated"})

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        if self.timesteps < 1:
            raise SnncError(f"calibrate-bias needs timesteps >= 1, got {self.timesteps}")
        if self.samples < 1:
            raise SnncError(f"calibrate-bias needs samples >= 1, got {self.samples}")
        steps_at = self.steps_at()
        g = graph.copy()
        neurons = [op for op in g.ops if isinstance(op, O.IFNeuron)]
        if ctx.structure_only or not neurons:
            return g
        x = None if ctx.calibration is None else ctx.calibration.x
        if x is None:
            raise SnncError("bias calibration needs calibration data",
                            hint="pass --calib CALIB.npz (a few hundred training inputs)")
        sim = ctx.simulator
        if sim is None:
            raise SnncError("internal: calibrate-bias needs a simulator in its pass context")
        x = np.asarray(x[: self.samples], np.float32)
        t_in = int(g.meta.get("input_steps", 0)) or self.timesteps
        steps = g.meta.get("input_steps", 0)  # the correction lasts as long as the input
        if len(steps_at) > 1 and steps:
            raise SnncError("calibrate-bias targets (several T) do not apply to finite input "
                            "time, whose rate is read over its T1 input steps",
                            hint="calibrate for one T, or drop --fit")
        targets = sim.rates(g, x, [op.out for op in neurons])
        notes: dict[str, float] = {}
        taken = set(g.values) | set(g.params) | {o.name for o in g.ops}
        with ctx.bar("calibrating biases", len(neurons) * len(x)) as progress:
            for neuron in neurons:
                # simulate the network up to (and including) this population
                upto = next(i for i, op in enumerate(g.ops) if op.name == neuron.name)
                sub = Graph(list(g.inputs), [neuron.out], g.ops[:upto + 1], g.values,
                            g.params, g.facts, g.meta)
                want = _channel_mean(np.minimum(targets[neuron.out].astype(np.float64), 1.0))
                if len(steps_at) == 1:
                    counts = sim.spike_counts(sub, x, self.timesteps, [neuron.name],
                                              progress)[neuron.name]
                    err = want - _channel_mean(counts / t_in)
                    current, charge = err, None
                else:
                    at = sim.spike_counts_at(sub, x, steps_at, [neuron.name], progress)
                    errs = np.stack([want - _channel_mean(at[t][neuron.name] / t)
                                     for t in steps_at])
                    current, charge = _fit_current_and_charge(errs, steps_at)
                    err = errs[steps_at.index(self.timesteps)]
                th = np.asarray(g.params[neuron.threshold], np.float64)
                shape = g.shape(neuron.x)
                per_chan = np.broadcast_to(th, shape).reshape(shape[0], -1).mean(axis=1)
                col = (-1,) + (1,) * (len(shape) - 1)
                x_in = neuron.x
                for part, n_steps, label in ((current, steps, "calib"),
                                             (charge, 1, "calib_init")):
                    if part is None:
                        continue
                    bias = (part * per_chan).astype(np.float32).reshape(col)
                    out = g.fresh_name(f"{neuron.x}.{label}", taken)
                    taken.add(out)
                    cur = O.Current(name=out, out=out, origin=neuron.origin, x=x_in,
                                    bias=g.add_param(f"{neuron.name}.{label}", bias),
                                    steps=n_steps, compensation=True)
                    taken.add(cur.bias)
                    g = g.rebuild([op for o in g.ops for op in
                                   ((cur, g.replace(o, x=out)) if o.name == neuron.name
                                    else (o,))])
                    neuron = next(o for o in g.ops if o.name == neuron.name)
                    x_in = out
                notes[neuron.origin or neuron.name] = float(np.abs(err).mean())
        ctx.notes["bias_calibration"] = {"timesteps": self.timesteps, "samples": len(x),
                                         "mean_abs_rate_error_before": notes}
        if len(steps_at) > 1:
            ctx.notes["bias_calibration"]["fitted_at"] = steps_at
        g.meta["bias_calibration_timesteps"] = self.timesteps
        return g

    def steps_at(self) -> list[int]:
        """The sorted T values the correction is fitted at: timesteps and targets."""
        try:
            more = [int(t) for t in self.targets.split("+") if t.strip()]
        except ValueError:
            raise SnncError(f"calibrate-bias targets must be '+'-separated integers, got "
                            f"'{self.targets}'", hint="e.g. targets=8+32+256") from None
        if any(t < 1 for t in more):
            raise SnncError(f"calibrate-bias targets must be >= 1, got '{self.targets}'")
        return sorted({self.timesteps, *more})


def _fit_current_and_charge(errs: np.ndarray, steps: list[int]
                            ) -> tuple[np.ndarray, np.ndarray]:
    """Per channel least squares of errs[k] ~= a + b / steps[k] (errs: (K, C) rate errors
    at K >= 2 distinct T): (a, b), the per-step current and the one-off charge, in
    units of the threshold."""
    basis = np.stack([np.ones(len(steps)), 1.0 / np.asarray(steps, np.float64)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, errs, rcond=None)
    return coef[0], coef[1]


def _channel_mean(a: np.ndarray) -> np.ndarray:
    """(N, C, ...) -> (C,): the mean over samples and positions."""
    return a.reshape(a.shape[0], a.shape[1], -1).mean(axis=(0, 2))
